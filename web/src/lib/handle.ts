// Handle rules, the same as the server's `src/domain/handle.rs` (a Rust unit test checks
// that reserved-handles.json is exactly its list), so the form can say what is wrong
// before anything is sent.
import reserved from "./reserved-handles.json";

const HANDLE_MIN = 3;
export const HANDLE_MAX = 32;
const RESERVED = new Set<string>(reserved);
const WELL_FORMED = /^[a-z0-9][a-z0-9_-]*$/;

export type HandleCheck = { ok: true; handle: string } | { ok: false; reason: "empty" | "invalid" | "reserved"; message: string };

/** Checks a handle exactly as typed: registration signs it as is, so no case folding. */
export function checkHandle(input: string): HandleCheck {
  if (input === "") return { ok: false, reason: "empty", message: "Choose a handle." };
  if (/[A-Z]/.test(input)) {
    return { ok: false, reason: "invalid", message: "Use lowercase letters only." };
  }
  if (!WELL_FORMED.test(input)) {
    return {
      ok: false,
      reason: "invalid",
      message: /^[_-]/.test(input)
        ? "Start with a letter or a digit."
        : "Use only lowercase letters a–z, digits, “_” and “-”.",
    };
  }
  if (input.length < HANDLE_MIN) return { ok: false, reason: "invalid", message: `At least ${HANDLE_MIN} characters.` };
  if (input.length > HANDLE_MAX) return { ok: false, reason: "invalid", message: `At most ${HANDLE_MAX} characters.` };
  if (RESERVED.has(input)) return { ok: false, reason: "reserved", message: `“${input}” is reserved. Choose another handle.` };
  return { ok: true, handle: input };
}
