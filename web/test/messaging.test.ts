import { schnorr } from "@noble/curves/secp256k1.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, hexToBytes, randomBytes } from "@noble/hashes/utils.js";
import { describe, expect, it } from "vitest";
import fixed from "../../tests/vectors/messaging.json";
import { identityFromSeed, newIdentity } from "../src/lib/identity";
import { type Body, CHECKPOINT_MAX, CHUNK_BYTES, INLINE_MAX, MessageError, decodeMessage, encodeMessage, newId, sendableMime, sendableName } from "../src/lib/message";
import { KIND, eventId, hasValidId, inboxTag, unwrap, wrap } from "../src/lib/nostr";
import { BUCKETS, CONTENT_CEILING, MAX_PADDED, SealError, bucketFor, open, pad, seal, unpad } from "../src/lib/seal";

const alice = newIdentity();
const bob = newIdentity();

/** `n` bytes of a pattern (getRandomValues stops at 64 KiB). */
const bytesOf = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 131 + 7) & 0xff);

/** `bytes` with the UTF-8 of `from` replaced by `to` (same length), like a tampering relay. */
function replaced(bytes: Uint8Array, from: string, to: string): Uint8Array {
  const f = new TextEncoder().encode(from);
  const t = new TextEncoder().encode(to);
  const at = bytes.findIndex((_, i) => f.every((b, j) => bytes[i + j] === b));
  expect(at).toBeGreaterThanOrEqual(0);
  const out = bytes.slice();
  out.set(t, at);
  return out;
}

describe("kez-seal-v1", () => {
  it("opens only for the recipient", () => {
    const message = new TextEncoder().encode("hello bob");
    const sealed = seal(message, bob.publicKey);
    expect(open(sealed, bob.seed)).toEqual(message);
    expect(() => open(sealed, alice.seed)).toThrow(SealError);
    const altered = sealed.slice();
    altered[80] ^= 1;
    expect(() => open(altered, bob.seed)).toThrow(SealError);
  });

  it("uses a fresh ephemeral key and nonce every time", () => {
    const m = new Uint8Array(10);
    const a = seal(m, bob.publicKey);
    const b = seal(m, bob.publicKey);
    expect(bytesToHex(a.subarray(1, 57))).not.toBe(bytesToHex(b.subarray(1, 57)));
  });

  it("pads to buckets so sizes leak only the bucket", () => {
    expect(bucketFor(0)).toBe(512);
    expect(bucketFor(508)).toBe(512);
    expect(bucketFor(509)).toBe(1024);
    expect(BUCKETS.at(-1)).toBe(MAX_PADDED);
    expect(seal(new Uint8Array(3), bob.publicKey).length).toBe(seal(new Uint8Array(400), bob.publicKey).length);
    expect(() => bucketFor(MAX_PADDED)).toThrow(SealError);
    const padded = pad(new Uint8Array([1, 2, 3]));
    expect(unpad(padded)).toEqual(new Uint8Array([1, 2, 3]));
    padded[100] = 1;
    expect(() => unpad(padded)).toThrow(/padding/);
  });

  it("keeps the largest box's base64 within the content ceiling", () => {
    const sealed = seal(new Uint8Array(MAX_PADDED - 4), bob.publicKey);
    expect(Math.ceil(sealed.length / 3) * 4).toBeLessThanOrEqual(CONTENT_CEILING);
  });
});

