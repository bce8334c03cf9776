// Handle registration envelopes (the server's POST /v1/register contract) and the check of
// a stored envelope that a lookup returns: JCS (RFC 8785) + Ed25519, as in the README.
import canonicalize from "canonicalize";
import { bytesToHex, hexToBytes, utf8ToBytes } from "@noble/hashes/utils.js";
import { type Identity, parsePrimary, sign, verify } from "./identity";
import { checkHandle } from "./handle";

export interface RegistrationPayload {
  type: "kez.chat.handle_registration";
  version: 1;
  handle: string;
  primary: string;
  server: string;
  created_at: string;
}

export interface Envelope {
  kez: "handle_registration";
  payload: RegistrationPayload;
  signature: { alg: "ed25519-sha512-jcs"; key: string; sig: string };
}

/** The JCS bytes that a registration signature covers. */
export function canonicalBytes(value: unknown): Uint8Array {
  const text = canonicalize(value);
  if (text === undefined) throw new Error("not a JSON value");
  return utf8ToBytes(text);
}

/**
 * RFC 3339 UTC to the millisecond (a whole second without a fraction), a statement's
 * `created_at`: the server orders a handle's statements by it, and refuses one not signed
 * after the statement in force.
 */
export function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.000Z$/, "Z");
}

export function registrationPayload(handle: string, primary: string, server: string, createdAt = new Date()): RegistrationPayload {
  return { type: "kez.chat.handle_registration", version: 1, handle, primary, server, created_at: rfc3339(createdAt) };
}

export function signRegistration(identity: Identity, payload: RegistrationPayload): Envelope {
  if (payload.primary !== identity.primary) throw new Error("the payload names another key");
  const sig = bytesToHex(sign(identity, canonicalBytes(payload)));
  return { kez: "handle_registration", payload, signature: { alg: "ed25519-sha512-jcs", key: identity.primary, sig } };
}

/** One `{alg, key, sig}` signature of `payload`'s JCS bytes by `identity`. */
function signatureBy(identity: Identity, payload: unknown) {
  return { alg: "ed25519-sha512-jcs", key: identity.primary, sig: bytesToHex(sign(identity, canonicalBytes(payload))) };
}

/** Moves `handle` from `old` to `next`: a key rotation signed by both, the old key first. */
export function signRotation(old: Identity, next: Identity, handle: string, server: string, createdAt = new Date()) {
  const payload = { type: "kez.chat.key_rotation", version: 1, handle, server, old: old.primary, new: next.primary, created_at: rfc3339(createdAt) };
  return { kez: "key_rotation", payload, signatures: [signatureBy(old, payload), signatureBy(next, payload)] };
}

/** Gives `handle` up: a release signed by `identity`, the key that holds it. */
export function signRelease(identity: Identity, handle: string, server: string, createdAt = new Date()) {
  const payload = { type: "kez.chat.handle_release", version: 1, handle, primary: identity.primary, server, created_at: rfc3339(createdAt) };
  return { kez: "handle_release", payload, signature: signatureBy(identity, payload) };
}

/** What the server answers for a user (lookup and registration bodies). */
export interface UserBody {
  handle: string;
  fqhn: string;
  primary: string;
  registered_at: string;
  envelope: Envelope;
}

/** A binding of handle@server to a key, checked against the key's own signature. */
export interface VerifiedUser {
  handle: string;
  server: string;
  fqhn: string;
  primary: string;
  publicKey: Uint8Array;
  registeredAt: string;
  /** Set by a key rotation: the key that signed the move to `primary`. */
  movedFrom?: string;
}

export class BindingError extends Error {}

/**
 * Trusts a lookup body only if its stored envelope is signed by the key it names, over the
 * same handle, key and server: a server that swapped the envelope of one binding into another
 * answer is caught here. A server that signs a new binding with a key of its own is not (the
 * signature checks out): pins.ts and safety numbers are what notice that. `expect` holds what
 * the person asked for.
 */
