// Protocol v2 files: piece sizing against relay limits, the counts k and n, striping, the
// erasure code (the real wasm module), and the receiver's checks on v2 bodies.
import { describe, expect, it } from "vitest";
import { decodeSource, encodeRecovery } from "../src/lib/erasure";
import { planPieces } from "../src/lib/files";
import { newIdentity } from "../src/lib/identity";
import { MAX_PIECE_RELAYS, MAX_SOURCE_PIECES, MessageError, PIECE_SCHEME, decodeMessage, encodeMessage } from "../src/lib/message";
import { wrap } from "../src/lib/nostr";
import { canonicalBytes } from "../src/lib/registration";
import { MAX_PADDED, PAD_STEP, SealError, bucketFor, open, seal, unpad } from "../src/lib/seal";
import {
  ASSUMED_LIMITS,
  DEFAULT_MAX_MESSAGE,
  EVENT_OVERHEAD,
  PIECE_HEADER_MAX,
  type RelayLimits,
  contentLength,
  limitsFromNip11,
  maxPaddedFor,
  maxPaddedForAll,
  MIN_SIZING_PADDED,
  pieceBytesFor,
  pieceCounts,
  stripe,
  takesPieces,
  toleratedLosses,
} from "../src/lib/transfer";

const relaysNeeded = (relays: number) => relays - toleratedLosses(relays);

const alice = newIdentity();
const bob = newIdentity();
const bytesOf = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 131 + 7) & 0xff);
const limits = (maxMessageLength: number, extra: Partial<RelayLimits> = {}): RelayLimits => ({ ...ASSUMED_LIMITS, maxMessageLength, stated: true, ...extra });
const fileId = "0123456789abcdef0123456789abcdef";

/** The whole `["EVENT", …]` message of a piece as sent, in bytes. */
function pieceMessageBytes(pieceBytes: number, maxPadded: number, header: { i: number; k: number; n: number }, sentAt = Date.now()) {
  const message = encodeMessage(alice, bob.primary, { type: "kez-file-piece-v2", file_id: fileId, ...header }, bytesOf(pieceBytes), undefined, sentAt);
  const event = wrap(seal(message, bob.publicKey, undefined, undefined, maxPadded), bob.publicKey);
  return { length: new TextEncoder().encode(JSON.stringify(["EVENT", event])).length, event };
}

describe("piece sizing", () => {
  it("PIECE_HEADER_MAX is the exact length of the longest piece header", () => {
    const header = { type: "kez-file-piece-v2", file_id: fileId, i: 65_535, k: 32_768, n: 65_536, v: 1, id: fileId, from: alice.primary, to: bob.primary, sent_at: 8_640_000_000_000_000, sig: "0".repeat(128) };
    expect(canonicalBytes(header).length).toBe(PIECE_HEADER_MAX);
  });

  it("a full piece's EVENT message fits a 64 KiB relay, and one more padding step would not", () => {
    const maxPadded = maxPaddedFor([ASSUMED_LIMITS]);
    const pieceBytes = pieceBytesFor(maxPadded);
    expect(maxPadded % PAD_STEP).toBe(0);
    const { length } = pieceMessageBytes(pieceBytes, maxPadded, { i: 65_535, k: 32_768, n: 65_536 }, 8_640_000_000_000_000);
    expect(length).toBeLessThanOrEqual(DEFAULT_MAX_MESSAGE);
    expect(EVENT_OVERHEAD + contentLength(maxPadded + PAD_STEP)).toBeGreaterThan(DEFAULT_MAX_MESSAGE);
    // About 47 KB of file per 64 KiB event.
    expect(pieceBytes).toBeGreaterThan(47_000);
  });

  it("a relay stating a tiny limit does not size what goes to every relay", () => {
    // One hostile or misconfigured relay of three: before, every text was "too long for your relays".
    expect(maxPaddedFor([limits(65_536), limits(1_000)])).toBe(0);
    expect(maxPaddedForAll([limits(65_536), limits(1_000), limits(262_144)])).toBe(maxPaddedFor([limits(65_536)]));
    expect(maxPaddedForAll([limits(65_536), limits(1_000, { maxContentLength: 10 })])).toBe(maxPaddedFor([limits(65_536)]));
    // A relay of 32 KiB still sizes it; with only tiny relays, they do.
    expect(maxPaddedForAll([limits(65_536), limits(32_768)])).toBe(maxPaddedFor([limits(32_768)]));
    expect(maxPaddedForAll([limits(1_000), limits(4_000)])).toBe(maxPaddedFor([limits(1_000)]));
    expect(maxPaddedFor([limits(32_768)])).toBeGreaterThanOrEqual(MIN_SIZING_PADDED);
  });

  it("sizes for the tightest relay, and honours a content limit", () => {
    expect(maxPaddedFor([limits(262_144), limits(65_536)])).toBe(maxPaddedFor([limits(65_536)]));
    expect(maxPaddedFor([limits(1_000_000)])).toBe(MAX_PADDED);
    const tight = maxPaddedFor([limits(1_000_000, { maxContentLength: 20_000 })]);
    expect(contentLength(tight)).toBeLessThanOrEqual(20_000);
    expect(contentLength(tight + PAD_STEP)).toBeGreaterThan(20_000);
  });

  it("pads what no bucket below the relays' ceiling holds to that ceiling, and refuses more", () => {
    const ceiling = maxPaddedFor([ASSUMED_LIMITS]);
    expect(bucketFor(100, ceiling)).toBe(512);
    expect(bucketFor(40_000, ceiling)).toBe(ceiling);
    expect(() => bucketFor(ceiling, ceiling)).toThrow(SealError);
    const box = seal(bytesOf(40_000), bob.publicKey, undefined, undefined, ceiling);
    expect(open(box, bob.seed)).toEqual(bytesOf(40_000));
    const odd = new Uint8Array(ceiling + 1);
    expect(() => unpad(odd)).toThrow(SealError);
  });
});

