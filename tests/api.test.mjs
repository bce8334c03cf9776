// The read API, WebFinger, CORS, routing, the SPA and an unconfigured NATS callout, against the built
// worker in workerd with a fresh local D1.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startWorker } from "./support/worker.mjs";
import { createPublicKey, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import canonicalize from "canonicalize";
import { errorCode, freshEnvelope, getJson, postRegister, verifierKeyOf } from "./support/kez.mjs";

const SERVER = "localhost";
let worker;
let alice; // { id, handle, envelope } registered before the tests

before(async () => {
  worker = await startWorker();
  alice = freshEnvelope(SERVER);
  const created = await postRegister(worker.url, alice.envelope);
  assert.equal(created.status, 201);
  alice.body = created.body;
});
after(async () => {
  await worker?.stop();
});

describe("GET /v1/healthz", () => {
  test("200 with status, configured server, crate version and default relays", async () => {
    const response = await getJson(`${worker.url}/v1/healthz`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type"), /^application\/json/);
    const version = /^version = "(.+)"$/m.exec(readFileSync("Cargo.toml", "utf8"))[1];
    const relays = /^NOSTR_RELAYS = "(.+)"$/m.exec(readFileSync("wrangler.toml", "utf8"))[1].split(",");
    assert.equal(relays.length, 5);
    const log = { origin: `${SERVER}/log`, verifier_key: verifierKeyOf(worker.logSeed, `${SERVER}/log`), checkpoint: "/log/checkpoint" };
    assert.deepEqual(response.body, { status: "ok", server: SERVER, version, relays, log });
  });

  test("HEAD answers 200 without a body", async () => {
    const response = await fetch(`${worker.url}/v1/healthz`, { method: "HEAD" });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), "");
  });

  test("the configured domain comes from [vars]", async () => {
    const other = await startWorker([
      "--var", "SERVER_DOMAIN:Chat.Example.org",
      "--var", "SIG_SERVER_URL:https://sig.example.org/",
      "--var", "NOSTR_RELAYS:ws://127.0.0.1:7001, wss://relay.example.org",
    ]);
    try {
      const health = await getJson(`${other.url}/v1/healthz`);
      assert.equal(health.body.server, "chat.example.org");
      assert.deepEqual(health.body.relays, ["ws://127.0.0.1:7001", "wss://relay.example.org"]);
      const { envelope, handle, id } = freshEnvelope("chat.example.org");
      const created = await postRegister(other.url, envelope);
      assert.equal(created.status, 201);
      assert.equal(created.body.fqhn, `${handle}@chat.example.org`);
      assert.equal(created.body.sigchain_url, `https://sig.example.org/v1/sigchains/ed25519/${id.primary.slice(8)}`);
      // A registration for the default local domain is for another server here.
      const wrong = await postRegister(other.url, freshEnvelope(SERVER).envelope);
      assert.equal(errorCode(wrong), "wrong_server");
    } finally {
      await other.stop();
    }
  });

  test("a broken configuration is a logged 500 with an incident reference, no details", async () => {
    const broken = await startWorker(["--var", "SERVER_DOMAIN:not a domain"]);
    try {
      const response = await getJson(`${broken.url}/v1/healthz`);
      assert.equal(response.status, 500);
      assert.equal(errorCode(response), "internal_error");
      const incident = /Incident ([0-9a-f]{12})\./.exec(response.body.message)[1];
      assert.ok(!response.body.message.includes("SERVER_DOMAIN"));
      for (let i = 0; i < 300 && !broken.log().includes(incident); i++) await new Promise((r) => setTimeout(r, 100));
      assert.match(broken.log(), new RegExp(`incident ${incident}: SERVER_DOMAIN`));
    } finally {
      await broken.stop();
    }
  });
});

