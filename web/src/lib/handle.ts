// Handle rules, the same as the server's `src/domain/handle.rs` (a Rust unit test checks
// that reserved-handles.json is exactly its list), so the form can say what is wrong
// before anything is sent.
import reserved from "./reserved-handles.json";
import skeletonSteps from "./handle-skeleton.json";

const HANDLE_MIN = 3;
export const HANDLE_MAX = 32;
const RESERVED = new Set<string>(reserved);
const BRANDS = ["kezchat", "kez"];

/** What a handle looks like (the server's `skeleton`, with the same steps from one JSON file). */
export function skeleton(handle: string): string {
  return (skeletonSteps as [string, string][]).reduce((s, [from, to]) => s.split(from).join(to), handle);
}

const RESERVED_SKELETONS = new Set([...RESERVED].map(skeleton));

/** A reserved name, a lookalike of one, or one next to a brand (`kez-support`): the server's `looks_reserved`. */
function looksReserved(handle: string): boolean {
  const looks = skeleton(handle);
  if (RESERVED_SKELETONS.has(looks)) return true;
  return BRANDS.map(skeleton).some((brand) => {
    const rest = looks.startsWith(brand) ? looks.slice(brand.length) : looks.endsWith(brand) ? looks.slice(0, -brand.length) : null;
    return rest !== null && rest !== "" && RESERVED_SKELETONS.has(rest);
  });
}
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
  if (looksReserved(input)) return { ok: false, reason: "reserved", message: `“${input}” looks like a reserved name. Choose another handle.` };
  return { ok: true, handle: input };
}