describe("message bodies", () => {
  it("round-trips text, signed by the sender and bound to the recipient", () => {
    const bytes = encodeMessage(alice, bob.primary, { type: "text", text: "hi ✓" });
    const m = decodeMessage(bytes, bob.primary);
    expect(m.header).toMatchObject({ type: "text", text: "hi ✓", from: alice.primary, to: bob.primary, v: 1 });
    expect(() => decodeMessage(bytes, alice.primary)).toThrow(/another key/);
  });

  it("catches a forged sender or altered bytes", () => {
    const bytes = encodeMessage(alice, bob.primary, { type: "text", text: "pay carol" });
    expect(() => decodeMessage(replaced(bytes, alice.primary, newIdentity().primary), bob.primary)).toThrow(/signature/);
    expect(() => decodeMessage(replaced(bytes, "pay carol", "pay dave!"), bob.primary)).toThrow(/signature/);
  });

  it("carries inline file bytes raw and checks them", () => {
    const data = randomBytes(1000);
    const body = { type: "kez-file-v1", mode: "inline", file_id: newId(), name: "a.png", mime: "image/png", size: 1000, sha256: bytesToHex(sha256(data)) } as const;
    const bytes = encodeMessage(alice, bob.primary, body, data);
    expect(bytes.length).toBeLessThan(1000 + 600);
    expect(decodeMessage(bytes, bob.primary).data).toEqual(data);
    const wrongHash = encodeMessage(alice, bob.primary, { ...body, sha256: "00".repeat(32) }, data);
    expect(() => decodeMessage(wrongHash, bob.primary)).toThrow(MessageError);
    const tooBig = encodeMessage(alice, bob.primary, { ...body, size: INLINE_MAX + 1 }, bytesOf(INLINE_MAX + 1));
    expect(() => decodeMessage(tooBig, bob.primary)).toThrow(MessageError);
  });

  it("fits a full chunk, its header and the length prefix in the largest bucket", () => {
    const bytes = encodeMessage(alice, bob.primary, { type: "kez-file-chunk-v1", file_id: newId(), i: 54, n: 55 }, bytesOf(CHUNK_BYTES));
    expect(bucketFor(bytes.length)).toBe(MAX_PADDED);
    expect(decodeMessage(bytes, bob.primary).header).toMatchObject({ i: 54, n: 55 });
  });

  it("carries a file just over the inline limit as one chunk", () => {
    const bytes = encodeMessage(alice, bob.primary, { type: "kez-file-chunk-v1", file_id: newId(), i: 0, n: 1 }, bytesOf(INLINE_MAX + 1));
    expect(decodeMessage(bytes, bob.primary).header).toMatchObject({ i: 0, n: 1 });
  });

  it("accepts only the canonical (JCS) spelling of a header: no duplicate keys, no reformatting", () => {
    const bytes = encodeMessage(alice, bob.primary, { type: "text", text: "the real text" });
    const headerLength = new DataView(bytes.buffer).getUint32(0);
    const header = new TextDecoder().decode(bytes.subarray(4, 4 + headerLength));
    const withHeader = (text: string) => {
      const h = new TextEncoder().encode(text);
      const out = new Uint8Array(4 + h.length);
      new DataView(out.buffer).setUint32(0, h.length);
      out.set(h, 4);
      return out;
    };
    expect(decodeMessage(withHeader(header), bob.primary).header).toMatchObject({ text: "the real text" });
    // A parser that keeps the first of two keys would show "evil"; JSON.parse keeps the last.
    expect(() => decodeMessage(withHeader(header.replace("{", '{"text":"evil",')), bob.primary)).toThrow(/canonical/);
    expect(() => decodeMessage(withHeader(header.replace(",", ", ")), bob.primary)).toThrow(/canonical/);
    // Half of a surrogate pair is not text (and our canonicalizer cannot even produce it).
    expect(() => decodeMessage(withHeader(header.replace("the real text", "split \\ud83d pair")), bob.primary)).toThrow(/canonical/);
  });

  it("carries gossip's checkpoint on texts and receipts only, as a bounded string", () => {
    const checkpoint = "localhost/log\n3\nAAAA\n\n— localhost/log xyz\n";
    const gossiping: Body[] = [{ type: "text", text: "hi", checkpoint }, { type: "receipt", of: [newId()], checkpoint }];
    for (const body of gossiping) {
      expect(decodeMessage(encodeMessage(alice, bob.primary, body), bob.primary).header).toMatchObject({ checkpoint });
    }
    const bad = [
      { type: "text", text: "hi", checkpoint: "" },
      { type: "text", text: "hi", checkpoint: 3 },
      { type: "receipt", of: [newId()], checkpoint: "x".repeat(CHECKPOINT_MAX + 1) },
      { type: "kez-file-piece-v2", file_id: newId(), i: 0, k: 1, n: 1, checkpoint },
    ];
    for (const body of bad) {
      const data = body.type === "kez-file-piece-v2" ? new Uint8Array(1024) : new Uint8Array();
      expect(() => decodeMessage(encodeMessage(alice, bob.primary, body as never, data), bob.primary), JSON.stringify(body)).toThrow(MessageError);
    }
    // Inside the signed header: a relay (or anyone) that swaps it breaks the signature.
    const bytes = encodeMessage(alice, bob.primary, { type: "text", text: "hi", checkpoint: "localhost/log\n3\nAAAA\n" });
    expect(() => decodeMessage(replaced(bytes, "log\\n3", "log\\n4"), bob.primary)).toThrow(/signature/);
  });

  it("refuses malformed bodies", () => {
    const bad = [
      { type: "kez-file-chunk-v1", file_id: newId(), i: 3, n: 3 },
      { type: "kez-file-v1", mode: "pointer", file_id: newId(), name: "x", mime: "image/png", size: 5_000_000, chunks: 2, sha256: "00".repeat(32) },
      { type: "receipt", of: [] },
      { type: "text", text: "" },
      { type: "video", text: "x" },
      { type: "text", text: "x", extra: 1 },
    ];
    for (const body of bad) {
      const data = body.type === "kez-file-chunk-v1" ? new Uint8Array(10) : new Uint8Array();
      expect(() => decodeMessage(encodeMessage(alice, bob.primary, body as never, data), bob.primary), JSON.stringify(body)).toThrow(MessageError);
    }
  });
});

