// POST /v1/register against the built worker in workerd with a fresh local D1.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createHash, createPublicKey, verify } from "node:crypto";
import canonicalizeJcs from "canonicalize";
import { startWorker } from "./support/worker.mjs";
import { errorCode, freshEnvelope, getJson, identity, postRegister, registrationPayload, signEnvelope, uniqueHandle } from "./support/kez.mjs";

const SERVER = "localhost"; // wrangler.toml's local SERVER_DOMAIN
let worker;

before(async () => {
  worker = await startWorker();
});
after(async () => {
  await worker?.stop();
});

async function lookup(handle) {
  return getJson(`${worker.url}/v1/u/${handle}`);
}

/** Asserts that nothing was stored for this handle or this key. */
async function assertNothingStored(handle, primary) {
  const rows = worker.query("SELECT count(*) AS n FROM registrations WHERE primary_key = ? OR handle = ?", primary, handle);
  assert.equal(rows[0].n, 0, `nothing may be stored for ${handle} / ${primary}`);
  assert.notEqual((await lookup(encodeURIComponent(handle))).status, 200);
}

describe("successful registration", () => {
  test("201 with the lookup body, and the lookup then finds it", async () => {
    const { id, handle, envelope } = freshEnvelope(SERVER);
    const before = Date.now();
    const created = await postRegister(worker.url, envelope);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.match(created.headers.get("content-type"), /^application\/json/);
    const hex = id.primary.slice("ed25519:".length);
    assert.deepEqual(Object.keys(created.body), ["handle", "fqhn", "primary", "sigchain_url", "registered_at", "log", "envelope"]);
    assert.ok(Number.isSafeInteger(created.body.log.index), "the registration's place in the log");
    assert.ok(Number(created.body.log.checkpoint.split("\n")[1]) > created.body.log.index, "in a signed checkpoint already");
    assert.deepEqual(created.body.envelope, envelope);
    assert.equal(created.body.handle, handle);
    assert.equal(created.body.fqhn, `${handle}@${SERVER}`);
    assert.equal(created.body.primary, id.primary);
    assert.equal(created.body.sigchain_url, `http://localhost:7878/v1/sigchains/ed25519/${hex}`);
    assert.match(created.body.registered_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const registeredAt = Date.parse(created.body.registered_at);
    assert.ok(registeredAt >= before - 1000 && registeredAt <= Date.now() + 1000);

    const found = await lookup(handle);
    assert.equal(found.status, 200);
    assert.deepEqual(found.body, created.body);
  });

  test("the whole signed envelope is stored in JCS form", async () => {
    const { handle, envelope } = freshEnvelope(SERVER);
    assert.equal((await postRegister(worker.url, envelope)).status, 201);
    const [row] = worker.query("SELECT envelope FROM registrations WHERE handle = ?", handle);
    assert.deepEqual(JSON.parse(row.envelope), envelope);
    const { default: canonicalize } = await import("canonicalize");
    assert.equal(row.envelope, canonicalize(envelope));
  });

  test("a timestamp with an offset and fraction, inside the window, is accepted", async () => {
    const at = new Date(Date.now() + 4 * 60_000);
    const local = new Date(at.getTime() + 2 * 3600_000).toISOString().replace("Z", "+02:00");
    const { envelope } = freshEnvelope(SERVER, { edit: (p) => (p.created_at = local) });
    assert.equal((await postRegister(worker.url, envelope)).status, 201);
  });
});

describe("conflicts", () => {
  test("a taken handle is 409 handle_taken and the first binding stays", async () => {
    const first = freshEnvelope(SERVER);
    assert.equal((await postRegister(worker.url, first.envelope)).status, 201);
    const second = freshEnvelope(SERVER, { handle: first.handle });
    const response = await postRegister(worker.url, second.envelope);
    assert.equal(response.status, 409);
    assert.equal(errorCode(response), "handle_taken");
    assert.equal((await lookup(first.handle)).body.primary, first.id.primary);
    const rows = worker.query("SELECT count(*) AS n FROM registrations WHERE primary_key = ?", second.id.primary);
    assert.equal(rows[0].n, 0);
  });

  test("a handle that looks like a registered one is 409 handle_confusable, decided by the database", async () => {
    const base = uniqueHandle("al"); // "al" + 12 hex digits
    const first = freshEnvelope(SERVER, { handle: `${base}ice` });
    assert.equal((await postRegister(worker.url, first.envelope)).status, 201);
    for (const lookalike of [`${base.replace("al", "a1")}ice`, `${base}-ice`, `${base}_lce`]) {
      const other = freshEnvelope(SERVER, { handle: lookalike });
      const response = await postRegister(worker.url, other.envelope);
      assert.equal(response.status, 409, lookalike);
      assert.equal(errorCode(response), "handle_confusable");
      await assertNothingStored(lookalike, other.id.primary);
    }
    // The same handle again is still "taken" (checked before the skeleton), not "confusable".
    assert.equal(errorCode(await postRegister(worker.url, freshEnvelope(SERVER, { handle: first.handle }).envelope)), "handle_taken");
    // Racing lookalikes: exactly one wins.
    const race = uniqueHandle("rn");
    const attempts = [race, race.replace("rn", "m"), `${race.slice(0, 2)}-${race.slice(2)}`, `${race.slice(0, 2)}_${race.slice(2)}`].map((handle) => freshEnvelope(SERVER, { handle }));
    const responses = await Promise.all(attempts.map((a) => postRegister(worker.url, a.envelope)));
    assert.deepEqual(responses.map((r) => r.status).sort(), [201, 409, 409, 409]);
    const rows = worker.query("SELECT handle FROM registrations WHERE handle IN (?, ?, ?, ?)", ...attempts.map((a) => a.handle));
    assert.deepEqual(rows.map((r) => r.handle), [attempts[responses.findIndex((r) => r.status === 201)].handle]);
  });

  test("a lookalike of a reserved name is 403 handle_reserved", async () => {
    for (const handle of ["adm1n", "r00t", "kez-support", "5upport"]) {
      const { id, envelope } = freshEnvelope(SERVER, { handle });
      const response = await postRegister(worker.url, envelope);
      assert.equal(response.status, 403, handle);
      assert.equal(errorCode(response), "handle_reserved");
      await assertNothingStored(handle, id.primary);
    }
  });

  test("a key that already has a handle is 409 key_already_registered", async () => {
    const first = freshEnvelope(SERVER);
    assert.equal((await postRegister(worker.url, first.envelope)).status, 201);
    const again = freshEnvelope(SERVER, { id: first.id });
    const response = await postRegister(worker.url, again.envelope);
    assert.equal(response.status, 409);
    assert.equal(errorCode(response), "key_already_registered");
    assert.equal((await lookup(again.handle)).status, 404);
  });

  test("replaying the exact same envelope is 409", async () => {
    const { envelope } = freshEnvelope(SERVER);
    assert.equal((await postRegister(worker.url, envelope)).status, 201);
    const replay = await postRegister(worker.url, envelope);
    assert.equal(replay.status, 409);
    // Both the handle and the key are taken; either code is true.
    assert.ok(["handle_taken", "key_already_registered"].includes(errorCode(replay)));
  });

  test("N simultaneous registrations of one handle: exactly one 201, N-1 409", async () => {
    const handle = uniqueHandle("race");
    const attempts = Array.from({ length: 16 }, () => freshEnvelope(SERVER, { handle }));
    const responses = await Promise.all(attempts.map((a) => postRegister(worker.url, a.envelope)));
    const statuses = responses.map((r) => r.status).sort();
    assert.deepEqual(statuses, [201, ...Array(15).fill(409)]);
    for (const r of responses.filter((r) => r.status === 409)) assert.equal(errorCode(r), "handle_taken");
    const winner = attempts[responses.findIndex((r) => r.status === 201)];
    assert.equal((await lookup(handle)).body.primary, winner.id.primary);
    const rows = worker.query("SELECT count(*) AS n FROM registrations WHERE handle = ?", handle);
    assert.equal(rows[0].n, 1);
  });

  test("N simultaneous registrations of one key: exactly one 201", async () => {
    const id = identity();
    const attempts = Array.from({ length: 8 }, () => freshEnvelope(SERVER, { id }));
    const responses = await Promise.all(attempts.map((a) => postRegister(worker.url, a.envelope)));
    assert.deepEqual(responses.map((r) => r.status).sort(), [201, ...Array(7).fill(409)]);
    const rows = worker.query("SELECT count(*) AS n FROM registrations WHERE primary_key = ?", id.primary);
    assert.equal(rows[0].n, 1);
  });
});

describe("every rule is checked, with its own code, and nothing is written", () => {
  const minutes = (n) => new Date(Date.now() + n * 60_000).toISOString();
  // [name, status, code, edit(envelope) -> envelope]; the edits re-sign where the rule is not about the signature.
  const resign = (editPayload) => (env, id) => {
    const payload = structuredClone(env.payload);
    editPayload(payload);
    return signEnvelope(id, payload);
  };
  // The envelope with another primary (and signing key), its signature left as it was.
  const withPrimary = (primary) => (env) => ({ ...env, payload: { ...env.payload, primary }, signature: { ...env.signature, key: primary } });
  const cases = [
    ["envelope tag", 400, "unsupported_envelope", (env) => ({ ...env, kez: "sigchain_link" })],
    ["payload type", 400, "unsupported_payload", resign((p) => (p.type = "kez.chat.something_else"))],
    ["payload version", 400, "unsupported_payload", resign((p) => (p.version = 2))],
    ["signing key differs from primary", 400, "key_mismatch", (env) => ({ ...env, signature: { ...env.signature, key: identity().primary } })],
    // A key that is no curve point fails the runtime's equation; the worker then names the key.
    ["primary that is no curve point", 400, "invalid_primary_key", withPrimary(`ed25519:${"02".repeat(32)}`)],
    ["primary that is no curve point, with a signature of the wrong length", 400, "invalid_primary_key", (env, id) => {
      const bad = withPrimary(`ed25519:${"02".repeat(32)}`)(env, id);
      return { ...bad, signature: { ...bad.signature, sig: bad.signature.sig.slice(2) } };
    }],
    ["primary of small order (the identity point)", 400, "invalid_primary_key", withPrimary(`ed25519:01${"00".repeat(31)}`)],
    ["signature algorithm", 400, "unsupported_algorithm", (env) => ({ ...env, signature: { ...env.signature, alg: "EdDSA" } })],
    ["tampered signature", 400, "invalid_signature", (env) => ({ ...env, signature: { ...env.signature, sig: flipHex(env.signature.sig, 10) } })],
    ["payload changed after signing", 400, "invalid_signature", (env) => ({ ...env, payload: { ...env.payload, created_at: minutes(1) } })],
    ["signature of the wrong length", 400, "invalid_signature", (env) => ({ ...env, signature: { ...env.signature, sig: env.signature.sig.slice(2) } })],
    ["signature that is not hex", 400, "invalid_signature", (env) => ({ ...env, signature: { ...env.signature, sig: "x".repeat(128) } })],
    ["signature in uppercase hex (it would be stored as sent)", 400, "invalid_signature", (env) => ({ ...env, signature: { ...env.signature, sig: env.signature.sig.toUpperCase() } })],
    // Both satisfy the Ed25519 equation: lax verifiers (and the runtime's WebCrypto, which
    // checks the equation here) accept them; the strict rules, checked first, do not.
    ["signature with s + L (malleable)", 400, "invalid_signature", (env) => ({ ...env, signature: { ...env.signature, sig: sPlusL(env.signature.sig) } })],
    ["signature whose R is of small order", 400, "invalid_signature", (env, id) => ({ ...env, signature: { ...env.signature, sig: smallOrderR(id, env.payload) } })],
    ["wrong server", 400, "wrong_server", resign((p) => (p.server = "kez.lat"))],
    ["handle too short", 400, "invalid_handle", resign((p) => (p.handle = "ab"))],
    ["handle too long", 400, "invalid_handle", resign((p) => (p.handle = "a".repeat(33)))],
    ["handle with uppercase", 400, "invalid_handle", resign((p) => (p.handle = "Alice" + p.handle))],
    ["handle with a dot", 400, "invalid_handle", resign((p) => (p.handle = "al.ice"))],
    ["handle starting with _", 400, "invalid_handle", resign((p) => (p.handle = "_" + p.handle))],
    ["handle with non-ASCII", 400, "invalid_handle", resign((p) => (p.handle = "zoë" + p.handle))],
    ["reserved handle admin", 403, "handle_reserved", resign((p) => (p.handle = "admin"))],
    ["reserved handle kez", 403, "handle_reserved", resign((p) => (p.handle = "kez"))],
    ["reserved handle postmaster", 403, "handle_reserved", resign((p) => (p.handle = "postmaster"))],
    ["created_at not RFC 3339", 400, "invalid_timestamp", resign((p) => (p.created_at = "yesterday"))],
    ["created_at 6 minutes stale", 400, "clock_skew", resign((p) => (p.created_at = minutes(-6)))],
    ["created_at 6 minutes ahead", 400, "clock_skew", resign((p) => (p.created_at = minutes(6)))],
    ["created_at a year ago", 400, "clock_skew", resign((p) => (p.created_at = "2025-01-01T00:00:00Z"))],
  ];
  for (const [name, status, code, edit] of cases) {
    test(`${name}: ${status} ${code}`, async () => {
      const { id, handle, envelope } = freshEnvelope(SERVER);
      const bad = edit(envelope, id);
      const response = await postRegister(worker.url, bad);
      assert.equal(response.status, status, JSON.stringify(response.body));
      assert.equal(errorCode(response), code);
      await assertNothingStored(handle, id.primary);
      if (bad.payload.handle !== handle) await assertNothingStored(bad.payload.handle, id.primary);
      // The same key and handle can still register properly afterwards.
      assert.equal((await postRegister(worker.url, signEnvelope(id, envelope.payload))).status, 201);
    });
  }

  test("the small-order R case is a real one: its equation holds (OpenSSL's Ed25519 accepts it)", () => {
    const { id, envelope } = freshEnvelope(SERVER);
    const sig = Buffer.from(smallOrderR(id, envelope.payload), "hex");
    assert.ok(verify(null, Buffer.from(canonicalizeJcs(envelope.payload)), createPublicKey(id.privateKey), sig));
  });

  test("the first failing rule is the one reported", async () => {
    const id = identity();
    const payload = registrationPayload({ handle: "x", primary: id.primary, server: "elsewhere.example", createdAt: "long ago" });
    let env = signEnvelope(id, payload);
    assert.equal(errorCode(await postRegister(worker.url, env)), "wrong_server");
    env = { ...env, signature: { ...env.signature, sig: "00".repeat(64) } };
    assert.equal(errorCode(await postRegister(worker.url, env)), "invalid_signature");
    env = { ...env, signature: { ...env.signature, key: identity().primary } };
    assert.equal(errorCode(await postRegister(worker.url, env)), "key_mismatch");
    env = { ...env, payload: { ...env.payload, version: 3 } };
    assert.equal(errorCode(await postRegister(worker.url, env)), "unsupported_payload");
    env = { ...env, kez: "other" };
    assert.equal(errorCode(await postRegister(worker.url, env)), "unsupported_envelope");
    const handleBeforeTime = signEnvelope(id, { ...payload, server: SERVER });
    assert.equal(errorCode(await postRegister(worker.url, handleBeforeTime)), "invalid_handle");
  });
});

describe("malformed and oversized bodies", () => {
  const shapes = [
    ["not JSON", "hello", "invalid_json"],
    ["truncated JSON", '{"kez":"handle_registration","payload":{', "invalid_json"],
    ["empty body", "", "invalid_json"],
    ["invalid UTF-8", new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), "invalid_json"],
    ["a JSON array", "[]", "invalid_envelope"],
    ["a JSON string", '"handle_registration"', "invalid_envelope"],
    ["null", "null", "invalid_envelope"],
    ["an empty object", "{}", "invalid_envelope"],
  ];
  for (const [name, body, code] of shapes) {
    test(`${name}: 400 ${code}`, async () => {
      const response = await postRegister(worker.url, body);
      assert.equal(response.status, 400);
      assert.equal(errorCode(response), code);
    });
  }

  const wrongShape = [
    ["missing payload.handle", (e) => delete e.payload.handle],
    ["missing signature", (e) => delete e.signature],
    ["version as a string", (e) => (e.payload.version = "1")],
    ["version as a float", (e) => (e.payload.version = 1.5)],
    ["handle as a number", (e) => (e.payload.handle = 42)],
    ["unknown payload field", (e) => (e.payload.nickname = "al")],
    ["unknown top-level field", (e) => (e.extra = true)],
    ["signature as a string", (e) => (e.signature = "deadbeef")],
  ];
  for (const [name, edit] of wrongShape) {
    test(`${name}: 400 invalid_envelope, nothing stored`, async () => {
      const { id, handle, envelope } = freshEnvelope(SERVER);
      edit(envelope);
      const response = await postRegister(worker.url, envelope);
      assert.equal(response.status, 400);
      assert.equal(errorCode(response), "invalid_envelope");
      await assertNothingStored(handle, id.primary);
    });
  }

  test("duplicate keys are refused", async () => {
    const { id, handle, envelope } = freshEnvelope(SERVER);
    const text = JSON.stringify(envelope).replace('"kez":"handle_registration"', '"kez":"handle_registration","kez":"handle_registration"');
    const response = await postRegister(worker.url, text);
    assert.equal(response.status, 400);
    assert.equal(errorCode(response), "invalid_envelope");
    await assertNothingStored(handle, id.primary);
  });

  test("a body over 16 KiB is 413, with or without Content-Length", async () => {
    const { id, handle, envelope } = freshEnvelope(SERVER);
    const big = JSON.stringify({ ...envelope, padding: "x".repeat(17 * 1024) });
    const withLength = await postRegister(worker.url, big);
    assert.equal(withLength.status, 413);
    assert.equal(errorCode(withLength), "body_too_large");
    const chunked = await getJson(`${worker.url}/v1/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      duplex: "half",
      body: new ReadableStream({
        start(controller) {
          for (let i = 0; i < 20; i++) controller.enqueue(new TextEncoder().encode("x".repeat(1024)));
          controller.close();
        },
      }),
    });
    assert.equal(chunked.status, 413);
    assert.equal(errorCode(chunked), "body_too_large");
    await assertNothingStored(handle, id.primary);
  });

  test("a chunked body that never ends is refused once it passes 16 KiB, without reading the rest", async () => {
    // 1 KiB chunks for as long as anyone reads them: a worker that reads the whole body first
    // would never answer. (The stream gives up after 64 MiB so that such a worker fails the test.)
    // The worker answers and closes while the client is still writing: the client's TCP stack
    // may then reset the connection before the 413 (its head or its body) is read (EPIPE,
    // "terminated"). That loses the answer, not the check: the request is made again, at most
    // five times.
    for (let attempt = 1; ; attempt++) {
      let sent = 0;
      const endless = new ReadableStream({
        async pull(controller) {
          if (sent >= 64 * 1024 * 1024) return controller.close();
          await new Promise((r) => setTimeout(r, 1));
          sent += 1024;
          controller.enqueue(new Uint8Array(1024).fill(0x20));
        },
      });
      let status, body;
      try {
        const response = await fetch(`${worker.url}/v1/register`, { method: "POST", headers: { "content-type": "application/json" }, duplex: "half", body: endless });
        status = response.status;
        body = await response.text();
      } catch (e) {
        if (attempt < 5 && /terminated|EPIPE|ECONNRESET/.test(`${e.message} ${e.cause?.code}`)) continue;
        throw e;
      }
      assert.equal(status, 413);
      assert.equal(JSON.parse(body).error, "body_too_large");
      // Answered before the stream ended: the worker did not wait for the rest.
      assert.ok(sent < 64 * 1024 * 1024, `the worker answered only after all ${sent} bytes were offered`);
      console.log(`# endless chunked body: 413 after ${sent} bytes were offered (the cap is 16 KiB), attempt ${attempt}`);
      await endless.cancel().catch(() => {});
      return;
    }
  });

  test("wrong methods on /v1/register are 405 with Allow: POST", async () => {
    for (const method of ["GET", "PUT", "DELETE", "PATCH"]) {
      const response = await getJson(`${worker.url}/v1/register`, { method });
      assert.equal(response.status, 405, method);
      assert.equal(response.headers.get("allow"), "POST");
      assert.equal(errorCode(response), "method_not_allowed");
    }
  });
});

