// The server's transparency log as this app checks it (docs/TRANSPARENCY.md): checkpoints
// signed as C2SP signed notes, RFC 9162 inclusion and consistency proofs, and consistency
// proofs built from C2SP tlog-tiles, so a client needs nothing from the server but its
// static tiles to check that a newer checkpoint extends an older one. Tested against
// tests/vectors/log.json, which the worker's Rust writes.
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, utf8ToBytes } from "@noble/hashes/utils.js";

export class LogError extends Error {}

/** Two checkpoints signed by one key that are not one history: the server forked its log. */
export class InconsistentLog extends LogError {}

export interface Verifier {
  /** The key name, also the checkpoint's origin: `<server>/log`. */
  name: string;
  id: Uint8Array;
  key: Uint8Array;
}

export interface Checkpoint {
  origin: string;
  size: number;
  root: Uint8Array;
  /** The signed note, as the server sent it. */
  note: string;
}

const TILE = 256;
const fromBase64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const equal = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);

/** A note verifier key, `<name>+<hex key ID>+<base64(0x01 ‖ Ed25519 key)>`. Throws LogError. */
export function parseVerifierKey(text: string): Verifier {
  // The name has no "+"; the base64 after the second one may.
  const first = text.indexOf("+");
  const second = text.indexOf("+", first + 1);
  const [name, idHex, encoded] = [text.slice(0, first), text.slice(first + 1, second), text.slice(second + 1)];
  let raw: Uint8Array;
  try {
    raw = fromBase64(encoded);
  } catch {
    throw new LogError("The log's verifier key is not base64.");
  }
  if (first <= 0 || second < 0 || raw.length !== 33 || raw[0] !== 1) throw new LogError("The log's verifier key is not an Ed25519 note key.");
  const id = sha256(concatBytes(utf8ToBytes(`${name}\n`), raw)).slice(0, 4);
  if (Array.from(id, (b) => b.toString(16).padStart(2, "0")).join("") !== idHex) {
    throw new LogError("The log's verifier key has the wrong key ID.");
  }
  return { name, id, key: raw.slice(1) };
}

/** The checkpoint in `note` if `verifier` signed it (other signatures are ignored). Throws LogError. */
export function openCheckpoint(note: string, verifier: Verifier): Checkpoint {
  const split = note.lastIndexOf("\n\n");
  if (split < 0 || !note.endsWith("\n")) throw new LogError("The checkpoint is not a signed note.");
  const text = note.slice(0, split + 1);
  for (const line of note.slice(split + 2, -1).split("\n")) {
    const match = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
    if (!match || match[1] !== verifier.name) continue;
    const raw = fromBase64(match[2]);
    if (raw.length !== 68 || !equal(raw.slice(0, 4), verifier.id)) continue;
    if (!ed25519.verify(raw.slice(4), utf8ToBytes(text), verifier.key)) continue;
    const [origin, sizeText, rootText, ...rest] = text.split("\n");
    const root = /^[A-Za-z0-9+/]{43}=$/.test(rootText ?? "") ? fromBase64(rootText) : undefined;
    if (origin !== verifier.name || !/^(0|[1-9][0-9]{0,15})$/.test(sizeText ?? "") || !root || rest.join("\n") !== "") {
      throw new LogError("The signed checkpoint is malformed.");
    }
    return { origin, size: Number(sizeText), root, note };
  }
  throw new LogError("The checkpoint is not signed by this server's log key.");
}

export const leafHash = (entry: Uint8Array) => sha256(concatBytes(Uint8Array.of(0), entry));
const nodeHash = (left: Uint8Array, right: Uint8Array) => sha256(concatBytes(Uint8Array.of(1), left, right));

/** Whether `proof` shows `leaf` is leaf `index` of the tree of `size` with `root` (RFC 9162 §2.1.3.2). */
export function verifyInclusion(index: number, size: number, leaf: Uint8Array, proof: Uint8Array[], root: Uint8Array): boolean {
  if (index < 0 || index >= size) return false;
  let [fn, sn, r] = [index, size - 1, leaf];
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) [fn, sn] = [Math.floor(fn / 2), Math.floor(sn / 2)];
    } else {
      r = nodeHash(r, p);
    }
    [fn, sn] = [Math.floor(fn / 2), Math.floor(sn / 2)];
  }
  return sn === 0 && equal(r, root);
}

