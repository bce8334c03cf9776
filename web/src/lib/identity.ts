// A KEZ identity: an Ed25519 key pair from a 32-byte seed (RFC 8032), shown as
// `ed25519:<hex>` and as a short fingerprint people can read to each other.
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, hexToBytes, randomBytes } from "@noble/hashes/utils.js";

export interface Identity {
  /** The secret. Stays on this device unless the person exports it. */
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
  /** `ed25519:` + 64 lowercase hex digits of the public key. */
  readonly primary: string;
}

const PRIMARY = /^ed25519:([0-9a-f]{64})$/;

export function identityFromSeed(seed: Uint8Array): Identity {
  if (seed.length !== 32) throw new Error("an Ed25519 seed is 32 bytes");
  const publicKey = ed25519.getPublicKey(seed);
  return { seed: Uint8Array.from(seed), publicKey, primary: `ed25519:${bytesToHex(publicKey)}` };
}

/** A fresh identity from the platform's CSPRNG (crypto.getRandomValues). */
export function newIdentity(): Identity {
  return identityFromSeed(randomBytes(32));
}

export function sign(identity: Identity, message: Uint8Array): Uint8Array {
  return ed25519.sign(message, identity.seed);
}

/**
 * The public key inside a primary key string, or null unless it is `ed25519:` + 64 lowercase
 * hex of a valid curve point that is not of small order (what the server accepts).
 */
export function parsePrimary(primary: string): Uint8Array | null {
  const m = PRIMARY.exec(primary);
  if (!m) return null;
  try {
    const point = ed25519.Point.fromHex(m[1]);
    return point.isSmallOrder() ? null : hexToBytes(m[1]);
  } catch {
    return null;
  }
}

/** Strict RFC 8032 verification (no ZIP-215 leniency), as the server verifies. */
export function verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

/**
 * Short fingerprint of a public key: the first 10 bytes of SHA-256 over the 32 key bytes,
 * as five groups of four uppercase hex digits ("3F2A 91C0 7B1E 44D2 0A9C"). Two people
 * compare it aloud to know they hold the same key.
 */
export function fingerprint(publicKey: Uint8Array): string {
  const hex = bytesToHex(sha256(publicKey).subarray(0, 10)).toUpperCase();
  return hex.match(/.{4}/g)!.join(" ");
}
