// Baseline 2: what a user would write instead of the Rust worker. Plain JavaScript with the
// same D1 queries and sessions, the same registration check (JCS via the npm canonicalize
// package, Ed25519 via WebCrypto), the same caching: Cache-Control, strong ETags and 304,
// an isolate cache (a Map kept in recency order) in front of the edge cache (caches.default),
// with the same TTL from the D1 read, and bookmarks; and the same transparency log: each
// registration appends its entry in its write's batch, hashes the new entries into the stored
// tree (SHA-256 by @noble/hashes) and signs a checkpoint (Ed25519 by WebCrypto), and each
// lookup carries its inclusion proof, from the same one query. Bundled with esbuild by
// benches/run.mjs.
import canonicalize from "canonicalize";
import { sha256 } from "@noble/hashes/sha2.js";

const JSON_HEADERS = { "content-type": "application/json", "access-control-allow-origin": "*", "cache-control": "no-store" };
/** The public read endpoints' CORS, as the worker sends it. */
const CORS = { "access-control-allow-origin": "*", "access-control-expose-headers": "etag, x-kez-bookmark" };
const HANDLE = /^[a-z0-9][a-z0-9_-]{2,31}$/;
const RESERVED = new Set(["admin", "root", "support", "security", "postmaster", "webmaster", "abuse", "api", "www", "help", "info", "noreply", "kez"]);
const PRIMARY = /^ed25519:([0-9a-f]{64})$/;

const json = (status, body, headers = JSON_HEADERS) => new Response(JSON.stringify(body), { status, headers });
const fail = (status, error, message) => json(status, { error, message });
const hexBytes = (hex) => Uint8Array.from(hex.match(/../g), (b) => parseInt(b, 16));

const BOOKMARK = "x-kez-bookmark";
const READ_AT = "x-kez-read-at";
let settings;
function cacheSettings(env) {
  settings ??= { ttl: Number(env.LOOKUP_CACHE_SECONDS ?? 60), entries: Number(env.LOOKUP_CACHE_ENTRIES ?? 1000) };
  return settings;
}
const positive = (ttl) => (ttl > 0 ? `public, max-age=${ttl}, stale-while-revalidate=${ttl}` : "no-cache");
const negative = (ttl) => (ttl > 0 ? `public, max-age=${Math.min(5, ttl)}` : "no-cache");

/** The isolate cache: key -> { body, etag, readAt }, oldest use first. */
const isolate = new Map();
function isolateGet(key, now, { ttl }) {
  const hit = isolate.get(key);
  if (hit === undefined) return undefined;
  isolate.delete(key);
  if (now - hit.readAt >= ttl * 1000) return undefined;
  isolate.set(key, hit);
  return hit;
}
function isolatePut(key, entry, { entries }) {
  if (entries === 0) return;
  isolate.delete(key);
  while (isolate.size >= entries) isolate.delete(isolate.keys().next().value);
  isolate.set(key, entry);
}

async function etagOf(body) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body)));
  return `"${Array.from(digest.subarray(0, 16), (b) => b.toString(16).padStart(2, "0")).join("")}"`;
}