/** The order of Ed25519's group. */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const littleEndian = (bytes) => BigInt(`0x${Buffer.from(bytes).reverse().toString("hex") || "0"}`);
const toLittleEndian = (n) => Buffer.from(n.toString(16).padStart(64, "0"), "hex").reverse();

/** The same signature with s + L in place of s: the equation still holds. */
function sPlusL(sig) {
  const s = littleEndian(Buffer.from(sig.slice(64), "hex"));
  return sig.slice(0, 64) + toLittleEndian(s + L).toString("hex");
}

/** A signature of `payload` by `id` whose R is the identity point (of small order): with
 * s = k·a, [s]B − [k]A is the identity, so the equation holds. */
function smallOrderR(id, payload) {
  const h = createHash("sha512").update(Buffer.from(id.seedHex, "hex")).digest();
  h[0] &= 248;
  h[31] &= 127;
  h[31] |= 64;
  const a = littleEndian(h.subarray(0, 32));
  const r = Buffer.alloc(32);
  r[0] = 1;
  const publicKey = Buffer.from(id.primary.slice(8), "hex");
  const message = Buffer.from(canonicalizeJcs(payload));
  const k = littleEndian(createHash("sha512").update(Buffer.concat([r, publicKey, message])).digest()) % L;
  return r.toString("hex") + toLittleEndian((k * a) % L).toString("hex");
}

function flipHex(hex, index) {
  const digit = parseInt(hex[index], 16) ^ 1;
  return hex.slice(0, index) + digit.toString(16) + hex.slice(index + 1);
}
