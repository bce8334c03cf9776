// Nostr wrapping (NIP-01) of sealed boxes: one regular event per box, signed by a fresh
// random key so relays cannot link a person's messages by author, tagged with the
// recipient's inbox tag so the recipient can subscribe to its own traffic.
import { schnorr } from "@noble/curves/secp256k1.js";
import { base64 } from "@scure/base";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, concatBytes, hexToBytes, utf8ToBytes } from "@noble/hashes/utils.js";

/** A regular kind (1000-9999): relays keep every event, unlike replaceable kinds. */
export const KIND = 4260;
const INBOX_CONTEXT = utf8ToBytes("kez-inbox-v1");

export interface NostrEvent {
  id: string;
  pubkey: string;
  created_at: number;
  kind: number;
  tags: string[][];
  content: string;
  sig: string;
}

/** The `p` tag value of someone's inbox: SHA-256("kez-inbox-v1" || Ed25519 public key), hex. */
export function inboxTag(publicKey: Uint8Array): string {
  return bytesToHex(sha256(concatBytes(INBOX_CONTEXT, publicKey)));
}

export function eventId(e: Omit<NostrEvent, "id" | "sig">): string {
  return bytesToHex(sha256(utf8ToBytes(JSON.stringify([0, e.pubkey, e.created_at, e.kind, e.tags, e.content]))));
}

/** Signs an event with a fresh random key, used for this event alone. */
function signWithFreshKey(event: Pick<NostrEvent, "created_at" | "kind" | "tags" | "content">): NostrEvent {
  const secret = schnorr.utils.randomSecretKey();
  const unsigned = { pubkey: bytesToHex(schnorr.getPublicKey(secret)), ...event };
  const id = eventId(unsigned);
  return { ...unsigned, id, sig: bytesToHex(schnorr.sign(hexToBytes(id), secret)) };
}

/** Wraps a sealed box for the holder of `recipient` (Ed25519 public key). */
export function wrap(sealed: Uint8Array, recipient: Uint8Array, now = Date.now()): NostrEvent {
  return signWithFreshKey({ created_at: Math.floor(now / 1000), kind: KIND, tags: [["p", inboxTag(recipient)]], content: base64.encode(sealed) });
}

/** NIP-42 authentication kind. */
export const AUTH_KIND = 22242;

/**
 * A NIP-42 AUTH event answering a relay's challenge, by a throwaway key: it proves nothing
 * about who we are (relays that want a known key get none), only that a client answers.
 */
export function authEvent(relayUrl: string, challenge: string, now = Date.now()): NostrEvent {
  return signWithFreshKey({ created_at: Math.floor(now / 1000), kind: AUTH_KIND, tags: [["relay", relayUrl], ["challenge", challenge]], content: "" });
}

/** Whether `id` is the NIP-01 hash of the event's other fields. */
export function hasValidId(e: Partial<NostrEvent>): boolean {
  if (typeof e.pubkey !== "string" || !Number.isSafeInteger(e.created_at) || typeof e.kind !== "number" || !Array.isArray(e.tags) || typeof e.content !== "string") {
    return false;
  }
  return eventId(e as NostrEvent) === e.id;
}

/** The sealed box inside an event of ours, or null for anything else. */
export function unwrap(e: unknown): Uint8Array | null {
  const event = e as Partial<NostrEvent> | null;
  if (!event || event.kind !== KIND || typeof event.content !== "string") return null;
  try {
    return base64.decode(event.content);
  } catch {
    return null;
  }
}