/** Whether `proof` shows the tree of `m` with `oldRoot` is a prefix of the tree of `n` with `newRoot` (§2.1.4.2). */
export function verifyConsistency(m: number, n: number, oldRoot: Uint8Array, newRoot: Uint8Array, proof: Uint8Array[]): boolean {
  if (m === 0 || m > n) return false;
  if (m === n) return proof.length === 0 && equal(oldRoot, newRoot);
  const path = (m & (m - 1)) === 0 ? [oldRoot, ...proof] : proof;
  if (path.length === 0) return false;
  let [fn, sn] = [m - 1, n - 1];
  while (fn % 2 === 1) [fn, sn] = [Math.floor(fn / 2), Math.floor(sn / 2)];
  let [fr, sr] = [path[0], path[0]];
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      [fr, sr] = [nodeHash(c, fr), nodeHash(c, sr)];
      if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) [fn, sn] = [Math.floor(fn / 2), Math.floor(sn / 2)];
    } else {
      sr = nodeHash(sr, c);
    }
    [fn, sn] = [Math.floor(fn / 2), Math.floor(sn / 2)];
  }
  return sn === 0 && equal(fr, oldRoot) && equal(sr, newRoot);
}

/** A tile's path below `/log/` (tlog-tiles): the index in groups of three digits, all but the last after an x. */
export function tilePath(level: number | "entries", index: number, width: number): string {
  const groups: string[] = [];
  do {
    groups.unshift(String(index % 1000).padStart(3, "0"));
    index = Math.floor(index / 1000);
  } while (index > 0);
  const path = groups.map((g, i) => (i < groups.length - 1 ? `x${g}` : g)).join("/");
  return `tile/${level}/${path}${width < TILE ? `.p/${width}` : ""}`;
}

/** The leaf ranges whose roots make PROOF(m, D[n]) (RFC 9162 §2.1.4.1). */
function consistencyRanges(m: number, start: number, end: number, whole: boolean, out: [number, number][]) {
  const n = end - start;
  if (m === n) {
    if (!whole) out.push([start, end]);
    return;
  }
  let k = 1;
  while (k * 2 < n) k *= 2;
  if (m <= k) {
    consistencyRanges(m, start, start + k, whole, out);
    out.push([start + k, end]);
  } else {
    consistencyRanges(m - k, start + k, end, false, out);
    out.push([start, start + k]);
  }
}

/**
 * The consistency proof from the tree of `oldSize` to the tree of `newSize`, computed from
 * the log's hash tiles (`fetchTile(path)` gives a tile's bytes): what a client runs, instead of
 * asking the server for a proof, to check a newer checkpoint against the one it kept.
 */
export async function consistencyFromTiles(oldSize: number, newSize: number, fetchTile: (path: string) => Promise<Uint8Array>): Promise<Uint8Array[]> {
  if (oldSize <= 0 || oldSize > newSize) throw new LogError("No consistency proof between these sizes.");
  const ranges: [number, number][] = [];
  consistencyRanges(oldSize, 0, newSize, true, ranges);
  const { rangeRoot } = tileReader(newSize, fetchTile);
  return Promise.all(ranges.map(([start, end]) => rangeRoot(start, end)));
}

/** Hashes of the tree of `size` leaves read from its tiles (`fetchTile(path)`, each read once). */
function tileReader(size: number, fetchTile: (path: string) => Promise<Uint8Array>) {
  const tiles = new Map<string, Promise<Uint8Array>>();
  /** The hashes at tree level 8·`level` from `first` (count `count`, within one tile). */
  const hashesAt = async (level: number, first: number, count: number) => {
    const index = Math.floor(first / TILE);
    const items = Math.floor(size / 2 ** (8 * level));
    const width = Math.min(TILE, items - index * TILE);
    const path = tilePath(level, index, width);
    if (!tiles.has(path)) tiles.set(path, fetchTile(path));
    const tile = await tiles.get(path)!;
    if (tile.length !== width * 32) throw new LogError(`The log's tile ${path} has the wrong size.`);
    const offset = first - index * TILE;
    return Array.from({ length: count }, (_, i) => tile.slice((offset + i) * 32, (offset + i + 1) * 32));
  };
  /** The root of the complete subtree of 2^`height` leaves from `start`. */
  const subtree = async (start: number, height: number): Promise<Uint8Array> => {
    const level = Math.floor(height / 8);
    const below = height - 8 * level;
    return pairUp(await hashesAt(level, start / 2 ** (8 * level), 2 ** below));
  };
  /** The root of the RFC 9162 subtree over [start, end): its complete subtrees, folded from the right. */
  const rangeRoot = async (start: number, end: number) => foldRight(await Promise.all(cover(start, end).map(([at, height]) => subtree(at, height))));
  return { subtree, rangeRoot };
}