describe("counts and striping", () => {
  it("the pieces left after the tolerated losses are at least k (5 relays: any 3 of them)", () => {
    for (const relays of [2, 3, 4, 5, 8, 20]) {
      const survivors = relays - toleratedLosses(relays);
      for (let k = 1; k <= 300; k++) {
        const { n } = pieceCounts(k * 1000, 1000, relays);
        const sizes = [...stripe(n, Array.from({ length: relays }, (_, r) => r)).values()].map((s) => s.length).sort((a, b) => a - b);
        expect(sizes.slice(0, survivors).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(k);
        expect(n).toBeGreaterThanOrEqual(k);
      }
    }
    expect(relaysNeeded(5)).toBe(3);
  });

  it("falls back: one relay gets every piece, two relays each carry the whole file", () => {
    expect(pieceCounts(10_000, 1000, 1)).toEqual({ k: 10, n: 10 });
    const { n } = pieceCounts(10_000, 1000, 2);
    expect(n).toBe(20);
    expect([...stripe(n, ["a", "b"]).values()].map((s) => s.length)).toEqual([10, 10]);
    expect(toleratedLosses(1)).toBe(0);
    expect(toleratedLosses(2)).toBe(1);
    expect(toleratedLosses(3)).toBe(1);
    expect(toleratedLosses(4)).toBe(1);
    expect(toleratedLosses(5)).toBe(2);
    expect(toleratedLosses(20)).toBe(8);
  });

  it("plans only over relays that take pieces; the naive plan sends every piece everywhere", () => {
    const relays = new Map([
      ["wss://a", limits(65_536)],
      ["wss://b", limits(262_144)],
      ["wss://paid", limits(262_144, { restrictedWrites: true })],
      ["wss://tiny", limits(8_000)],
      // Large events, but a content limit that would leave a piece 1 KB (or no room at all).
      ["wss://tiny-content", { ...limits(262_144), maxContentLength: 2_147 }],
    ]);
    expect(takesPieces(relays.get("wss://tiny-content")!)).toBe(false);
    const plan = planPieces(5_000_000, relays, true);
    expect([...plan.shares.keys()]).toEqual(["wss://a", "wss://b"]);
    expect(plan.pieceBytes).toBe(pieceBytesFor(maxPaddedFor([limits(65_536)])));
    expect(plan.n).toBe(2 * plan.k);
    const naive = planPieces(5_000_000, relays, false);
    expect(naive.n).toBe(naive.k);
    expect([...naive.shares.values()].every((s) => s.length === naive.k)).toBe(true);
    expect(() => planPieces(1, new Map([["wss://paid", limits(262_144, { restrictedWrites: true })]]), true)).toThrow(/None of your relays/);
  });
});

describe("the counts receivers accept", () => {
  it("every plan a sender makes, over up to 100 relays, has n ≤ 2k + MAX_PIECE_RELAYS", () => {
    for (const relays of [1, 2, 3, 5, 20, 64, 65, 100]) {
      const limitsOf = new Map(Array.from({ length: relays }, (_, r) => [`wss://r${r}`, limits(65_536)] as const));
      for (const size of [1, 40_000, 1_000_000, 10 * 1024 * 1024]) {
        const plan = planPieces(size, limitsOf, true);
        expect(plan.shares.size).toBe(Math.min(relays, MAX_PIECE_RELAYS));
        expect(plan.n, `${relays} relays, ${size} bytes`).toBeLessThanOrEqual(2 * plan.k + MAX_PIECE_RELAYS);
      }
    }
  });
});

describe("NIP-11 limits", () => {
  it("reads limitation fields and assumes 64 KiB when there are none", () => {
    expect(limitsFromNip11({ limitation: { max_message_length: 131_072, max_content_length: 100_000, max_event_tags: 100, auth_required: true, restricted_writes: false } })).toEqual({
      maxMessageLength: 131_072,
      maxContentLength: 100_000,
      maxEventTags: 100,
      authRequired: true,
      restrictedWrites: false,
      stated: true,
    });
    expect(limitsFromNip11({ name: "x" })).toEqual(ASSUMED_LIMITS);
    expect(limitsFromNip11(null)).toEqual(ASSUMED_LIMITS);
    expect(limitsFromNip11({ limitation: { max_message_length: "big", max_content_length: -1 } })).toEqual(ASSUMED_LIMITS);
    expect(takesPieces(limitsFromNip11({ limitation: { max_event_tags: 0 } }))).toBe(false);
  });
});

describe("erasure code (reed-solomon-simd in wasm)", () => {
  it("rebuilds the source from any k of n pieces", async () => {
    const k = 7;
    const n = 12;
    const pieceBytes = 1000;
    const source = bytesOf(k * pieceBytes);
    const recovery = await encodeRecovery(k, n, pieceBytes, source);
    expect(recovery).toHaveLength(n - k);
    const all = [...Array.from({ length: k }, (_, i) => source.subarray(i * pieceBytes, (i + 1) * pieceBytes)), ...recovery];
    for (const lost of [[0, 1, 2, 3, 4], [7, 8, 9, 10, 11], [0, 3, 6, 9, 11]]) {
      const kept = new Map(all.map((p, i) => [i, p] as const).filter(([i]) => !lost.includes(i)));
      expect(await decodeSource(k, n, pieceBytes, kept)).toEqual(source);
    }
    await expect(decodeSource(k, n, pieceBytes, new Map(all.slice(0, k - 1).map((p, i) => [i, p])))).rejects.toThrow(/not enough/);
  });
});

describe("v2 bodies", () => {
  const pointer = { type: "kez-file-v2", mode: "pieces", file_id: fileId, name: "a.png", mime: "image/png", size: 100_000, sha256: "0".repeat(64), scheme: PIECE_SCHEME, piece_bytes: 48_000, k: 3, n: 5 } as const;
  const decode = (body: object, data = new Uint8Array()) => decodeMessage(encodeMessage(alice, bob.primary, body as never, data), bob.primary);

  it("accepts a pointer whose counts follow from its size, and refuses one whose do not", () => {
    expect(decode(pointer).header).toMatchObject({ k: 3, n: 5 });
    expect(() => decode({ ...pointer, k: 4 })).toThrow(MessageError);
    expect(() => decode({ ...pointer, n: 2 })).toThrow(MessageError);
    expect(() => decode({ ...pointer, piece_bytes: 48_001, k: 3 })).toThrow(MessageError);
    expect(() => decode({ ...pointer, scheme: "xor" })).toThrow(MessageError);
    expect(decode({ ...pointer, n: 2 * 3 + MAX_PIECE_RELAYS }).header).toMatchObject({ n: 70 });
    expect(() => decode({ ...pointer, n: 2 * 3 + MAX_PIECE_RELAYS + 1 })).toThrow(MessageError);
    // One source piece and 32,768 recovery pieces: one piece sent, a gigabyte of decoding asked.
    const bomb = { ...pointer, size: 16_384, piece_bytes: 16_384, k: 1, n: 32_769 };
    expect(() => decode(bomb)).toThrow(MessageError);
    expect(() => decode({ type: "kez-file-piece-v2", file_id: fileId, i: 32_768, k: 1, n: 32_769 }, bytesOf(16_384))).toThrow(MessageError);
    expect(() => decode({ ...pointer, size: 48_000 * (MAX_SOURCE_PIECES + 1), k: MAX_SOURCE_PIECES + 1 })).toThrow(MessageError);
  });

  it("checks a piece's index against its own counts and its size", () => {
    const piece = { type: "kez-file-piece-v2", file_id: fileId, i: 4, k: 3, n: 5 };
    expect(decode(piece, bytesOf(2000)).data.length).toBe(2000);
    expect(() => decode({ ...piece, i: 5 }, bytesOf(2000))).toThrow(MessageError);
    expect(() => decode(piece, bytesOf(2001))).toThrow(MessageError); // odd
    expect(() => decode(piece, bytesOf(100))).toThrow(MessageError); // too small
  });

  it("an inline v2 file must carry exactly its bytes", () => {
    const data = bytesOf(10);
    const inline = { type: "kez-file-v2", mode: "inline", file_id: fileId, name: "a.bin", mime: "application/octet-stream", size: 10, sha256: "4a3b3ea1ad5a5e8e34ac7c8e48e02dc2e9dd6a8bcafa16ee1a8c75e4ae6c53ee" };
    expect(() => decode(inline, data)).toThrow(MessageError); // wrong hash
  });
});
