// How a file is cut for the relays it goes to (docs/PROTOCOL.md §9), as pure functions: the
// largest event each relay takes (from its NIP-11 limits), the padded size that fits the
// tightest of them, the piece size, the erasure-code counts k and n, and which relay carries
// which piece.
import { KIND } from "./nostr";
import { MAX_PADDED, PAD_STEP, SEAL_OVERHEAD } from "./seal";

/** What a relay says it accepts (NIP-11 `limitation`), or the assumption when it says nothing. */
export interface RelayLimits {
  /** Bytes of one whole WebSocket message (`["EVENT", {...}]`). */
  maxMessageLength: number;
  /** Characters of `content`, if the relay states it. */
  maxContentLength: number | null;
  /** Tags per event, if stated (ours carry one). */
  maxEventTags: number | null;
  authRequired: boolean;
  restrictedWrites: boolean;
  /** False when the relay served no usable NIP-11 document: the limits are assumed. */
  stated: boolean;
}

/** strfry's default `maxEventSize`, which runs many public relays: assumed when a relay says nothing. */
export const DEFAULT_MAX_MESSAGE = 65_536;

export const ASSUMED_LIMITS: RelayLimits = {
  maxMessageLength: DEFAULT_MAX_MESSAGE,
  maxContentLength: null,
  maxEventTags: null,
  authRequired: false,
  restrictedWrites: false,
  stated: false,
};

/**
 * Relays that take less than this are not given file pieces (the pieces would be tiny and
 * many); they still get texts, receipts and pointers that fit.
 */
export const MIN_PIECE_RELAY_MESSAGE = 16_384;

/** Bytes of an `["EVENT", event]` message besides its content (10-digit created_at, one p tag). */
export const EVENT_OVERHEAD = JSON.stringify([
  "EVENT",
  { pubkey: "0".repeat(64), created_at: 9_999_999_999, kind: KIND, tags: [["p", "0".repeat(64)]], content: "", id: "0".repeat(64), sig: "0".repeat(128) },
]).length;

/** Base64 characters of the content that carries a padded plaintext of `padded` bytes. */
export const contentLength = (padded: number) => 4 * Math.ceil((padded + SEAL_OVERHEAD) / 3);

/** The most content characters one event may have on this relay. */
export function maxContent(limits: RelayLimits): number {
  return Math.min(limits.maxMessageLength - EVENT_OVERHEAD, limits.maxContentLength ?? Infinity);
}

/**
 * The largest padded plaintext whose event every one of these relays takes: a multiple of
 * PAD_STEP, at most MAX_PADDED; 0 if not even one step fits.
 */
export function maxPaddedFor(relays: RelayLimits[]): number {
  const content = Math.min(...relays.map(maxContent));
  if (content >= contentLength(MAX_PADDED)) return MAX_PADDED;
  const padded = Math.floor(((Math.floor(content / 4) * 3 - SEAL_OVERHEAD) / PAD_STEP)) * PAD_STEP;
  return Math.max(0, padded);
}

/**
 * Relays that take less padded plaintext than this do not size what is sent to every relay
 * (texts, pointers, inline files): one relay stating a tiny limit, by mistake or on purpose,
 * would otherwise make every message too long for "your relays". They are still sent to, and
 * take what fits.
 */
export const MIN_SIZING_PADDED = 8_192;

/**
 * `maxPaddedFor` the relays that take at least MIN_SIZING_PADDED (all of them when none does):
 * the padded size for an event that goes to every relay.
 */
export function maxPaddedForAll(relays: RelayLimits[]): number {
  const sizing = relays.filter((l) => maxPaddedFor([l]) >= MIN_SIZING_PADDED);
  return maxPaddedFor(sizing.length > 0 ? sizing : relays);
}

/**
 * The longest piece header (JCS, `sig` included) with every number at its longest: i, k, n up
 * to 5 digits, sent_at up to 16. Measured on a real header in the unit tests.
 */
export const PIECE_HEADER_MAX = 475;

/** File bytes per piece when the padded plaintext may be `maxPadded`: even (the code needs it). */
export function pieceBytesFor(maxPadded: number): number {
  // padding prefix (4) + header length (4) + header + data
  return Math.max(0, (maxPadded - 8 - PIECE_HEADER_MAX) & ~1);
}

/**
 * Relays (of `count`) whose loss a transfer survives: two fifths of them, rounded down, and at
 * least one when there are two or more (2 of the default 5; 1 of 2, 3 or 4; none of 1).
 */
export const toleratedLosses = (count: number) => (count <= 1 ? 0 : Math.max(1, Math.floor((2 * count) / 5)));

export interface PieceCounts {
  /** Source pieces: ⌈size / pieceBytes⌉ (at least 1). */
  k: number;
  /** All pieces, source and recovery: a whole number per relay, n ≥ k. */
  n: number;
}

/**
 * k and n for `size` bytes striped over `relays` relays: each relay carries ⌈k / (relays − f)⌉
 * pieces, f = toleratedLosses, so the pieces on any relays − f of them are at least k.
 */
export function pieceCounts(size: number, pieceBytes: number, relays: number): PieceCounts {
  const k = Math.max(1, Math.ceil(size / pieceBytes));
  if (relays <= 1) return { k, n: k };
  const perRelay = Math.ceil(k / (relays - toleratedLosses(relays)));
  return { k, n: perRelay * relays };
}

/** Piece i goes to relay i mod R: each relay gets every R-th piece, in index order. */
export function stripe<T>(n: number, relays: T[]): Map<T, number[]> {
  const out = new Map<T, number[]>(relays.map((r) => [r, []]));
  for (let i = 0; i < n; i++) out.get(relays[i % relays.length])!.push(i);
  return out;
}

/** Reads a NIP-11 document's `limitation` (anything missing or odd is the assumption). */
export function limitsFromNip11(doc: unknown): RelayLimits {
  const limitation = (doc as { limitation?: unknown } | null)?.limitation;
  if (typeof limitation !== "object" || limitation === null) return ASSUMED_LIMITS;
  const l = limitation as Record<string, unknown>;
  const positive = (x: unknown) => (Number.isSafeInteger(x) && (x as number) > 0 ? (x as number) : null);
  const count = (x: unknown) => (Number.isSafeInteger(x) && (x as number) >= 0 ? (x as number) : null);
  const maxMessageLength = positive(l.max_message_length);
  const maxContentLength = positive(l.max_content_length);
  return {
    maxMessageLength: maxMessageLength ?? DEFAULT_MAX_MESSAGE,
    maxContentLength,
    maxEventTags: count(l.max_event_tags),
    authRequired: l.auth_required === true,
    restrictedWrites: l.restricted_writes === true,
    stated: maxMessageLength !== null || maxContentLength !== null,
  };
}

/**
 * Whether a relay may be given file pieces at all. Pieces are sized for the tightest relay
 * given them: one stating a tiny content limit must not shrink them (or leave no room for
 * one) on every relay.
 */
export function takesPieces(limits: RelayLimits): boolean {
  return !limits.restrictedWrites && limits.maxEventTags !== 0 && limits.maxMessageLength >= MIN_PIECE_RELAY_MESSAGE && maxPaddedFor([limits]) >= MIN_SIZING_PADDED;
}
