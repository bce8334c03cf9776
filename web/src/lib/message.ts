// Message bodies inside the sealed box (docs/PROTOCOL.md): a JSON header signed by the
// sender's Ed25519 key (bound to the recipient by `to`), then the raw bytes of a file or
// chunk, so file bytes are encoded once (base64 of the whole sealed box), never twice.
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, concatBytes, hexToBytes, randomBytes, utf8ToBytes } from "@noble/hashes/utils.js";
import { type Identity, parsePrimary, sign, verify } from "./identity";
import { canonicalBytes } from "./registration";
import { MAX_PADDED } from "./seal";

export const FILE_MAX = 10 * 1024 * 1024;
export const INLINE_MAX = 80 * 1024;
/** File bytes per chunk: a chunk's header and padding prefix fit beside them in MAX_PADDED. */
export const CHUNK_BYTES = 191_400;
const MAX_CHUNKS = Math.ceil(FILE_MAX / CHUNK_BYTES);
/** The erasure code of v2 pieces: Reed-Solomon over GF(2^16), Leopard-RS layout (erasure.ts). */
export const PIECE_SCHEME = "rs-leopard-gf16";
/** Source pieces: within what the code supports. */
export const MAX_SOURCE_PIECES = 32_768;
/**
 * Recovery pieces are at most k + this: a sender's are at most k plus one per relay
 * (transfer.ts `pieceCounts`), and it stripes pieces over at most this many relays. A larger
 * n would let anyone who can send one piece ask the receiver for decoding work out of all
 * proportion to it (k = 1, n = 32,769: a 65,536-shard work buffer, a gigabyte at 16 KiB pieces).
 */
