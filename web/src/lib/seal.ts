// The sealed box every message travels in (kez-seal-v1, docs/PROTOCOL.md): only the
// recipient can open it. X25519 between a fresh ephemeral key and the recipient's KEZ key
// (its Ed25519 key in Montgomery form), HKDF-SHA256, XChaCha20-Poly1305; the plaintext is
// padded to a size bucket so sizes leak only the bucket.
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, randomBytes, utf8ToBytes } from "@noble/hashes/utils.js";

const SEAL_VERSION = 1;
const INFO = utf8ToBytes("kez-seal-v1");
/** version (1) + ephemeral X25519 key (32) + nonce (24) + Poly1305 tag (16). */
export const SEAL_OVERHEAD = 1 + 32 + 24 + 16;
/** The most event content (base64 characters) a relay is sent: under the common 256 KiB limit. */
export const CONTENT_CEILING = 256_000;
/** The largest padded plaintext: its sealed form is exactly CONTENT_CEILING characters of base64. */
export const MAX_PADDED = (CONTENT_CEILING / 4) * 3 - SEAL_OVERHEAD;
/** Padded sizes: 512 B doubling to 128 KiB, then MAX_PADDED. */
export const BUCKETS: readonly number[] = [...Array.from({ length: 9 }, (_, k) => 512 << k), MAX_PADDED];
/**
 * Every padded size is a multiple of this (or MAX_PADDED). Senders use the buckets, and the
 * largest multiple that fits their tightest relay for what no bucket below it holds (§3.2).
 */
export const PAD_STEP = 512;

export class SealError extends Error {}

/** Whether a padded plaintext may have this length. */
export const isPaddedSize = (length: number) => length === MAX_PADDED || (length % PAD_STEP === 0 && length >= PAD_STEP && length < MAX_PADDED);

/**
 * The size a message of `length` bytes is padded to (4 bytes of length prefix included): the
 * smallest bucket that holds it, unless that is over `maxPadded` (a multiple of PAD_STEP that
 * the relays take), in which case `maxPadded` itself.
 */
export function bucketFor(length: number, maxPadded = MAX_PADDED): number {
  const bucket = BUCKETS.find((b) => b >= 4 + length);
  if (bucket !== undefined && bucket <= maxPadded) return bucket;
  if (4 + length <= maxPadded && isPaddedSize(maxPadded)) return maxPadded;
  throw new SealError(`a message of ${length} bytes does not fit in one event`);
}

export function pad(message: Uint8Array, maxPadded = MAX_PADDED): Uint8Array {
  const out = new Uint8Array(bucketFor(message.length, maxPadded));
  new DataView(out.buffer).setUint32(0, message.length);
  out.set(message, 4);
  return out;
}

export function unpad(padded: Uint8Array): Uint8Array {
  if (!isPaddedSize(padded.length)) throw new SealError("not a padded size");
  const length = new DataView(padded.buffer, padded.byteOffset, padded.byteLength).getUint32(0);
  if (length > padded.length - 4 || padded.subarray(4 + length).some((b) => b !== 0)) throw new SealError("bad padding");
  return padded.subarray(4, 4 + length);
}

function keyFor(shared: Uint8Array, ephemeral: Uint8Array, recipient: Uint8Array): Uint8Array {
  if (shared.every((b) => b === 0)) throw new SealError("low-order key");
  return hkdf(sha256, shared, concatBytes(ephemeral, recipient), INFO, 32);
}

/**
 * Seals `message` for the holder of the Ed25519 key `recipientEd25519`. The ephemeral secret
 * and the nonce are fresh random values; only the fixed test vectors pass their own.
 */
export function seal(
  message: Uint8Array,
  recipientEd25519: Uint8Array,
  ephemeralSecret: Uint8Array = x25519.utils.randomSecretKey(),
  nonce: Uint8Array = randomBytes(24),
  maxPadded = MAX_PADDED,
): Uint8Array {
  const recipient = ed25519.utils.toMontgomery(recipientEd25519);
  const ephemeral = x25519.getPublicKey(ephemeralSecret);
  const key = keyFor(x25519.getSharedSecret(ephemeralSecret, recipient), ephemeral, recipient);
  const header = concatBytes(Uint8Array.of(SEAL_VERSION), ephemeral, nonce);
  const ciphertext = xchacha20poly1305(key, nonce, concatBytes(Uint8Array.of(SEAL_VERSION), ephemeral, recipient)).encrypt(pad(message, maxPadded));
  return concatBytes(header, ciphertext);
}

/** Opens a sealed box with the recipient's Ed25519 seed; throws SealError if it is not for us. */
export function open(sealed: Uint8Array, recipientSeed: Uint8Array): Uint8Array {
  if (sealed.length < SEAL_OVERHEAD || sealed[0] !== SEAL_VERSION) throw new SealError("not a kez-seal-v1 box");
  const ephemeral = sealed.subarray(1, 33);
  const nonce = sealed.subarray(33, 57);
  const secret = ed25519.utils.toMontgomerySecret(recipientSeed);
  const recipient = x25519.getPublicKey(secret);
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(secret, ephemeral);
  } catch {
    throw new SealError("bad ephemeral key");
  }
  const key = keyFor(shared, ephemeral, recipient);
  let padded: Uint8Array;
  try {
    padded = xchacha20poly1305(key, nonce, concatBytes(Uint8Array.of(SEAL_VERSION), ephemeral, recipient)).decrypt(sealed.subarray(57));
  } catch {
    throw new SealError("cannot open: not for this key, or altered");
  }
  return unpad(padded);
}