describe("GET /v1/u/:handle", () => {
  test("200 with the contract body", async () => {
    const response = await getJson(`${worker.url}/v1/u/${alice.handle}`);
    assert.equal(response.status, 200);
    assert.deepEqual(response.body, alice.body);
    assert.equal(response.body.primary, alice.id.primary);
  });

  test("lookups ignore case", async () => {
    const response = await getJson(`${worker.url}/v1/u/${alice.handle.toUpperCase()}`);
    assert.equal(response.status, 200);
    assert.equal(response.body.handle, alice.handle);
  });

  test("an unregistered handle is 404 user_not_found", async () => {
    for (const handle of ["nobody-here", "admin", "kez"]) {
      const response = await getJson(`${worker.url}/v1/u/${handle}`);
      assert.equal(response.status, 404, handle);
      assert.equal(errorCode(response), "user_not_found");
    }
  });

  test("a string that cannot be a handle is 400 invalid_handle", async () => {
    for (const raw of ["ab", "a".repeat(33), "al.ice", "%F0%9F%98%80", "_x_", "a%20b", "%00%00%00", "x".repeat(5000)]) {
      const response = await getJson(`${worker.url}/v1/u/${raw}`);
      assert.equal(response.status, 400, raw);
      assert.equal(errorCode(response), "invalid_handle");
    }
  });

  test("wrong methods are 405 with Allow", async () => {
    const response = await getJson(`${worker.url}/v1/u/${alice.handle}`, { method: "DELETE" });
    assert.equal(response.status, 405);
    assert.equal(response.headers.get("allow"), "GET, HEAD, OPTIONS");
    assert.equal(errorCode(response), "method_not_allowed");
  });
});

describe("GET /v1/by-primary/:primary", () => {
  test("finds the user of a key, with the same body as the handle lookup", async () => {
    for (const primary of [alice.id.primary, alice.id.primary.replace(":", "%3A")]) {
      const response = await getJson(`${worker.url}/v1/by-primary/${primary}`);
      assert.equal(response.status, 200, primary);
      assert.deepEqual(response.body, alice.body);
      assert.equal(response.headers.get("access-control-allow-origin"), "*");
    }
  });

  test("an unregistered key is 404, a malformed one 400", async () => {
    const unknown = await getJson(`${worker.url}/v1/by-primary/ed25519:${"ab".repeat(32)}`);
    assert.equal(unknown.status, 404);
    assert.equal(errorCode(unknown), "user_not_found");
    for (const bad of ["ed25519:abc", alice.id.primary.toUpperCase(), alice.id.primary.slice(8), "x25519:" + alice.id.primary.slice(8), "%zz"]) {
      const response = await getJson(`${worker.url}/v1/by-primary/${bad}`);
      assert.equal(response.status, 400, bad);
      assert.equal(errorCode(response), "invalid_primary_key");
    }
  });
});

describe("the stored registration envelope", () => {
  test("comes with every lookup and lets a client verify the binding without trusting the server", async () => {
    const { body } = await getJson(`${worker.url}/v1/u/${alice.handle}`);
    const { payload, signature } = body.envelope;
    assert.equal(payload.handle, body.handle);
    assert.equal(payload.primary, body.primary);
    assert.equal(payload.server, SERVER);
    assert.equal(signature.key, body.primary);
    const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(body.primary.slice(8), "hex").toString("base64url") }, format: "jwk" });
    assert.ok(verify(null, Buffer.from(canonicalize(payload)), key, Buffer.from(signature.sig, "hex")));
    // A server that swapped the key would be caught: the signature does not verify for another key.
    const other = freshEnvelope(SERVER).id.primary;
    const otherKey = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(other.slice(8), "hex").toString("base64url") }, format: "jwk" });
    assert.ok(!verify(null, Buffer.from(canonicalize({ ...payload, primary: other })), otherKey, Buffer.from(signature.sig, "hex")));
  });
});