function answer(request, entry, { ttl }, now, contentType = "application/json") {
  const headers = { "cache-control": positive(ttl), vary: BOOKMARK, etag: entry.etag, ...CORS };
  if (entry.cached) headers.age = String(Math.floor((now - entry.readAt) / 1000));
  const inm = request.headers.get("if-none-match");
  if (inm && (inm.trim() === "*" || inm.split(",").some((t) => t.trim().replace(/^W\//, "") === entry.etag))) return new Response(null, { status: 304, headers });
  headers["content-type"] = contentType;
  return new Response(entry.body, { status: 200, headers });
}

let replica;
function statements(env) {
  if (!replica) {
    const session = env.DB.withSession("first-unconstrained");
    replica = { byHandle: session.prepare(BY_HANDLE) };
  }
  return replica;
}

function view(row, env) {
  const hex = row.primary_key.slice(8);
  return {
    handle: row.handle,
    fqhn: `${row.handle}@${env.SERVER_DOMAIN}`,
    primary: row.primary_key,
    sigchain_url: `${env.SIG_SERVER_URL}/v1/sigchains/ed25519/${hex}`,
    registered_at: row.registered_at,
    log: logView(row),
    envelope: JSON.parse(row.envelope),
  };
}

/** The user body for `handle` from the caches or D1 (`null` if none); with a bookmark, from D1 through it. */
async function findUser(request, env, ctx, handle, origin) {
  const s = cacheSettings(env);
  const bookmark = request.headers.get(BOOKMARK);
  const now = Date.now();
  const caching = s.ttl > 0 && bookmark === null;
  const key = `u/${handle}`;
  if (caching) {
    const hit = isolateGet(key, now, s);
    if (hit) return { ...hit, cached: true };
    const edge = await caches.default.match(`${origin}/v1/u/${handle}`);
    if (edge && now - Number(edge.headers.get(READ_AT)) < s.ttl * 1000) {
      const entry = { body: await edge.text(), etag: edge.headers.get("etag"), readAt: Number(edge.headers.get(READ_AT)) };
      isolatePut(key, entry, s);
      return { ...entry, cached: true };
    }
  }
  let row;
  let newBookmark = null;
  if (bookmark === null) {
    row = await statements(env).byHandle.bind(handle).first();
  } else {
    const session = env.DB.withSession(bookmark);
    row = await session.prepare(BY_HANDLE).bind(handle).first();
    newBookmark = session.getBookmark();
  }
  if (!row) return null;
  const body = JSON.stringify(view(row, env));
  const entry = { body, etag: await etagOf(body), readAt: now, user: view(row, env), bookmark: newBookmark };
  if (caching) {
    isolatePut(key, entry, s);
    const headers = { "content-type": "application/json", "cache-control": positive(s.ttl), etag: entry.etag, [READ_AT]: String(now) };
    ctx.waitUntil(caches.default.put(`${origin}/v1/u/${handle}`, new Response(body, { headers })));
  }
  return entry;
}

async function register(request, env) {
  const text = await request.text();
  if (text.length > 16384) return fail(413, "body_too_large", "too large");
  let envelope;
  try {
    envelope = JSON.parse(text);
  } catch {
    return fail(400, "invalid_json", "not JSON");
  }
  const { kez, payload, signature } = envelope ?? {};
  if (typeof payload !== "object" || typeof signature !== "object" || payload === null || signature === null) return fail(400, "invalid_envelope", "shape");
  if (kez !== "handle_registration") return fail(400, "unsupported_envelope", "tag");
  if (payload.type !== "kez.chat.handle_registration" || payload.version !== 1) return fail(400, "unsupported_payload", "type");
  if (signature.key !== payload.primary) return fail(400, "key_mismatch", "key");
  if (signature.alg !== "ed25519-sha512-jcs") return fail(400, "unsupported_algorithm", "alg");
  const key = PRIMARY.exec(payload.primary);
  if (!key || !/^[0-9a-fA-F]{128}$/.test(signature.sig)) return fail(400, "invalid_signature", "sig");
  const publicKey = await crypto.subtle.importKey("raw", hexBytes(key[1]), { name: "Ed25519" }, false, ["verify"]);
  const ok = await crypto.subtle.verify({ name: "Ed25519" }, publicKey, hexBytes(signature.sig), new TextEncoder().encode(canonicalize(payload)));
  if (!ok) return fail(400, "invalid_signature", "sig");
  if (String(payload.server).toLowerCase() !== env.SERVER_DOMAIN) return fail(400, "wrong_server", "server");
  if (!HANDLE.test(payload.handle)) return fail(400, "invalid_handle", "handle");
  if (RESERVED.has(payload.handle)) return fail(403, "handle_reserved", "reserved");
  const created = Date.parse(payload.created_at);
  if (Number.isNaN(created)) return fail(400, "invalid_timestamp", "time");
  if (Math.abs(created - Date.now()) > 300_000) return fail(400, "clock_skew", "skew");
  const now = Date.now();
  const registeredAt = new Date(now).toISOString().slice(0, 19) + "Z";
  const cutoff = new Date(now - QUARANTINE_MS).toISOString().slice(0, 19) + "Z";
  const jcs = canonicalize(envelope);
  const { handle, primary } = payload;
  const session = env.DB.withSession("first-primary");
  if (env.LOG === "off") return registerUnlogged(session, env, { handle, primary, registeredAt, jcs });
  let written;
  try {
    written = await session.batch([
      session.prepare(APPEND_REGISTRATION).bind(jcs, handle, primary, cutoff),
      session.prepare(CLEAR_RELEASED).bind(handle, primary, cutoff),
      session.prepare(INSERT).bind(handle, primary, registeredAt, jcs, skeleton(handle)),
      session.prepare(LOG_STATE),
      session.prepare(LOG_NEXT_ENTRIES),
    ]);
  } catch (e) {
    if (String(e.message).includes("UNIQUE")) return fail(409, "handle_taken", "taken");
    throw e;
  }
  const [appended] = written;
  if (appended.results.length === 0) return fail(409, "handle_taken", "taken");
  let row;
  try {
    row = await advanceLog(session, env, appended.results[0].idx + 1, written.slice(-2), handle);
  } catch (e) {
    console.error("log: step failed", String(e));
  }
  row ??= await session.prepare(BY_HANDLE).bind(handle).first();
  return json(201, view(row, env), { "content-type": "application/json", "cache-control": "no-store", [BOOKMARK]: session.getBookmark() });
}

/**
 * The registration as it was before the log (LOG=off): one insert, the answer made from what
 * was written. The benchmark's measure of what the log costs a registration.
 */
async function registerUnlogged(session, env, { handle, primary, registeredAt, jcs }) {
  try {
    await session.prepare("INSERT INTO registrations (handle, primary_key, registered_at, envelope, skeleton) VALUES (?1, ?2, ?3, ?4, ?5)")
      .bind(handle, primary, registeredAt, jcs, skeleton(handle))
      .run();
  } catch (e) {
    if (String(e.message).includes("UNIQUE")) return fail(409, "handle_taken", "taken");
    throw e;
  }
  const row = { handle, primary_key: primary, registered_at: registeredAt, envelope: jcs, log_index: "" };
  return json(201, view(row, env), { "content-type": "application/json", "cache-control": "no-store", [BOOKMARK]: session.getBookmark() });
}

// ---------- the transparency log, stored as the worker stores it (migrations/0003_log.sql) ----------

const QUARANTINE_MS = 30 * 86_400_000;
const SKELETON_STEPS = [["-", ""], ["_", ""], ["0", "o"], ["1", "l"], ["i", "l"], ["5", "s"], ["rn", "m"], ["vv", "w"], ["cl", "d"]];
const skeleton = (handle) => SKELETON_STEPS.reduce((s, [from, to]) => s.replaceAll(from, to), handle);

const BY_HANDLE = `WITH RECURSIVE levels(l) AS (VALUES (0) UNION ALL SELECT l + 1 FROM levels WHERE l < 47)
  SELECT r.handle, r.primary_key, r.registered_at, r.envelope, coalesce(r.log_index || '', '') AS log_index,
    s.size || '' AS log_size, coalesce(s.checkpoint, '') AS log_checkpoint, s.edge AS log_edge,
    coalesce((SELECT group_concat(n.key || ':' || hex(n.hash), ',') FROM log_nodes n WHERE n.key IN
      (SELECT (l << 56) | ((r.log_index >> l) + 1 - 2 * ((r.log_index >> l) & 1)) FROM levels)), '') AS log_siblings
  FROM registrations r JOIN log_state s ON s.id = 1 WHERE r.handle = ?1`;
const APPEND_REGISTRATION = `INSERT INTO log_entries (idx, entry)
  SELECT coalesce((SELECT max(idx) FROM log_entries) + 1, 0), ?1 WHERE NOT EXISTS (SELECT 1 FROM registrations
  WHERE handle = ?2 AND (released_at IS NULL OR (primary_key <> ?3 AND released_at > ?4))) RETURNING idx`;
const CLEAR_RELEASED = "DELETE FROM registrations WHERE handle = ?1 AND released_at IS NOT NULL AND (primary_key = ?2 OR released_at <= ?3)";
const INSERT = `INSERT INTO registrations (handle, primary_key, registered_at, envelope, skeleton, log_index)
  VALUES (?1, ?2, ?3, ?4, ?5, (SELECT max(idx) FROM log_entries))`;
const LOG_STATE = "SELECT size, edge FROM log_state WHERE id = 1";
const LOG_NEXT_ENTRIES = "SELECT entry FROM log_entries WHERE idx >= (SELECT size FROM log_state WHERE id = 1) ORDER BY idx LIMIT 256";
const LOG_INSERT_NODES = "INSERT OR IGNORE INTO log_nodes (key, hash) SELECT json_extract(value, '$[0]'), unhex(json_extract(value, '$[1]')) FROM json_each(?1)";
const LOG_UPDATE = "UPDATE log_state SET size = ?1, edge = ?2, checkpoint = ?3 WHERE id = 1 AND size < ?1";

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const base64 = (bytes) => btoa(String.fromCharCode(...bytes));
const utf8 = (text) => new TextEncoder().encode(text);
const hashes = (hexText) => Array.from({ length: hexText.length / 64 }, (_, i) => hexBytes(hexText.slice(i * 64, i * 64 + 64)));
const leafHash = (entry) => sha256(Uint8Array.of(0, ...entry));
function nodeHash(left, right) {
  const bytes = new Uint8Array(65);
  bytes[0] = 1;
  bytes.set(left, 1);
  bytes.set(right, 33);
  return sha256(bytes);
}
/** The complete subtrees (level, index) that make the leaves [start, end), largest first. */
function cover(start, end) {
  const nodes = [];
  while (start < end) {
    let level = 0;
    while (2 ** (level + 1) <= end - start) level++;
    nodes.push([level, start / 2 ** level]);
    start += 2 ** level;
  }
  return nodes;
}
/** The root of a subtree from the hashes of its cover. */
const fold = (list) => list.reduceRight((right, left) => nodeHash(left, right));
/** RFC 9162's audit path of leaf m in [start, end), as leaf ranges, leaf to root. */
function pathRanges(m, start, end, path = []) {
  const n = end - start;
  if (n <= 1) return path;
  let k = 1;
  while (k * 2 < n) k *= 2;
  const mid = start + k;
  if (m < mid) {
    pathRanges(m, start, mid, path);
    path.push([mid, end]);
  } else {
    pathRanges(m, mid, end, path);
    path.push([start, mid]);
  }
  return path;
}
const nodeKey = (level, index) => ((BigInt(level) << 56n) | BigInt(index)).toString();

/** The lookup's `log`, from the row's log columns: index, checkpoint, inclusion proof. */
function logView(row) {
  if (row.log_index === "") return null;
  const index = Number(row.log_index);
  const size = Number(row.log_size);
  if (index >= size) return null;
  const known = new Map();
  const edge = hashes(row.log_edge);
  cover(0, size).forEach(([level, i], n) => known.set(`${level}/${i}`, edge[n]));
  for (const pair of row.log_siblings.split(",").filter(Boolean)) {
    const [key, hash] = pair.split(":");
    const level = Number(BigInt(key) >> 56n);
    const i = Number(BigInt(key) & ((1n << 56n) - 1n));
    if ((i + 1) * 2 ** level <= size) known.set(`${level}/${i}`, hexBytes(hash));
  }
  const proof = pathRanges(index, 0, size).map(([start, end]) => base64(fold(cover(start, end).map(([level, i]) => known.get(`${level}/${i}`)))));
  return { index, checkpoint: row.log_checkpoint, inclusion_proof: proof };
}

let logKey;
/** The log's Ed25519 key from LOG_SIGNING_SEED (PKCS #8 around the seed), its origin and key ID. */
async function signingKey(env) {
  if (logKey) return logKey;
  const seed = hexBytes(env.LOG_SIGNING_SEED);
  const pkcs8 = Uint8Array.of(...hexBytes("302e020100300506032b657004220420"), ...seed);
  const privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, true, ["sign"]);
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  const publicKey = Uint8Array.from(atob(jwk.x.replaceAll("-", "+").replaceAll("_", "/")), (c) => c.charCodeAt(0));
  const origin = `${env.SERVER_DOMAIN}/log`;
  const keyId = sha256(Uint8Array.of(...utf8(origin), 0x0a, 0x01, ...publicKey)).subarray(0, 4);
  logKey = { privateKey, origin, keyId, publicKey };
  return logKey;
}

/** The C2SP checkpoint of a tree of `size` with `root`, as a signed note. */
async function checkpoint(env, size, root) {
  const { privateKey, origin, keyId } = await signingKey(env);
  const text = `${origin}\n${size}\n${base64(root)}\n`;
  const signature = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, privateKey, utf8(text)));
  return `${text}\n— ${origin} ${base64(Uint8Array.of(...keyId, ...signature))}\n`;
}

/**
 * Steps the tree until it holds entry `target - 1`, from `read` (the state and the entries
 * after it), and reads the handle's row with its proof. Each registration makes its own step,
 * none waits for another's (workerd fails the I/O of a request that goes on from a promise
 * another request settled); the state only moves forward, so the longer of two steps stands.
 */
async function advanceLog(session, env, target, read, handle) {
  let [state, next] = read;
  for (let attempt = 0; attempt < 8; attempt++) {
    const { size, edge } = state.results[0];
    if (size >= target) return session.prepare(BY_HANDLE).bind(handle).first();
    const stack = cover(0, size).map(([level], n) => [level, hashes(edge)[n]]);
    const nodes = [];
    next.results.forEach(({ entry }, offset) => {
      const last = size + offset;
      const leaf = leafHash(utf8(entry));
      stack.push([0, leaf]);
      nodes.push(`[${nodeKey(0, last)},"${hex(leaf)}"]`);
      while (stack.length >= 2 && stack.at(-1)[0] === stack.at(-2)[0]) {
        const [[level, left], [, right]] = stack.splice(-2);
        const hash = nodeHash(left, right);
        stack.push([level + 1, hash]);
        nodes.push(`[${nodeKey(level + 1, Math.floor(last / 2 ** (level + 1)))},"${hex(hash)}"]`);
      }
    });
    const newSize = size + next.results.length;
    const signed = await checkpoint(env, newSize, fold(stack.map(([, hash]) => hash)));
    const [, , after, row] = await session.batch([
      session.prepare(LOG_INSERT_NODES).bind(`[${nodes.join(",")}]`),
      session.prepare(LOG_UPDATE).bind(newSize, stack.map(([, hash]) => hex(hash)).join(""), signed),
      session.prepare(LOG_STATE),
      session.prepare(BY_HANDLE).bind(handle),
    ]);
    if (after.results[0].size >= target) return row.results[0];
    [state, next] = await session.batch([session.prepare(LOG_STATE), session.prepare(LOG_NEXT_ENTRIES)]);
  }
  return undefined;
}

const notFound = (env) =>
  json(404, { error: "user_not_found", message: "No user with this handle is registered here." }, { "content-type": "application/json", ...CORS, "cache-control": negative(cacheSettings(env).ttl), vary: BOOKMARK });

let health;
/** healthz as the worker answers it: configuration and the log's verifier key, made once. */
async function healthBody(env) {
  if (health === undefined) {
    const { origin, keyId, publicKey } = await signingKey(env);
    const log = { origin, verifier_key: `${origin}+${hex(keyId)}+${base64(Uint8Array.of(1, ...publicKey))}`, checkpoint: "/log/checkpoint" };
    const relays = (env.NOSTR_RELAYS ?? "").split(/[\s,]+/).filter(Boolean);
    health = JSON.stringify({ status: "ok", server: env.SERVER_DOMAIN, version: env.VERSION ?? "js", relays, log });
  }
  return health;
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const path = url.pathname;
    if (path === "/v1/healthz") return new Response(await healthBody(env), { headers: { "content-type": "application/json", ...CORS, "cache-control": "no-store" } });
    if (path === "/v1/register" && request.method === "POST") return register(request, env);
    if (path.startsWith("/v1/u/")) {
      const handle = path.slice(6).toLowerCase();
      if (!HANDLE.test(handle)) return fail(400, "invalid_handle", "handle");
      const entry = await findUser(request, env, ctx, handle, url.origin);
      return entry ? answer(request, entry, cacheSettings(env), Date.now()) : notFound(env);
    }
    if (path === "/.well-known/webfinger") {
      const resource = url.searchParams.get("resource");
      if (!resource) return fail(400, "missing_resource", "resource");
      const m = /^acct:([^@]+)@(.+)$/i.exec(resource);
      if (!m) return fail(400, "invalid_resource", "resource");
      if (m[2].toLowerCase() !== env.SERVER_DOMAIN) return notFound(env);
      const found = await findUser(request, env, ctx, m[1].toLowerCase(), url.origin);
      if (!found) return notFound(env);
      const user = JSON.parse(found.body);
      const self = `${url.origin}/v1/u/${user.handle}`;
      const rels = url.searchParams.getAll("rel");
      const links = [
        { rel: "https://kez.chat/rel/user", type: "application/json", href: self },
        { rel: "https://kez.chat/rel/sigchain", type: "application/json", href: user.sigchain_url },
      ].filter((l) => rels.length === 0 || rels.includes(l.rel));
      const jrd = { subject: `acct:${user.fqhn}`, aliases: [self], properties: { "https://kez.chat/ns/primary": user.primary }, links };
      const body = JSON.stringify(jrd);
      return answer(request, { body, etag: await etagOf(body), readAt: found.readAt, cached: found.cached }, cacheSettings(env), Date.now(), "application/jrd+json");
    }
    return fail(404, "not_found", "no such endpoint");
  },
};
