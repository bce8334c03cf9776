import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import vectors from "../../tests/vectors/log.json";
import { checkConsistent, checkEntries, checkIncluded, consistencyFromTiles, InconsistentLog, leafHash, LogError, openCheckpoint, parseVerifierKey, tilePath, verifyConsistency, verifyInclusion } from "../src/lib/log";

const nodeHash = (l: Uint8Array, r: Uint8Array) => sha256(Uint8Array.from([1, ...l, ...r]));
const fromHex = (hex: string) => Uint8Array.from(hex.match(/../g) ?? [], (b) => parseInt(b, 16));
const fromBase64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const entries = vectors.entries_hex.map(fromHex);
const leaves = entries.map(leafHash);
const verifier = parseVerifierKey(vectors.verifier_key);
const checkpoints = Object.fromEntries(Object.entries(vectors.checkpoints).map(([size, note]) => [size, openCheckpoint(note, verifier)]));

/** The hash tiles of the vectors' tree (`size` leaves), made here from the leaves: every level's full subtrees of 256. */
function tilesOf(size: number) {
  const levels: Uint8Array[][] = [leaves.slice(0, size)];
  for (let level = 1; level * 8 < 32; level++) {
    const below = levels[level - 1];
    const next: Uint8Array[] = [];
    for (let i = 0; (i + 1) * 256 <= below.length; i++) next.push(rootOf(below.slice(i * 256, (i + 1) * 256)));
    levels.push(next);
  }
  const served = new Map<string, Uint8Array>();
  levels.forEach((hashes, level) => {
    for (let index = 0; index * 256 < hashes.length; index++) {
      const part = hashes.slice(index * 256, (index + 1) * 256);
      served.set(tilePath(level, index, part.length), Uint8Array.from(part.flatMap((h) => Array.from(h))));
    }
  });
  return served;
}

function rootOf(hashes: Uint8Array[]): Uint8Array {
  if (hashes.length === 1) return hashes[0];
  let k = 1;
  while (k * 2 < hashes.length) k *= 2;
  const [left, right] = [rootOf(hashes.slice(0, k)), rootOf(hashes.slice(k))];
  return nodeHash(left, right);
}

