// Baseline 2: what a user would write instead of the Rust worker. Plain JavaScript with the
// same D1 queries and sessions, the same registration check (JCS via the npm canonicalize
// package, Ed25519 via WebCrypto), and the same caching: Cache-Control, strong ETags and 304,
// an isolate cache (a Map kept in recency order) in front of the edge cache (caches.default),
// with the same TTL from the D1 read, and bookmarks. Bundled with esbuild by benches/run.mjs.
import canonicalize from "canonicalize";

const JSON_HEADERS = { "content-type": "application/json", "access-control-allow-origin": "*", "cache-control": "no-store" };
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
  const headers = {
    "cache-control": positive(ttl), vary: BOOKMARK, etag: entry.etag,
    "access-control-allow-origin": "*", "access-control-expose-headers": "etag, x-kez-bookmark",
  };
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
    replica = { byHandle: session.prepare("SELECT handle, primary_key, registered_at, envelope FROM registrations WHERE handle = ?1") };
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
    row = await session.prepare("SELECT handle, primary_key, registered_at, envelope FROM registrations WHERE handle = ?1").bind(handle).first();
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
  const row = { handle: payload.handle, primary_key: payload.primary, registered_at: new Date().toISOString().slice(0, 19) + "Z", envelope: canonicalize(envelope) };
  const session = env.DB.withSession("first-primary");
  try {
    await session.prepare("INSERT INTO registrations (handle, primary_key, registered_at, envelope) VALUES (?1, ?2, ?3, ?4)")
      .bind(row.handle, row.primary_key, row.registered_at, row.envelope)
      .run();
  } catch (e) {
    if (String(e.message).includes("UNIQUE")) return fail(409, "handle_taken", "taken");
    throw e;
  }
  return json(201, view(row, env), { "content-type": "application/json", "cache-control": "no-store", [BOOKMARK]: session.getBookmark() });
}

const notFound = (env) => json(404, { error: "user_not_found", message: "none" }, { ...JSON_HEADERS, "cache-control": negative(cacheSettings(env).ttl), vary: BOOKMARK });

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const path = url.pathname;
    if (path === "/v1/healthz") return json(200, { status: "ok", server: env.SERVER_DOMAIN, version: "js" });
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
