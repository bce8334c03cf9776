// Builds and signs KEZ handle registration envelopes with Node's own Ed25519
// (RFC 8032) and the npm canonicalize package (RFC 8785 JCS).
import { createPrivateKey, createPublicKey, randomBytes, sign } from "node:crypto";
import canonicalize from "canonicalize";

// DER prefix of a PKCS#8 Ed25519 private key, followed by the 32-byte seed.
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/** An identity from a 32-byte seed (hex); a fresh random one when no seed is given. */
export function identity(seedHex = randomBytes(32).toString("hex")) {
  if (!/^[0-9a-f]{64}$/.test(seedHex)) throw new Error("a seed is 64 lowercase hex digits");
  const privateKey = createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519_PREFIX, Buffer.from(seedHex, "hex")]),
    format: "der",
    type: "pkcs8",
  });
  const raw = Buffer.from(createPublicKey(privateKey).export({ format: "jwk" }).x, "base64url");
  return { seedHex, privateKey, primary: `ed25519:${raw.toString("hex")}` };
}

/** The payload a registration signs. `createdAt` defaults to now. */
export function registrationPayload({ handle, primary, server, createdAt = new Date() }) {
  return {
    type: "kez.chat.handle_registration",
    version: 1,
    handle,
    primary,
    server,
    created_at: createdAt instanceof Date ? createdAt.toISOString() : createdAt,
  };
}

/** Signs `payload` (any JSON value) and wraps it in the registration envelope. */
export function signEnvelope(id, payload) {
  const sig = sign(null, Buffer.from(canonicalize(payload), "utf8"), id.privateKey).toString("hex");
  return {
    kez: "handle_registration",
    payload,
    signature: { alg: "ed25519-sha512-jcs", key: id.primary, sig },
  };
}


/** One `{alg, key, sig}` signature of `payload`'s JCS bytes by `id`. */
export function signatureOf(id, payload) {
  return { alg: "ed25519-sha512-jcs", key: id.primary, sig: sign(null, Buffer.from(canonicalize(payload), "utf8"), id.privateKey).toString("hex") };
}

/** A key rotation of `handle` from `old` to `next` (identities), signed by both, old first. */
export function rotationEnvelope(old, next, { handle, server, createdAt = new Date() }) {
  const payload = { type: "kez.chat.key_rotation", version: 1, handle, server, old: old.primary, new: next.primary, created_at: createdAt.toISOString() };
  return { kez: "key_rotation", payload, signatures: [signatureOf(old, payload), signatureOf(next, payload)] };
}

/** The release of `handle` by `id`, the key that holds it. */
export function releaseEnvelope(id, { handle, server, createdAt = new Date() }) {
  const payload = { type: "kez.chat.handle_release", version: 1, handle, primary: id.primary, server, created_at: createdAt.toISOString() };
  return { kez: "handle_release", payload, signature: signatureOf(id, payload) };
}