export function verifyUserBody(body: unknown, expect: { server: string; handle?: string; primary?: string }): VerifiedUser {
  const b = body as Partial<UserBody> | null;
  if ((b?.envelope as { kez?: unknown } | undefined)?.kez === "key_rotation") return verifyRotationBody(b as Partial<UserBody>, expect);
  const env = b?.envelope;
  const p = env?.payload;
  if (!b || typeof b !== "object" || !env || !p || typeof p !== "object" || !env.signature) {
    throw new BindingError("The server's answer has no signed registration to check.");
  }
  if (env.kez !== "handle_registration" || p.type !== "kez.chat.handle_registration" || p.version !== 1) {
    throw new BindingError("The signed registration is of an unknown kind.");
  }
  checkAnswer(b, expect, { handle: p.handle, server: p.server, primary: p.primary }, "registration signed by the key");
  const publicKey = parsePrimary(p.primary);
  const sig = env.signature;
  if (!publicKey || sig.alg !== "ed25519-sha512-jcs" || sig.key !== p.primary || !/^[0-9a-f]{128}$/.test(sig.sig ?? "")) {
    throw new BindingError("The registration's key or signature is malformed.");
  }
  if (!verify(publicKey, canonicalBytes(p), hexToBytes(sig.sig))) {
    throw new BindingError("The registration's signature does not verify: this binding cannot be trusted.");
  }
  return {
    handle: p.handle,
    server: expect.server.toLowerCase(),
    fqhn: b.fqhn,
    primary: p.primary,
    publicKey,
    registeredAt: b.registered_at ?? p.created_at,
  };
}

/**
 * What every binding's check shares: the signed handle is in the server's alphabet, and the
 * server's answer names the handle, server and key the statement (`what`) signed, for whom
 * the person asked.
 */
function checkAnswer(
  b: Partial<UserBody>,
  expect: { server: string; handle?: string; primary?: string },
  signed: { handle: unknown; server: unknown; primary: unknown },
  what: string,
): asserts b is Partial<UserBody> & { fqhn: string } {
  // A handle only in the server's alphabet: a signed `bоb` (Cyrillic о) or `bob\u200b` would
  // look like a pinned `bob` without being it, and slip past the pin check.
  const handle = typeof signed.handle === "string" ? checkHandle(signed.handle) : null;
  if (!handle || !(handle.ok || handle.reason === "reserved")) throw new BindingError("The signed handle is not a valid handle.");
  const server = expect.server.toLowerCase();
  const sameServer = typeof signed.server === "string" && signed.server.toLowerCase() === server;
  if (signed.handle !== b.handle || signed.primary !== b.primary || !sameServer || b.fqhn !== `${String(signed.handle)}@${server}`) {
    throw new BindingError(`The server's answer does not match the ${what}.`);
  }
  if ((expect.handle !== undefined && signed.handle !== expect.handle.toLowerCase()) || (expect.primary !== undefined && signed.primary !== expect.primary)) {
    throw new BindingError("The server answered for someone else than asked.");
  }
}

interface RotationEnvelope {
  kez: "key_rotation";
  payload: { type: string; version: number; handle: string; server: string; old: string; new: string; created_at: string };
  signatures: { alg: string; key: string; sig: string }[];
}

/**
 * A binding set by a key rotation: the handle moved from `old` to `new`, signed by both (the
 * old key allowed it, the new key is held). Trusted only if both signatures verify over the
 * same handle, server and new key the answer names.
 */
function verifyRotationBody(b: Partial<UserBody>, expect: { server: string; handle?: string; primary?: string }): VerifiedUser {
  const env = b.envelope as unknown as RotationEnvelope;
  const p = env.payload;
  if (!p || typeof p !== "object" || p.type !== "kez.chat.key_rotation" || p.version !== 1 || !Array.isArray(env.signatures) || env.signatures.length !== 2) {
    throw new BindingError("The signed key rotation is of an unknown kind.");
  }
  checkAnswer(b, expect, { handle: p.handle, server: p.server, primary: p.new }, "rotation signed by the keys");
  const message = canonicalBytes(p);
  [p.old, p.new].forEach((key, i) => {
    const sig = env.signatures[i];
    const publicKey = parsePrimary(key);
    if (!publicKey || sig?.alg !== "ed25519-sha512-jcs" || sig.key !== key || !/^[0-9a-f]{128}$/.test(sig.sig ?? "") || !verify(publicKey, message, hexToBytes(sig.sig))) {
      throw new BindingError("The rotation's signatures do not verify: this binding cannot be trusted.");
    }
  });
  return {
    handle: p.handle,
    server: expect.server.toLowerCase(),
    fqhn: b.fqhn,
    primary: p.new,
    publicKey: parsePrimary(p.new)!,
    registeredAt: b.registered_at ?? p.created_at,
    movedFrom: p.old,
  };
}