describe("the log, against the worker's vectors", () => {
  it("opens every signed checkpoint and refuses another key, name or text", () => {
    for (const [size, checkpoint] of Object.entries(checkpoints)) expect(checkpoint.size).toBe(Number(size));
    const note = vectors.checkpoints["300"];
    expect(() => openCheckpoint(note.replace("\n300\n", "\n301\n"), verifier)).toThrow(LogError);
    expect(() => openCheckpoint(note, { ...verifier, name: "other.example/log" })).toThrow(LogError);
    expect(() => openCheckpoint(note, { ...verifier, key: new Uint8Array(32).fill(7) })).toThrow(LogError);
    expect(() => parseVerifierKey(vectors.verifier_key.replace(/\+[0-9a-f]{8}\+/, "+00000000+"))).toThrow(LogError);
  });

  it("verifies every inclusion proof, and no other leaf", () => {
    const { root, size } = checkpoints["300"];
    for (const p of vectors.inclusion) {
      const proof = p.proof.map(fromBase64);
      expect(verifyInclusion(p.index, size, leaves[p.index], proof, root)).toBe(true);
      expect(verifyInclusion(p.index, size, leafHash(new Uint8Array([9])), proof, root)).toBe(false);
      expect(checkIncluded(entries[p.index], { index: p.index, checkpoint: vectors.checkpoints["300"], inclusion_proof: p.proof }, verifier).size).toBe(300);
      expect(() => checkIncluded(entries[(p.index + 1) % 300], { index: p.index, checkpoint: vectors.checkpoints["300"], inclusion_proof: p.proof }, verifier)).toThrow(LogError);
      // A negative index walks the tree as index 0 does (-1 % 2 is -1): it names no leaf.
      expect(verifyInclusion(-1 - p.index, size, leaves[p.index], proof, root)).toBe(false);
    }
    const first = vectors.inclusion.find((p) => p.index === 0)!;
    expect(verifyInclusion(-1, size, leaves[0], first.proof.map(fromBase64), root)).toBe(false);
  });

  it("verifies the consistency proof, and builds the same one from tiles", async () => {
    const c = vectors.consistency;
    const [old, now] = [checkpoints[String(c.from)], checkpoints[String(c.to)]];
    const proof = c.proof.map(fromBase64);
    expect(verifyConsistency(c.from, c.to, old.root, now.root, proof)).toBe(true);
    const tiles = tilesOf(c.to);
    const fetched: string[] = [];
    const fromTiles = await consistencyFromTiles(c.from, c.to, async (path) => (fetched.push(path), tiles.get(path)!));
    expect(fromTiles).toEqual(proof);
    expect(fetched.every((path) => tiles.has(path))).toBe(true);
    await checkConsistent(old, now, async (path) => tiles.get(path)!);
    await checkConsistent(now, old, async (path) => tiles.get(path)!);
  });

  it("builds and verifies consistency from tiles for every pair of sizes of a small tree", async () => {
    for (const n of [1, 2, 3, 7, 8, 9, 255, 256, 257, 300]) {
      const tiles = tilesOf(n);
      const rootN = rootOf(leaves.slice(0, n));
      for (const m of [1, 2, 3, 5, 8, 100, 256, 299].filter((m) => m <= n)) {
        const proof = await consistencyFromTiles(m, n, async (path) => tiles.get(path)!);
        expect(verifyConsistency(m, n, rootOf(leaves.slice(0, m)), rootN, proof), `${m} to ${n}`).toBe(true);
      }
    }
  });

  it("raises the alarm for a forked tree", async () => {
    const c = vectors.consistency;
    const now = checkpoints[String(c.to)];
    const forked = { ...checkpoints[String(c.from)], root: sha256(new Uint8Array([1, 2, 3])) };
    const tiles = tilesOf(c.to);
    await expect(checkConsistent(forked, now, async (path) => tiles.get(path)!)).rejects.toThrow("different histories");
  });

  it("checks any run of entries against the signed tree, with the rest read from tiles", async () => {
    const size = 300;
    const checkpoint = { ...checkpoints["300"] };
    const tiles = tilesOf(size);
    const fetchTile = async (path: string) => tiles.get(path)!;
    for (const [first, count] of [[0, 300], [0, 256], [256, 44], [100, 1], [255, 2], [299, 1], [37, 200]]) {
      await checkEntries(entries.slice(first, first + count), first, checkpoint, fetchTile);
      // One entry changed, one left out, or the run put at another index: not the signed tree.
      const changed = entries.slice(first, first + count).map((e, i) => (i === Math.floor(count / 2) ? Uint8Array.of(...e, 32) : e));
      await expect(checkEntries(changed, first, checkpoint, fetchTile), `${first}+${count}`).rejects.toThrow(InconsistentLog);
      if (count > 1) await expect(checkEntries(entries.slice(first, first + count - 1).concat([entries[first]]), first, checkpoint, fetchTile)).rejects.toThrow(InconsistentLog);
      if (first > 0) await expect(checkEntries(entries.slice(first, first + count), first - 1, checkpoint, fetchTile)).rejects.toThrow(InconsistentLog);
    }
    await expect(checkEntries(entries.slice(290, 300), 291, checkpoint, fetchTile)).rejects.toThrow(LogError);
  });

  it("spells tile paths as tlog-tiles does, and as the vectors do", () => {
    expect(tilePath(0, 0, 256)).toBe("tile/0/000");
    expect(tilePath("entries", 1234067, 8)).toBe("tile/entries/x001/x234/067.p/8");
    for (const t of vectors.tiles) {
      const [, kind, rest] = /^tile\/([^/]+)\/(.*)$/.exec(t.path)!;
      const [indexPart, width] = rest.split(".p/");
      const index = Number(indexPart.replaceAll("x", "").replaceAll("/", ""));
      expect(tilePath(kind === "entries" ? "entries" : Number(kind), index, width ? Number(width) : 256)).toBe(t.path);
    }
  });
});