/** The complete subtrees `[start, height]` that make the RFC 9162 subtree over [start, end), largest first. */
function cover(start: number, end: number): [number, number][] {
  const parts: [number, number][] = [];
  for (let at = start; at < end; ) {
    let height = 0;
    while (2 ** (height + 1) <= end - at && at % 2 ** (height + 1) === 0) height++;
    parts.push([at, height]);
    at += 2 ** height;
  }
  return parts;
}

/** The root of a complete subtree from its 2^k hashes at one level. */
function pairUp(hashes: Uint8Array[]): Uint8Array {
  while (hashes.length > 1) hashes = Array.from({ length: hashes.length / 2 }, (_, i) => nodeHash(hashes[2 * i], hashes[2 * i + 1]));
  return hashes[0];
}

const foldRight = (parts: Uint8Array[]) => parts.reduceRight((right, left) => nodeHash(left, right));

/**
 * Checks that `entries` are the log's entries from index `first` in the tree `checkpoint`
 * signed: the root made from their leaf hashes, with every other subtree read from the hash
 * tiles, must be the checkpoint's. Throws InconsistentLog if not: what the server serves as
 * entries is not what it signed, as when it hides a statement from a monitor.
 */
export async function checkEntries(entries: Uint8Array[], first: number, checkpoint: Checkpoint, fetchTile: (path: string) => Promise<Uint8Array>): Promise<void> {
  const end = first + entries.length;
  if (entries.length === 0) return;
  if (end > checkpoint.size) throw new LogError("More entries than the checkpoint holds.");
  const leaves = entries.map(leafHash);
  const { subtree } = tileReader(checkpoint.size, fetchTile);
  /** A complete subtree's root: from the entries where it lies within them, from tiles where it lies outside, split where it straddles. */
  const node = async (start: number, height: number): Promise<Uint8Array> => {
    const stop = start + 2 ** height;
    if (stop <= first || start >= end) return subtree(start, height);
    if (start >= first && stop <= end) return pairUp(leaves.slice(start - first, stop - first));
    const half = 2 ** (height - 1);
    const [left, right] = await Promise.all([node(start, height - 1), node(start + half, height - 1)]);
    return nodeHash(left, right);
  };
  const root = foldRight(await Promise.all(cover(0, checkpoint.size).map(([at, height]) => node(at, height))));
  if (!equal(root, checkpoint.root)) throw new InconsistentLog("The log's entries do not match the tree it signed.");
}

/** Checks that checkpoint `older` is a prefix of `newer`, from the log's tiles. Throws LogError if not. */
export async function checkConsistent(older: Checkpoint, newer: Checkpoint, fetchTile: (path: string) => Promise<Uint8Array>): Promise<void> {
  if (older.size > newer.size) return checkConsistent(newer, older, fetchTile);
  if (older.size === 0) return;
  const proof = older.size === newer.size ? [] : await consistencyFromTiles(older.size, newer.size, fetchTile);
  if (!verifyConsistency(older.size, newer.size, older.root, newer.root, proof)) {
    throw new InconsistentLog("This server has shown different histories of its log.");
  }
}

/** What a lookup says of the log: the statement's index, the checkpoint and the inclusion proof. */
export interface LogProof {
  index: number;
  checkpoint: string;
  inclusion_proof: string[];
}

/**
 * Checks that `entry` (the statement's JCS bytes) is entry `proof.index` of a checkpoint
 * `verifier` signed; returns that checkpoint. Throws LogError if anything does not verify.
 */
export function checkIncluded(entry: Uint8Array, proof: LogProof | null | undefined, verifier: Verifier): Checkpoint {
  if (!proof || typeof proof !== "object") throw new LogError("The server gave no log proof for this binding.");
  const checkpoint = openCheckpoint(String(proof.checkpoint), verifier);
  const hashes = Array.isArray(proof.inclusion_proof) ? proof.inclusion_proof.map((h) => fromBase64(String(h))) : null;
  if (!Number.isSafeInteger(proof.index) || !hashes || hashes.some((h) => h.length !== 32)) throw new LogError("The log proof is malformed.");
  if (!verifyInclusion(proof.index, checkpoint.size, leafHash(entry), hashes, checkpoint.root)) {
    throw new LogError("This binding is not in the log the server signed.");
  }
  return checkpoint;
}
