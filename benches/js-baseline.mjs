// Baseline 2: what a user would write instead of the Rust worker. Plain JavaScript with the
// same D1 queries, and the same registration check (JCS via the npm canonicalize package,
// Ed25519 via WebCrypto). Bundled with esbuild by benches/run.mjs.
import canonicalize from "canonicalize";

const JSON_HEADERS = { "content-type": "application/json", "access-control-allow-origin": "*" };
const HANDLE = /^[a-z0-9][a-z0-9_-]{2,31}$/;
const RESERVED = new Set(["admin", "root", "support", "security", "postmaster", "webmaster", "abuse", "api", "www", "help", "info", "noreply", "kez"]);
const PRIMARY = /^ed25519:([0-9a-f]{64})$/;

const json = (status, body, headers = JSON_HEADERS) => new Response(JSON.stringify(body), { status, headers });
const fail = (status, error, message) => json(status, { error, message });
const hexBytes = (hex) => Uint8Array.from(hex.match(/../g), (b) => parseInt(b, 16));

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

async function findUser(env, handle) {
  return env.DB.prepare("SELECT handle, primary_key, registered_at, envelope FROM registrations WHERE handle = ?1").bind(handle).first();
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
  try {
    await env.DB.prepare("INSERT INTO registrations (handle, primary_key, registered_at, envelope) VALUES (?1, ?2, ?3, ?4)")
      .bind(row.handle, row.primary_key, row.registered_at, row.envelope)
      .run();
  } catch (e) {
    if (String(e.message).includes("UNIQUE")) return fail(409, "handle_taken", "taken");
    throw e;
  }
  return json(201, view(row, env), { "content-type": "application/json" });
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const path = url.pathname;
    if (path === "/v1/healthz") return json(200, { status: "ok", server: env.SERVER_DOMAIN, version: "js" });
    if (path === "/v1/register" && request.method === "POST") return register(request, env);
    if (path.startsWith("/v1/u/")) {
      const handle = path.slice(6).toLowerCase();
      if (!HANDLE.test(handle)) return fail(400, "invalid_handle", "handle");
      const row = await findUser(env, handle);
      return row ? json(200, view(row, env)) : fail(404, "user_not_found", "none");
    }
    if (path === "/.well-known/webfinger") {
      const resource = url.searchParams.get("resource");
      if (!resource) return fail(400, "missing_resource", "resource");
      const m = /^acct:([^@]+)@(.+)$/i.exec(resource);
      if (!m) return fail(400, "invalid_resource", "resource");
      if (m[2].toLowerCase() !== env.SERVER_DOMAIN) return fail(404, "user_not_found", "none");
      const row = await findUser(env, m[1].toLowerCase());
      if (!row) return fail(404, "user_not_found", "none");
      const user = view(row, env);
      const self = `${url.origin}/v1/u/${user.handle}`;
      const rels = url.searchParams.getAll("rel");
      const links = [
        { rel: "https://kez.chat/rel/user", type: "application/json", href: self },
        { rel: "https://kez.chat/rel/sigchain", type: "application/json", href: user.sigchain_url },
      ].filter((l) => rels.length === 0 || rels.includes(l.rel));
      const jrd = { subject: `acct:${user.fqhn}`, aliases: [self], properties: { "https://kez.chat/ns/primary": user.primary }, links };
      return json(200, jrd, { "content-type": "application/jrd+json", "access-control-allow-origin": "*" });
    }
    return fail(404, "not_found", "no such endpoint");
  },
};
