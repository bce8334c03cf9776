// NATS helpers for kez-chat clients: nkey encoding (base32 + CRC-16/XMODEM, as nats-server
// expects it) and logging in with a KEZ identity key used directly as a NATS user nkey.
import { sign } from "node:crypto";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const PREFIX = { user: 20 << 3, account: 0, server: 13 << 3, curve: 23 << 3 };

function crc16(bytes) {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

function base32(bytes) {
  let bits = 0, value = 0, out = "";
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

export function unbase32(text) {
  let bits = 0, value = 0;
  const out = [];
  for (const ch of text) {
    value = (value << 5) | ALPHABET.indexOf(ch);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 255);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** A public nkey (`U…`, `A…`, `N…`) for 32 raw Ed25519 public key bytes. */
export function nkeyFor(type, raw) {
  const body = Buffer.concat([Buffer.from([PREFIX[type]]), raw]);
  const crc = crc16(body);
  return base32(Buffer.concat([body, Buffer.from([crc & 255, crc >> 8])]));
}

/**
 * What a NATS nonce looks like: URL-safe base64 without padding, 11 to 64 characters.
 * nats-server 2.x sends 11 random bytes as base64 RawURLEncoding, 15 characters
 * (server/nkey.go: nonceRawLen = 11, nonceLen = 15).
 *
 * The identity key signs nonces directly, so this is its domain separation: such a string
 * can never be a message header's signed bytes (they start with "kez-msg-v1" and a NUL byte)
 * nor a registration payload (JCS JSON, which starts with "{"). A NATS server, or whoever
 * sits on a plain ws:// path, cannot get either signed by passing it off as a nonce.
 */
export const NATS_NONCE = /^[A-Za-z0-9_-]{11,64}$/;

/** `nonce` if it looks like a NATS nonce (NATS_NONCE); throws otherwise. */
export function checkNatsNonce(nonce) {
  if (typeof nonce !== "string" || !NATS_NONCE.test(nonce)) {
    const shown = typeof nonce === "string" ? JSON.stringify(nonce.length > 80 ? `${nonce.slice(0, 80)}…` : nonce) : String(nonce);
    throw new Error(`refusing to sign a NATS nonce that does not look like one (11-64 URL-safe base64 characters): ${shown}`);
  }
  return nonce;
}

/**
 * An authenticator that logs in with a KEZ identity's key used directly as a user nkey.
 * It signs only nonces that pass checkNatsNonce; anything else fails the connection.
 */
export function kezAuthenticator(identity, signWith = identity.privateKey) {
  const nkey = nkeyFor("user", Buffer.from(identity.primary.slice("ed25519:".length), "hex"));
  return (nonce) => ({ nkey, sig: sign(null, Buffer.from(checkNatsNonce(nonce), "utf8"), signWith).toString("base64url") });
}

/** An nkey seed (`SU…`, `SA…`) for 32 raw Ed25519 seed bytes. */
export function seedFor(type, raw) {
  const prefix = PREFIX[type];
  const body = Buffer.concat([Buffer.from([(18 << 3) | (prefix >> 5), (prefix & 31) << 3]), raw]);
  const crc = crc16(body);
  return base32(Buffer.concat([body, Buffer.from([crc & 255, crc >> 8])]));
}
