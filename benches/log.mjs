// The transparency log from a client's side: proof sizes and the app's verification time
// (web/src/lib/log.ts, bundled as the app bundles it) for trees of 1,000 and 1,000,000
// entries. The large tree is built here, leaf by leaf, with the same RFC 9162 hashing; the
// checkpoint is signed with a key made here, as the worker signs it (C2SP signed note).
//
//   node benches/log.mjs
import { createHash, generateKeyPairSync, sign } from "node:crypto";
import { build } from "esbuild";

const { outputFiles } = await build({ entryPoints: ["web/src/lib/log.ts"], bundle: true, format: "esm", write: false, platform: "neutral" });
const log = await import(`data:text/javascript;base64,${Buffer.from(outputFiles[0].text).toString("base64")}`);

const sha = (...parts) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
};
const leafHash = (i) => sha(Buffer.from([0]), Buffer.from(`entry ${i}`));
const nodeHash = (l, r) => sha(Buffer.from([1]), l, r);

/** The complete subtrees of the tree over `n` leaves, level by level, bottom up (a right edge that is not complete is left out). */
function levels(n) {
  const all = [Array.from({ length: n }, (_, i) => leafHash(i))];
  while (all.at(-1).length > 1) {
    const below = all.at(-1);
    const next = [];
    for (let i = 0; i + 1 < below.length; i += 2) next.push(nodeHash(below[i], below[i + 1]));
    all.push(next);
  }
  return all;
}

/** The root of the RFC 9162 subtree [start, end), from the levels of complete subtrees. */
function rangeRoot(all, start, end) {
  const parts = [];
  for (let at = start; at < end; ) {
    let h = 0;
    while (2 ** (h + 1) <= end - at && at % 2 ** (h + 1) === 0) h++;
    parts.push(all[h][at / 2 ** h]);
    at += 2 ** h;
  }
  return parts.reduceRight((right, left) => nodeHash(left, right));
}

function inclusionProof(all, index, start, end, out = []) {
  if (end - start <= 1) return out;
  let k = 1;
  while (k * 2 < end - start) k *= 2;
  const mid = start + k;
  if (index < mid) {
    inclusionProof(all, index, start, mid, out);
    out.push(rangeRoot(all, mid, end));
  } else {
    inclusionProof(all, index, mid, end, out);
    out.push(rangeRoot(all, start, mid));
  }
  return out;
}

const { privateKey, publicKey } = generateKeyPairSync("ed25519");
const pub = Buffer.from(publicKey.export({ format: "jwk" }).x, "base64url");
const name = "bench.example/log";
const encoded = Buffer.concat([Buffer.from([1]), pub]);
const keyId = sha(Buffer.from(`${name}\n`), encoded).subarray(0, 4);
const verifierKey = `${name}+${keyId.toString("hex")}+${encoded.toString("base64")}`;
const signedNote = (size, root) => {
  const text = `${name}\n${size}\n${root.toString("base64")}\n`;
  const signature = Buffer.concat([keyId, sign(null, Buffer.from(text), privateKey)]);
  return `${text}\n\u2014 ${name} ${signature.toString("base64")}\n`;
};

const timeUs = (f, runs) => {
  for (let i = 0; i < 20; i++) f();
  const start = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) f();
  return Number(process.hrtime.bigint() - start) / 1000 / runs;
};

const verifier = log.parseVerifierKey(verifierKey);
const rows = [];
for (const n of [1_000, 1_000_000]) {
  const built = process.hrtime.bigint();
  const all = levels(n);
  const buildMs = Number(process.hrtime.bigint() - built) / 1e6;
  const root = rangeRoot(all, 0, n);
  const note = signedNote(n, root);
  const index = Math.floor(n * 0.37);
  const proof = { index, checkpoint: note, inclusion_proof: inclusionProof(all, index, 0, n).map((h) => h.toString("base64")) };
  const entry = Buffer.from(`entry ${index}`);
  const checked = log.checkIncluded(entry, proof, verifier);
  if (checked.size !== n) throw new Error("the proof did not verify");
  const bytes = Buffer.byteLength(JSON.stringify(proof.inclusion_proof));
  const us = timeUs(() => log.checkIncluded(entry, proof, verifier), n > 1000 ? 200 : 500);
  const proofOnlyUs = timeUs(() => log.verifyInclusion(index, n, log.leafHash(entry), proof.inclusion_proof.map((h) => Buffer.from(h, "base64")), root), 2000);
  rows.push({ n, hashes: proof.inclusion_proof.length, bytes, us, proofOnlyUs, buildMs });
}

console.log("| entries | proof hashes | proof as sent (JSON, base64) | client check: signature + inclusion | inclusion alone | tree built here in |");
console.log("|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(`| ${r.n.toLocaleString("en")} | ${r.hashes} | ${r.bytes} B | ${r.us.toFixed(0)} µs | ${r.proofOnlyUs.toFixed(1)} µs | ${r.buildMs.toFixed(0)} ms |`);
}
