// Reed-Solomon erasure coding of file pieces (docs/PROTOCOL.md §9): reed-solomon-simd
// (Leopard-RS over GF(2^16)) from crates/kez-erasure, compiled to a small wasm module that is
// bundled with the app, in a chunk of its own loaded on the first file in pieces. Pieces
// 0..k-1 are the source itself; k..n-1 are recovery pieces; any k distinct pieces give back
// the source.
import { base64 } from "@scure/base";

interface Exports {
  memory: WebAssembly.Memory;
  kez_alloc(len: number): number;
  kez_free(ptr: number, len: number): void;
  kez_rs_encode(k: number, n: number, pieceBytes: number, source: number): number;
  kez_rs_decode(k: number, n: number, pieceBytes: number, count: number, indices: number, pieces: number): number;
}

export class ErasureError extends Error {}

let module: Promise<Exports> | undefined;

function load(): Promise<Exports> {
  module ??= import("./erasure-wasm.gen")
    .then(({ ERASURE_WASM_BASE64 }) => WebAssembly.compile(base64.decode(ERASURE_WASM_BASE64) as Uint8Array<ArrayBuffer>))
    .then((compiled) => WebAssembly.instantiate(compiled))
    .then((instance) => instance.exports as unknown as Exports);
  return module;
}

/** Loads the module ahead of the first file, so that file does not wait for it. */
export function preloadErasure(): void {
  void load().catch(() => {
    module = undefined; // tried again when a file needs it
  });
}

/** Copies `bytes` into the module's memory; returns the pointer (free with `len = bytes.length`). */
function copyIn(w: Exports, bytes: Uint8Array): number {
  const ptr = w.kez_alloc(bytes.length);
  if (ptr === 0) throw new ErasureError("out of memory");
  new Uint8Array(w.memory.buffer, ptr, bytes.length).set(bytes);
  return ptr;
}

/** Reads and frees a result (`u32le length || bytes`); 0 is failure. */
function takeResult(w: Exports, ptr: number, what: string): Uint8Array {
  if (ptr === 0) throw new ErasureError(`${what} failed`);
  const length = new DataView(w.memory.buffer).getUint32(ptr, true);
  const out = new Uint8Array(w.memory.buffer, ptr + 4, length).slice();
  w.kez_free(ptr, 4 + length);
  return out;
}

/** The n - k recovery pieces, each `pieceBytes`, for `source` (k pieces of `pieceBytes`). */
export async function encodeRecovery(k: number, n: number, pieceBytes: number, source: Uint8Array): Promise<Uint8Array[]> {
  if (source.length !== k * pieceBytes) throw new ErasureError("source is not k pieces");
  if (n === k) return [];
  const w = await load();
  const src = copyIn(w, source);
  let out: Uint8Array;
  try {
    out = takeResult(w, w.kez_rs_encode(k, n, pieceBytes, src), "encoding");
  } finally {
    w.kez_free(src, source.length);
  }
  return Array.from({ length: n - k }, (_, j) => out.subarray(j * pieceBytes, (j + 1) * pieceBytes));
}

/** The k source pieces, concatenated, from at least k distinct pieces (index → bytes). */
export async function decodeSource(k: number, n: number, pieceBytes: number, pieces: Map<number, Uint8Array>): Promise<Uint8Array> {
  const chosen = [...pieces].filter(([i, p]) => i >= 0 && i < n && p.length === pieceBytes).slice(0, k);
  if (chosen.length < k) throw new ErasureError("not enough pieces");
  if (chosen.every(([i]) => i < k)) {
    // All source pieces: no decoding.
    const out = new Uint8Array(k * pieceBytes);
    for (const [i, p] of chosen) out.set(p, i * pieceBytes);
    return out;
  }
  const w = await load();
  const indices = new Uint8Array(new Uint32Array(chosen.map(([i]) => i)).buffer);
  const all = new Uint8Array(k * pieceBytes);
  chosen.forEach(([, p], j) => all.set(p, j * pieceBytes));
  const idx = copyIn(w, indices);
  let data = 0;
  try {
    data = copyIn(w, all);
    return takeResult(w, w.kez_rs_decode(k, n, pieceBytes, k, idx, data), "decoding");
  } finally {
    w.kez_free(idx, indices.length);
    if (data) w.kez_free(data, all.length);
  }
}