describe("GET /.well-known/webfinger", () => {
  const finger = (query) => getJson(`${worker.url}/.well-known/webfinger?${query}`);

  test("a registered acct: gives its JRD", async () => {
    const response = await finger(`resource=acct:${alice.handle}@${SERVER}`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/jrd+json");
    assert.equal(response.headers.get("access-control-allow-origin"), "*");
    const jrd = JSON.parse(typeof response.body === "string" ? response.body : JSON.stringify(response.body));
    assert.equal(jrd.subject, `acct:${alice.handle}@${SERVER}`);
    assert.deepEqual(jrd.aliases, [`${worker.url}/v1/u/${alice.handle}`]);
    assert.deepEqual(jrd.properties, { "https://kez.chat/ns/primary": alice.id.primary });
    assert.deepEqual(jrd.links, [
      { rel: "https://kez.chat/rel/user", type: "application/json", href: `${worker.url}/v1/u/${alice.handle}` },
      { rel: "https://kez.chat/rel/sigchain", type: "application/json", href: alice.body.sigchain_url },
    ]);
    // The user link resolves to the lookup body.
    assert.deepEqual((await getJson(jrd.links[0].href)).body, alice.body);
  });

  test("acct: is matched case-insensitively, percent-encoding included", async () => {
    for (const resource of [`ACCT:${alice.handle.toUpperCase()}@LOCALHOST`, encodeURIComponent(`acct:${alice.handle}@${SERVER}`)]) {
      const response = await finger(`resource=${resource}`);
      assert.equal(response.status, 200, resource);
      assert.equal(response.body.subject, `acct:${alice.handle}@${SERVER}`);
    }
  });

  test("rel filters the links", async () => {
    const one = await finger(`resource=acct:${alice.handle}@${SERVER}&rel=${encodeURIComponent("https://kez.chat/rel/sigchain")}`);
    assert.deepEqual(one.body.links.map((l) => l.rel), ["https://kez.chat/rel/sigchain"]);
    const both = await finger(`rel=https://kez.chat/rel/user&resource=acct:${alice.handle}@${SERVER}&rel=https://kez.chat/rel/sigchain`);
    assert.equal(both.body.links.length, 2);
    const none = await finger(`resource=acct:${alice.handle}@${SERVER}&rel=self`);
    assert.deepEqual(none.body.links, []);
    assert.equal(none.body.subject, `acct:${alice.handle}@${SERVER}`);
  });

  test("missing or malformed resource is 400", async () => {
    const cases = [
      ["", "missing_resource"],
      ["resource=", "missing_resource"],
      ["rel=self", "missing_resource"],
      [`resource=${alice.handle}@${SERVER}`, "invalid_resource"],
      [`resource=https://${SERVER}/u/${alice.handle}`, "invalid_resource"],
      ["resource=acct:", "invalid_resource"],
      [`resource=acct:${alice.handle}`, "invalid_resource"],
      [`resource=acct:@${SERVER}`, "invalid_resource"],
      [`resource=acct:${alice.handle}@`, "invalid_resource"],
    ];
    for (const [query, code] of cases) {
      const response = await finger(query);
      assert.equal(response.status, 400, query);
      assert.equal(errorCode(response), code, query);
      assert.equal(response.headers.get("access-control-allow-origin"), "*");
    }
  });

  test("unknown users and other domains are 404", async () => {
    for (const resource of ["acct:nobody-here@localhost", `acct:${alice.handle}@kez.lat`, "acct:admin@localhost", "acct:b%21d@localhost"]) {
      const response = await finger(`resource=${resource}`);
      assert.equal(response.status, 404, resource);
      assert.equal(errorCode(response), "user_not_found");
    }
  });
});

describe("CORS", () => {
  test("public read endpoints allow any origin, also on errors", async () => {
    for (const path of ["/v1/healthz", `/v1/u/${alice.handle}`, "/v1/u/nobody-here", `/.well-known/webfinger?resource=acct:${alice.handle}@${SERVER}`]) {
      const response = await fetch(`${worker.url}${path}`, { headers: { origin: "https://elsewhere.example" } });
      assert.equal(response.headers.get("access-control-allow-origin"), "*", path);
    }
  });

  test("preflight is 204 with methods and headers", async () => {
    const response = await fetch(`${worker.url}/v1/u/${alice.handle}`, {
      method: "OPTIONS",
      headers: { origin: "https://elsewhere.example", "access-control-request-method": "GET", "access-control-request-headers": "accept" },
    });
    assert.equal(response.status, 204);
    assert.equal(response.headers.get("access-control-allow-origin"), "*");
    assert.equal(response.headers.get("access-control-allow-methods"), "GET, HEAD, OPTIONS");
    assert.equal(response.headers.get("access-control-allow-headers"), "*");
  });

  test("registration and the internal endpoint do not allow other origins", async () => {
    const register = await postRegister(worker.url, "{}", { origin: "https://elsewhere.example", "content-type": "application/json" });
    assert.equal(register.headers.get("access-control-allow-origin"), null);
    const nats = await fetch(`${worker.url}/internal/nats/auth`, { method: "POST", headers: { origin: "https://elsewhere.example" } });
    assert.equal(nats.headers.get("access-control-allow-origin"), null);
  });
});

describe("routing", () => {
  test("unknown API paths are JSON 404s, never the app", async () => {
    for (const path of ["/v1/nope", "/v1/", "/v1/u/", "/v1/u/alice/extra", "/v1/healthz/", "/.well-known/nodeinfo", "/.well-known/", "/internal/", "/internal/nats/other"]) {
      for (const method of ["GET", "POST"]) {
        const response = await getJson(`${worker.url}${path}`, { method, headers: { accept: "text/html" } });
        assert.equal(response.status, 404, `${method} ${path}`);
        assert.equal(errorCode(response), "not_found");
      }
    }
  });

  test("POST /internal/nats/auth without the NATS secrets is 503 nats_not_configured", async () => {
    const response = await getJson(`${worker.url}/internal/nats/auth`, { method: "POST", body: "{}" });
    assert.equal(response.status, 503);
    assert.equal(errorCode(response), "nats_not_configured");
    const get = await getJson(`${worker.url}/internal/nats/auth`);
    assert.equal(get.status, 405);
    assert.equal(get.headers.get("allow"), "POST");
  });
});

describe("the single-page app", () => {
  test("/ serves the app page with security headers", async () => {
    const response = await fetch(`${worker.url}/`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type"), /^text\/html/);
    const html = await response.text();
    assert.match(html, /<title>kez-chat<\/title>/);
    assert.match(html, /<script type="module" crossorigin src="\/assets\/index-[\w-]+\.js"><\/script>/);
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, "no inline script");
    assert.doesNotMatch(html, /<style/, "no inline style");
    const csp = response.headers.get("content-security-policy");
    // Scripts from the app's own origin; WebAssembly may be compiled (the erasure code), but
    // no JavaScript eval and no inline script.
    assert.match(csp, /script-src 'self' 'wasm-unsafe-eval';/);
    assert.doesNotMatch(csp.replace("'wasm-unsafe-eval'", ""), /unsafe-inline|unsafe-eval/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(response.headers.get("x-content-type-options"), "nosniff");
    assert.equal(response.headers.get("referrer-policy"), "no-referrer");
  });

  test("any other path navigates to the app (SPA fallback)", async () => {
    const root = await (await fetch(`${worker.url}/`)).text();
    for (const path of ["/directory", "/u/alice", "/settings/keys"]) {
      const response = await fetch(`${worker.url}${path}`, { headers: { accept: "text/html", "sec-fetch-mode": "navigate" } });
      assert.equal(response.status, 200, path);
      assert.equal(await response.text(), root, path);
    }
  });

  test("static files are served as they are", async () => {
    const response = await fetch(`${worker.url}/favicon.svg`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type"), /^image\/svg\+xml/);
  });
});

describe("odd input never gets a 5xx", () => {
  test("a battery of odd requests all answer below 500 with JSON on API paths", async () => {
    const requests = [
      ["GET", "/v1/u/%"],
      ["GET", "/v1/u/%zz"],
      ["GET", "/v1/u/..%2F..%2Fetc"],
      ["GET", "/v1/u/a'%20OR%201=1--"],
      ["GET", "/v1/u/%E2%80%AE"],
      ["GET", `/v1/u/${"%41".repeat(2000)}`],
      ["GET", "/.well-known/webfinger?resource=%"],
      ["GET", "/.well-known/webfinger?resource=acct:%00@localhost"],
      ["GET", `/.well-known/webfinger?resource=acct:${"a".repeat(10000)}@localhost`],
      ["GET", "/.well-known/webfinger?resource=acct:alice@local%00host"],
      ["GET", "/.well-known/webfinger?resource=acct:alice@localhost&resource=acct:bob@localhost"],
      ["PUT", "/v1/healthz"],
      ["PATCH", "/.well-known/webfinger"],
      ["POST", "/v1/register", "\u0000"],
      ["POST", "/v1/register", JSON.stringify({ kez: "handle_registration", payload: { version: 1e400 } })],
      ["POST", "/v1/register", "[".repeat(5000)],
      ["POST", "/v1/register", JSON.stringify({ kez: 1, payload: [], signature: null })],
    ];
    for (const [method, path, body] of requests) {
      const response = await getJson(`${worker.url}${path}`, { method, body });
      assert.ok(response.status >= 400 && response.status < 500 || response.status === 200, `${method} ${path} -> ${response.status}`);
      assert.equal(typeof response.body, "object", `${method} ${path} answers JSON`);
    }
  });
});