describe("nostr wrapping", () => {
  it("makes a valid NIP-01 event by a fresh key, tagged with the inbox", () => {
    const sealed = seal(new Uint8Array(5), bob.publicKey);
    const a = wrap(sealed, bob.publicKey);
    const b = wrap(sealed, bob.publicKey);
    expect(a.kind).toBe(KIND);
    expect(a.pubkey).not.toBe(b.pubkey);
    expect(a.tags).toEqual([["p", inboxTag(bob.publicKey)]]);
    expect(a.id).toBe(eventId(a));
    expect(schnorr.verify(hexToBytes(a.sig), hexToBytes(a.id), hexToBytes(a.pubkey))).toBe(true);
    expect(unwrap(a)).toEqual(sealed);
    expect(unwrap({ ...a, kind: 1 })).toBeNull();
    expect(hasValidId(a)).toBe(true);
    expect(hasValidId({ ...a, content: a.content.slice(1) })).toBe(false);
    expect(hasValidId({ ...a, tags: [] })).toBe(false);
  });

  it("computes the NIP-01 id over the serialized array", () => {
    const e = { pubkey: "ab".repeat(32), created_at: 1700000000, kind: 1, tags: [["p", "x"]], content: 'he said "hi"\n' };
    const serialized = `[0,"${e.pubkey}",1700000000,1,[["p","x"]],"he said \\"hi\\"\\n"]`;
    expect(eventId(e)).toBe(bytesToHex(sha256(new TextEncoder().encode(serialized))));
  });
});

describe("fixed vectors (tests/vectors/messaging.json)", () => {
  const alice = identityFromSeed(hexToBytes(fixed.alice.seed_hex));
  const bob = identityFromSeed(hexToBytes(fixed.bob.seed_hex));
  const t = fixed.text_message;

  it("derives the keys and inbox tags", () => {
    expect(alice.primary).toBe(fixed.alice.primary);
    expect(bob.primary).toBe(fixed.bob.primary);
    expect(inboxTag(bob.publicKey)).toBe(fixed.bob.inbox_tag);
    expect(inboxTag(alice.publicKey)).toBe(fixed.alice.inbox_tag);
  });

  it("encodes the text message byte for byte", () => {
    const message = encodeMessage(alice, bob.primary, { type: "text", text: t.text }, new Uint8Array(), t.id, t.sent_at);
    expect(bytesToHex(message)).toBe(t.message_hex);
    expect(decodeMessage(hexToBytes(t.message_hex), bob.primary).header).toMatchObject({ text: t.text, from: alice.primary });
  });

  it("seals it byte for byte, and opens it", () => {
    const s = fixed.seal;
    const box = seal(hexToBytes(t.message_hex), bob.publicKey, hexToBytes(s.ephemeral_secret_hex), hexToBytes(s.nonce_hex));
    expect(bytesToHex(box)).toBe(s.box_hex);
    expect(bytesToHex(open(hexToBytes(s.box_hex), bob.seed))).toBe(t.message_hex);
    expect(unwrap({ kind: KIND, content: s.content_base64 })).toEqual(box);
  });
});

describe("picked files made sendable", () => {
  it("replaces control characters and slashes, never splits a surrogate pair, never leaves a name empty", () => {
    expect(sendableName("a/b\\c\nd.png")).toBe("a_b_c_d.png");
    const long = "😀".repeat(200); // 400 UTF-16 units
    const cut = sendableName(long);
    expect(cut.length).toBe(254);
    expect(cut).toBe("😀".repeat(127));
    expect(sendableName("")).toBe("file");
  });

  it("keeps a plain MIME type, lowercased, and sends anything else as bytes", () => {
    expect(sendableMime("Image/PNG")).toBe("image/png");
    expect(sendableMime("")).toBe("application/octet-stream");
    expect(sendableMime("text/html; charset=utf-8")).toBe("application/octet-stream");
  });
});