export const MAX_PIECE_RELAYS = 64;
/** Receivers refuse smaller pieces: a sender needs them only for relays we do not use for files. */
export const MIN_PIECE_BYTES = 1_024;
const SIGNING_CONTEXT = utf8ToBytes("kez-msg-v1\u0000");
const HEX_ID = /^[0-9a-f]{32}$/;
const HEX_256 = /^[0-9a-f]{64}$/;
/** A UTF-16 surrogate without its partner: not Unicode text, and not portable JSON. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** A MIME type as it travels: lowercase `type/subtype`, no parameters. */
const MIME = /^[a-z0-9!#$&^_.+-]{1,64}\/[a-z0-9!#$&^_.+-]{1,64}$/;
/** File names travel with no control characters or path separators, 1-255 UTF-16 units. */
const NAME_FORBIDDEN = /[\u0000-\u001f/\\]/;
const NAME_FORBIDDEN_ALL = new RegExp(NAME_FORBIDDEN, "g");
const NAME_MAX = 255;

/**
 * Gossip (docs/TRANSPARENCY.md): texts and receipts may carry the newest checkpoint of its
 * home server's log the sender's app checked, a signed note, so two people who talk find out
 * if the server showed them different histories. Inside the sealed box: relays never see it.
 */
export interface Gossip {
  checkpoint?: string;
}
/** A signed note with a few signatures fits; anything longer is not a checkpoint of ours. */
export const CHECKPOINT_MAX = 1024;

export type Body =
  | ({ type: "text"; text: string } & Gossip)
  | { type: "kez-file-v1"; mode: "inline"; file_id: string; name: string; mime: string; size: number; sha256: string }
  | { type: "kez-file-v1"; mode: "pointer"; file_id: string; name: string; mime: string; size: number; chunks: number; sha256: string }
  | { type: "kez-file-chunk-v1"; file_id: string; i: number; n: number }
  | { type: "kez-file-v2"; mode: "inline"; file_id: string; name: string; mime: string; size: number; sha256: string }
  | {
      type: "kez-file-v2";
      mode: "pieces";
      file_id: string;
      name: string;
      mime: string;
      size: number;
      sha256: string;
      scheme: typeof PIECE_SCHEME;
      piece_bytes: number;
      k: number;
      n: number;
    }
  | { type: "kez-file-piece-v2"; file_id: string; i: number; k: number; n: number }
  | ({ type: "receipt"; of: string[] } & Gossip);

export type Header = Body & { v: 1; id: string; from: string; to: string; sent_at: number };

export interface Message {
  header: Header;
  /** File bytes (inline file or chunk); empty for the other bodies. */
  data: Uint8Array;
}

export class MessageError extends Error {}

export const newId = () => bytesToHex(randomBytes(16));

function signedBytes(unsigned: Header, data: Uint8Array): Uint8Array {
  return concatBytes(SIGNING_CONTEXT, canonicalBytes(unsigned), data);
}

/** Builds and signs a message from `sender` to `to` (a primary key). */
export function encodeMessage(sender: Identity, to: string, body: Body, data: Uint8Array = new Uint8Array(), id = newId(), sentAt = Date.now()): Uint8Array {
  const header = { ...body, v: 1, id, from: sender.primary, to, sent_at: sentAt } as Header;
  const sig = bytesToHex(sign(sender, signedBytes(header, data)));
  const headerBytes = canonicalBytes({ ...header, sig });
  const out = new Uint8Array(4 + headerBytes.length + data.length);
  new DataView(out.buffer).setUint32(0, headerBytes.length);
  out.set(headerBytes, 4);
  out.set(data, 4 + headerBytes.length);
  return out;
}

const isInt = (x: unknown, min: number, max: number): x is number => Number.isSafeInteger(x) && (x as number) >= min && (x as number) <= max;
/** A piece size: even (the code works on 16-bit symbols), MIN_PIECE_BYTES..MAX_PADDED. */
const isPieceBytes = (x: unknown) => isInt(x, MIN_PIECE_BYTES, MAX_PADDED) && (x as number) % 2 === 0;
/** k source pieces and n ≥ k in all, at most k + MAX_PIECE_RELAYS of them recovery pieces. */
const isCounts = (k: unknown, n: unknown) => isInt(k, 1, MAX_SOURCE_PIECES) && isInt(n, k as number, 2 * (k as number) + MAX_PIECE_RELAYS);
const isName = (x: unknown): x is string => typeof x === "string" && x.length >= 1 && x.length <= NAME_MAX && !NAME_FORBIDDEN.test(x);

/**
 * Characters that change how a name reads without being visible: Unicode format characters
 * (`\p{Cf}`: bidi overrides and isolates, zero-width joiners, ...), the other default-ignorable
 * ones (Hangul fillers, variation selectors, ...) and C1 controls.
 * `invoice\u202Efdp.exe` would otherwise show as "invoiceexe.pdf".
 */
const NAME_DECEPTIVE = /[\p{Default_Ignorable_Code_Point}\p{Cf}\u0080-\u009f]/gu;
/** Runs of blank characters (spaces of every width, the braille blank), which could push an extension out of sight: one space each. */
const NAME_BLANKS = /[\p{Zs}\u2800]+/gu;

const withoutDeceptive = (name: string) => name.replace(NAME_DECEPTIVE, "").replace(NAME_BLANKS, " ").trim();

/** A received file name as shown and offered for download: what is left once deceptive characters go and blank runs shrink. */
export function displayName(name: string): string {
  return withoutDeceptive(name) || "file";
}

/** How much of a name's end `shortName` keeps: its extension, and then some. */
const SHORT_NAME_TAIL = 12;

/**
 * `displayName` of at most `max` characters for a one-line preview: a longer name loses its
 * middle, never its end, so "invoice.pdf<220 letters>.exe" cannot pass for a PDF.
 */
export function shortName(name: string, max = 40): string {
  const chars = [...displayName(name)];
  if (chars.length <= max) return chars.join("");
  return chars.slice(0, max - SHORT_NAME_TAIL - 1).join("") + "…" + chars.slice(-SHORT_NAME_TAIL).join("");
}

/** A picked file's name made sendable: deceptive characters go, forbidden ones become "_", cut without splitting a pair. */
export function sendableName(name: string): string {
  let out = "";
  for (const c of withoutDeceptive(name).replace(NAME_FORBIDDEN_ALL, "_")) {
    if (out.length + c.length > NAME_MAX) break;
    out += c;
  }
  return out || "file";
}

/** A picked file's MIME type made sendable (unknown or odd types travel as bytes). */
export function sendableMime(mime: string): string {
  const lower = mime.toLowerCase();
  return MIME.test(lower) ? lower : "application/octet-stream";
}

/** Checks the body's own rules against its data. Throws MessageError. */
function checkBody(h: Record<string, unknown>, data: Uint8Array): void {
  const fail = (why: string): never => {
    throw new MessageError(`${String(h.type)}: ${why}`);
  };
  const keys = (...names: string[]) => {
    const expected = new Set(["v", "id", "from", "to", "sent_at", "sig", "type", ...names]);
    if (Object.keys(h).some((k) => !expected.has(k)) || expected.size !== Object.keys(h).length) fail("wrong fields");
  };
  /** The body's own fields, and gossip's checkpoint when it is there (texts and receipts). */
  const keysWithGossip = (...names: string[]) => {
    if (!("checkpoint" in h)) return keys(...names);
    keys(...names, "checkpoint");
    if (typeof h.checkpoint !== "string" || h.checkpoint.length === 0 || h.checkpoint.length > CHECKPOINT_MAX) fail("bad checkpoint");
  };
  switch (h.type) {
    case "text":
      keysWithGossip("text");
      if (typeof h.text !== "string" || h.text.length === 0 || data.length !== 0) fail("bad text");
      return;
    case "kez-file-v1": {
      const pointer = h.mode === "pointer";
      if (pointer) keys("mode", "file_id", "name", "mime", "size", "chunks", "sha256");
      else keys("mode", "file_id", "name", "mime", "size", "sha256");
      if (h.mode !== "inline" && !pointer) fail("bad mode");
      if (typeof h.file_id !== "string" || !HEX_ID.test(h.file_id)) fail("bad file_id");
      if (!isName(h.name) || typeof h.mime !== "string" || !MIME.test(h.mime)) fail("bad name or MIME type");
      if (typeof h.sha256 !== "string" || !HEX_256.test(h.sha256)) fail("bad sha256");
      if (pointer) {
        if (!isInt(h.size, INLINE_MAX + 1, FILE_MAX) || h.chunks !== Math.ceil((h.size as number) / CHUNK_BYTES) || data.length !== 0) fail("bad size or chunk count");
      } else if (!isInt(h.size, 0, INLINE_MAX) || data.length !== h.size || bytesToHex(sha256(data)) !== h.sha256) {
        fail("inline bytes do not match size and sha256");
      }
      return;
    }
    case "kez-file-v2": {
      const pieces = h.mode === "pieces";
      if (pieces) keys("mode", "file_id", "name", "mime", "size", "sha256", "scheme", "piece_bytes", "k", "n");
      else keys("mode", "file_id", "name", "mime", "size", "sha256");
      if (h.mode !== "inline" && !pieces) fail("bad mode");
      if (typeof h.file_id !== "string" || !HEX_ID.test(h.file_id)) fail("bad file_id");
      if (!isName(h.name) || typeof h.mime !== "string" || !MIME.test(h.mime)) fail("bad name or MIME type");
      if (typeof h.sha256 !== "string" || !HEX_256.test(h.sha256)) fail("bad sha256");
      if (!pieces) {
        // Inline: whatever fits one event; the bytes must be the file the header describes.
        if (!isInt(h.size, 0, MAX_PADDED) || data.length !== h.size || bytesToHex(sha256(data)) !== h.sha256) fail("inline bytes do not match size and sha256");
        return;
      }
      if (h.scheme !== PIECE_SCHEME) fail("unknown scheme");
      if (!isInt(h.size, 1, FILE_MAX) || !isPieceBytes(h.piece_bytes) || data.length !== 0) fail("bad size or piece size");
      // The counts must follow from the size: k source pieces hold exactly the file.
      if (h.k !== Math.ceil((h.size as number) / (h.piece_bytes as number)) || !isCounts(h.k, h.n)) fail("counts do not match the size");
      return;
    }
    case "kez-file-piece-v2":
      keys("file_id", "i", "k", "n");
      if (typeof h.file_id !== "string" || !HEX_ID.test(h.file_id)) fail("bad file_id");
      if (!isCounts(h.k, h.n) || !isInt(h.i, 0, (h.n as number) - 1)) fail("bad index or counts");
      if (!isPieceBytes(data.length)) fail("bad piece size");
      return;
    case "kez-file-chunk-v1":
      keys("file_id", "i", "n");
      if (typeof h.file_id !== "string" || !HEX_ID.test(h.file_id)) fail("bad file_id");
      if (!isInt(h.n, 1, MAX_CHUNKS) || !isInt(h.i, 0, (h.n as number) - 1)) fail("bad index");
      if (data.length === 0 || data.length > CHUNK_BYTES) fail("bad chunk size");
      return;
    case "receipt":
      keysWithGossip("of");
      if (!Array.isArray(h.of) || h.of.length < 1 || h.of.length > 100 || !h.of.every((x) => typeof x === "string" && HEX_ID.test(x)) || data.length !== 0) fail("bad of");
      return;
    default:
      fail("unknown type");
  }
}

/** Parses and verifies a message addressed to `me` (a primary key). Throws MessageError. */
export function decodeMessage(bytes: Uint8Array, me: string): Message {
  if (bytes.length < 4) throw new MessageError("too short");
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
  if (headerLength > bytes.length - 4) throw new MessageError("header length out of range");
  let text: string;
  let parsed: unknown;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(4, 4 + headerLength));
    parsed = JSON.parse(text);
  } catch {
    throw new MessageError("header is not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new MessageError("header is not an object");
  // The header must be in JCS form: one spelling per header, so no duplicate keys (which
  // parsers resolve differently) and no lone surrogates can hide behind a valid signature.
  const strings = Object.values(parsed).flat().filter((v): v is string => typeof v === "string");
  if (strings.some((v) => LONE_SURROGATE.test(v)) || new TextDecoder().decode(canonicalBytes(parsed)) !== text) {
    throw new MessageError("header is not in canonical (JCS) form");
  }
  const h = parsed as Record<string, unknown>;
  const data = bytes.subarray(4 + headerLength);
  if (h.v !== 1) throw new MessageError("unknown version");
  if (typeof h.id !== "string" || !HEX_ID.test(h.id)) throw new MessageError("bad id");
  if (!isInt(h.sent_at, 0, 8.64e15)) throw new MessageError("bad sent_at");
  if (h.to !== me) throw new MessageError("addressed to another key");
  const from = typeof h.from === "string" ? parsePrimary(h.from) : null;
  if (!from) throw new MessageError("bad sender key");
  if (typeof h.sig !== "string" || !/^[0-9a-f]{128}$/.test(h.sig)) throw new MessageError("bad signature field");
  checkBody(h, data);
  const { sig, ...unsigned } = h;
  if (!verify(from, signedBytes(unsigned as Header, data), hexToBytes(sig as string))) {
    throw new MessageError("the sender's signature does not verify");
  }
  return { header: unsigned as Header, data };
}
