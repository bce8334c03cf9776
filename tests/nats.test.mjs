// The NATS auth callout for real: nats-server 2.15 (configured with the nats.conf that
// `kez-nats-bridge keygen` prints), the bridge, and the worker in workerd with a local D1.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createPublicKey, generateKeyPairSync, randomBytes, sign, verify } from "node:crypto";
import { createServer } from "node:net";
import { after, before, describe, test } from "node:test";
import { connect } from "@nats-io/transport-node";
import canonicalize from "canonicalize";
import { startWorker } from "./support/worker.mjs";
import { errorCode, freshEnvelope, getJson, identity, postRegister, registrationPayload } from "./support/kez.mjs";
import { BRIDGE_BIN, bridgeHeaders, kezAuthenticator, logLines, nkeyFor, rawPublic, recordingProxy, signJwt, startBridge, startNats, verifiedClaims } from "./support/nats.mjs";
import { checkNatsNonce } from "../scripts/lib/nats.mjs";
import { releaseEnvelope, rotationEnvelope } from "../scripts/lib/registration.mjs";

const SERVER = "localhost";

/**
 * nats-server + worker (with the keygen secrets) + bridge. With `recordCallouts`, the bridge
 * reaches the worker through a recording proxy (`proxy.answers`: what the worker issued).
 */
async function startStack({ ttlSeconds = 3600, xkey, recordCallouts = false, extraVars = {}, proxyDelayMs = 0, bridgeArgs = [] } = {}) {
  const nats = await startNats({ xkey });
  const vars = Object.entries({ ...nats.workerVars, NATS_USER_JWT_TTL_SECONDS: String(ttlSeconds), ...extraVars }).flatMap(([k, v]) => ["--var", `${k}:${v}`]);
  const worker = await startWorker(vars);
  const proxy = recordCallouts ? await recordingProxy(worker.url, { delayMs: proxyDelayMs }) : null;
  const bridge = await startBridge(nats, proxy?.url ?? worker.url, bridgeArgs);
  return {
    nats,
    worker,
    bridge,
    proxy,
    async stop() {
      await bridge.stop();
      await proxy?.close();
      await nats.stop();
      await worker.stop();
    },
  };
}

async function registered(worker) {
  const user = freshEnvelope(SERVER);
  const created = await postRegister(worker.url, user.envelope);
  assert.equal(created.status, 201);
  return { ...user, hex: user.id.primary.slice("ed25519:".length) };
}

/** Connects, and records the errors (permission violations) the server reports. */
async function connectAs(stack, options) {
  const nc = await connect({ servers: stack.nats.url, reconnect: false, ...options });
  const errors = [];
  (async () => {
    for await (const status of nc.status()) if (status.type === "error") errors.push(String(status.error?.message ?? status.error));
  })();
  return { nc, errors };
}

/** Connects one client per identity, runs `body` with them, and closes them all. */
async function withClients(stack, ids, body) {
  const clients = [];
  try {
    for (const id of ids) clients.push(await connectAs(stack, { authenticator: kezAuthenticator(id) }));
    return await body(clients);
  } finally {
    for (const client of clients) await client.nc.close();
  }
}

async function refusal(stack, options) {
  try {
    const nc = await connect({ servers: stack.nats.url, reconnect: false, ...options });
    await nc.close();
    return null;
  } catch (e) {
    return String(e.message ?? e);
  }
}

const settle = (ms = 400) => new Promise((r) => setTimeout(r, ms));

/**
 * The bridge's log lines once `check(lines)` holds (or after 5 s, for the assertion to show).
 * The bridge logs a callout before it answers, but its output reaches us through a pipe, which
 * may be read after the client has already seen the outcome.
 */
async function logUntil(bridge, check) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const lines = logLines(bridge.log());
    if (check(lines) || Date.now() > deadline) return lines;
    await settle(20);
  }
}
const answeredCount = (lines) => lines.filter((l) => l.msg === "answered").length;

describe("NATS auth callout through the bridge", () => {
  let stack, alice, bob, carol;
  before(async () => {
    stack = await startStack();
    [alice, bob, carol] = [await registered(stack.worker), await registered(stack.worker), await registered(stack.worker)];
  });
  after(async () => {
    await stack?.stop();
  });

  test("a registered key gets in, reads its inbox, and others can write to it under their own token", async () => {
    await withClients(stack, [alice.id, bob.id], async ([a, b]) => {
    const inbox = a.nc.subscribe(`kez.inbox.${alice.hex}.>`, { max: 1 });
    await a.nc.flush();
    b.nc.publish(`kez.inbox.${alice.hex}.${bob.hex}.m1`, "hello alice");
    await b.nc.flush();
    const received = await Promise.race([
      (async () => { for await (const m of inbox) return m; })(),
      settle(5000).then(() => null),
    ]);
    assert.ok(received, "alice received bob's message");
    assert.equal(received.subject, `kez.inbox.${alice.hex}.${bob.hex}.m1`);
    assert.equal(received.string(), "hello alice");
    assert.deepEqual(a.errors, []);
    assert.deepEqual(b.errors, []);
    });
  });

  test("subscribing to another inbox is refused", async () => {
    await withClients(stack, [alice.id, carol.id], async ([a, c]) => {
    const spy = a.nc.subscribe(`kez.inbox.${bob.hex}.>`);
    const got = [];
    (async () => { for await (const m of spy) got.push(m); })().catch(() => {});
    await a.nc.flush();
    c.nc.publish(`kez.inbox.${bob.hex}.${carol.hex}.secret`, "for bob only");
    await c.nc.flush();
    const closed = await Promise.race([spy.closed, settle(3000).then(() => "still open")]);
    assert.match(String(closed?.message ?? closed), /permissions violation/i);
    assert.equal(got.length, 0, "alice got nothing from bob's inbox");
    });
  });

  test("publishing with someone else's sender token is refused and never delivered", async () => {
    await withClients(stack, [alice.id, bob.id], async ([a, b]) => {
    const got = [];
    const inbox = a.nc.subscribe(`kez.inbox.${alice.hex}.>`);
    (async () => { for await (const m of inbox) got.push(m.subject); })();
    await a.nc.flush();
    b.nc.publish(`kez.inbox.${alice.hex}.${carol.hex}.forged`, "pretending to be carol");
    b.nc.publish(`kez.other.${alice.hex}`, "not an inbox subject");
    await b.nc.flush().catch(() => {});
    await settle(800);
    assert.deepEqual(got, []);
    assert.ok(b.errors.some((e) => /permissions violation for publish/i.test(e)), b.errors.join("; "));
    });
  });

  test("an unregistered key is refused", async () => {
    const stranger = identity();
    const before = answeredCount(logLines(stack.bridge.log()));
    assert.match(await refusal(stack, { authenticator: kezAuthenticator(stranger) }), /authorization violation/i);
    // The worker's signed denial went back through the bridge.
    assert.ok(answeredCount(await logUntil(stack.bridge, (lines) => answeredCount(lines) > before)) > before);
  });

  test("the callout follows the registry: a rotated-away key and a released key are refused at their next login", async () => {
    const moved = await registered(stack.worker);
    const next = identity();
    const rotated = await getJson(`${stack.worker.url}/v1/rotate`, { method: "POST", body: JSON.stringify(rotationEnvelope(moved.id, next, { handle: moved.handle, server: SERVER })) });
    assert.equal(rotated.status, 201, JSON.stringify(rotated.body));
    assert.match(await refusal(stack, { authenticator: kezAuthenticator(moved.id) }), /authorization violation/i, "the old key");
    await withClients(stack, [next], async ([client]) => assert.deepEqual(client.errors, []));

    const leaving = await registered(stack.worker);
    await withClients(stack, [leaving.id], async ([client]) => assert.deepEqual(client.errors, []));
    const released = await getJson(`${stack.worker.url}/v1/release`, { method: "POST", body: JSON.stringify(releaseEnvelope(leaving.id, { handle: leaving.handle, server: SERVER })) });
    assert.equal(released.status, 201, JSON.stringify(released.body));
    assert.match(await refusal(stack, { authenticator: kezAuthenticator(leaving.id) }), /authorization violation/i, "the released key");
  });

  test("a registered public key whose nonce was signed with another key is refused by the bridge, without asking the worker", async () => {
    const impostor = identity();
    const answered = answeredCount(logLines(stack.bridge.log()));
    const refusedHere = (lines) => lines.filter((l) => l.msg === "refused (empty reply)" && l.reason === "nonce signature invalid").length;
    const before = refusedHere(logLines(stack.bridge.log()));
    const error = await refusal(stack, { authenticator: kezAuthenticator(alice.id, impostor.privateKey) });
    assert.match(error, /authorization violation/i);
    const lines = await logUntil(stack.bridge, (ls) => refusedHere(ls) > before);
    assert.equal(refusedHere(lines), before + 1, "refused by the bridge's own check");
    assert.equal(answeredCount(lines), answered, "the worker was not asked");
  });

  test("user/password logins are refused", async () => {
    assert.match(await refusal(stack, { user: alice.handle, pass: "x" }), /authorization violation/i);
    assert.match(await refusal(stack, {}), /authorization violation/i);
  });

  test("callout round trip on loopback (connect incl. NATS -> bridge -> worker -> NATS)", async () => {
    const connects = [];
    const before = answeredCount(logLines(stack.bridge.log()));
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      const nc = await connect({ servers: stack.nats.url, reconnect: false, authenticator: kezAuthenticator(alice.id) });
      connects.push(performance.now() - started);
      await nc.close();
    }
    const lines = await logUntil(stack.bridge, (ls) => answeredCount(ls) >= before + 20);
    const hops = lines.filter((l) => l.msg === "answered").map((l) => l.elapsed_ms).slice(before);
    const pct = (xs, p) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(xs.length * p))].toFixed(1);
    console.log(`# callout round trip: client connect p50 ${pct(connects, 0.5)} ms, p95 ${pct(connects, 0.95)} ms; bridge -> worker -> bridge p50 ${pct(hops, 0.5)} ms, p95 ${pct(hops, 0.95)} ms (n=20)`);
    assert.equal(hops.length, 20);
  });
});

describe("POST /internal/nats/auth over HTTP", () => {
  let stack, alice, serverKey, serverNkey;
  before(async () => {
    stack = await startStack();
    alice = await registered(stack.worker);
    // A stand-in nats-server key: these requests go straight to the worker, not through NATS.
    serverKey = generateKeyPairSync("ed25519").privateKey;
    serverNkey = nkeyFor("server", rawPublic(serverKey));
  });
  after(async () => {
    await stack?.stop();
  });

  /** An authorization request like nats-server's, for `who` signing the nonce with `signer`. */
  function authRequest({ who = alice, signer = who?.id.privateKey, exp = Math.floor(Date.now() / 1000) + 5, type = "authorization_request", server = serverKey, nonce = randomBytes(11).toString("base64url") } = {}) {
    const now = Math.floor(Date.now() / 1000);
    const userNkey = nkeyFor("user", randomBytes(32));
    const connectOpts = who
      ? { nkey: nkeyFor("user", Buffer.from(who.hex, "hex")), sig: sign(null, Buffer.from(nonce), signer).toString("base64url"), protocol: 1 }
      : { user: "x", pass: "y", protocol: 1 };
    const iss = nkeyFor("server", rawPublic(server));
    const claims = {
      aud: "nats-authorization-request", ...(exp === null ? {} : { exp }), iat: now, iss, jti: "X", sub: stack.nats.issuerPublic,
      nats: { type, version: 2, user_nkey: userNkey, server_id: { id: iss, name: "test", host: "127.0.0.1" }, client_info: { nonce, host: "127.0.0.1", kind: "Client", type: "nats" }, connect_opts: connectOpts },
    };
    return { token: signJwt(claims, server), userNkey };
  }

  async function call(body, headers) {
    const response = await fetch(`${stack.worker.url}/internal/nats/auth`, { method: "POST", body, headers: headers ?? (bridgeHeaders(stack.nats.bridgeSigningKey, body)) });
    const text = await response.text();
    return { status: response.status, type: response.headers.get("content-type"), text, headers: response.headers };
  }

  test("a valid request for a registered key is allowed with inbox permissions", async () => {
    const { token, userNkey } = authRequest();
    const answer = await call(token);
    assert.equal(answer.status, 200);
    assert.equal(answer.type, "application/jwt");
    const claims = verifiedClaims(answer.text, stack.nats.issuerPublic);
    assert.equal(claims.sub, userNkey);
    assert.equal(claims.aud, serverNkey);
    assert.equal(claims.nats.type, "authorization_response");
    const user = verifiedClaims(claims.nats.jwt, stack.nats.issuerPublic);
    assert.equal(user.sub, userNkey);
    assert.equal(user.aud, "KEZ");
    assert.equal(user.name, alice.handle);
    assert.equal(user.exp - user.iat, 3600);
    assert.deepEqual(user.nats.sub.allow, [`kez.inbox.${alice.hex}.>`]);
    assert.deepEqual(user.nats.pub.allow, [`kez.inbox.${alice.hex}.>`, `kez.inbox.*.${alice.hex}.>`]);
    // Limited by default: a registration buys a connection, not a firehose.
    assert.deepEqual({ subs: user.nats.subs, payload: user.nats.payload, data: user.nats.data }, { subs: 10, payload: 262_144, data: 4_194_304 });
  });

  test("denials are signed answers with a reason", async () => {
    const stranger = { id: identity() };
    stranger.hex = stranger.id.primary.slice(8);
    const cases = [
      [authRequest({ who: stranger }), "key not registered"],
      [authRequest({ signer: identity().privateKey }), "nonce signature invalid"],
      [authRequest({ who: null }), "nkey authentication required"],
      [authRequest({ exp: Math.floor(Date.now() / 1000) - 60 }), "authorization request expired"],
      [authRequest({ exp: null }), "authorization request has no exp"],
      // A signature alice's key made for another use (here, what a registration signs), offered
      // as a login: it verifies, but no nats-server makes such a nonce.
      [authRequest({ nonce: JSON.stringify({ handle: alice.handle, primary: alice.id.primary, server: "localhost" }) }), "nonce is not a nats-server nonce"],
    ];
    for (const [{ token, userNkey }, reason] of cases) {
      const answer = await call(token);
      assert.equal(answer.status, 200, reason);
      const claims = verifiedClaims(answer.text, stack.nats.issuerPublic);
      assert.equal(claims.nats.error, reason);
      assert.equal(claims.nats.jwt, undefined);
      assert.equal(claims.sub, userNkey);
    }
  });

  test("malformed or foreign request JWTs are 400", async () => {
    const { token } = authRequest();
    const [head, body] = token.split(".");
    const other = generateKeyPairSync("ed25519").privateKey;
    const bodies = [
      "not a jwt",
      `${head}.${body}.AAAA`,
      `${head}.${body}.${signJwt({}, other).split(".")[2]}`,
      authRequest({ type: "authorization_response" }).token,
      signJwt({ iss: nkeyFor("account", rawPublic(other)), nats: {} }, other),
    ];
    for (const b of bodies) {
      const answer = await call(b);
      assert.equal(answer.status, 400, b);
      assert.equal(errorCode({ ...answer, body: JSON.parse(answer.text), headers: answer.headers }), "invalid_authorization_request");
    }
  });

  test("missing, stale or badly signed bridge requests are 401", async () => {
    const { token } = authRequest();
    const now = Math.floor(Date.now() / 1000);
    const other = generateKeyPairSync("ed25519").privateKey;
    const good = bridgeHeaders(stack.nats.bridgeSigningKey, token);
    const variants = [
      ["no headers", {}],
      ["only the time", { "x-kez-bridge-time": good["x-kez-bridge-time"] }],
      ["stale by 2 minutes", bridgeHeaders(stack.nats.bridgeSigningKey, token, now - 120)],
      ["from the future", bridgeHeaders(stack.nats.bridgeSigningKey, token, now + 120)],
      ["another key", bridgeHeaders(other, token)],
      ["signature for another body", bridgeHeaders(stack.nats.bridgeSigningKey, token + "x")],
      ["garbage signature", { ...good, "x-kez-bridge-signature": "not-a-signature" }],
      ["signed for another path", bridgeHeaders(stack.nats.bridgeSigningKey, token, now, { path: "/internal/nats/other" })],
      ["signed for another method", bridgeHeaders(stack.nats.bridgeSigningKey, token, now, { method: "PUT" })],
    ];
    for (const [name, headers] of variants) {
      const answer = await call(token, headers);
      assert.equal(answer.status, 401, name);
      assert.equal(JSON.parse(answer.text).error, "unauthorized", name);
      assert.equal(answer.headers.get("www-authenticate"), "KezBridge");
    }
  });

  test("a bridge signature is accepted once: a replay within its window is 401", async () => {
    const { token } = authRequest();
    const headers = bridgeHeaders(stack.nats.bridgeSigningKey, token);
    assert.equal((await call(token, headers)).status, 200);
    const replay = await call(token, headers);
    assert.equal(replay.status, 401);
    assert.equal(JSON.parse(replay.text).error, "unauthorized");
  });
});

describe("NATS_SERVER_KEYS", () => {
  let stack;
  let listed;
  before(async () => {
    listed = generateKeyPairSync("ed25519").privateKey;
    stack = await startStack({ extraVars: { NATS_SERVER_KEYS: nkeyFor("server", rawPublic(listed)), NATS_USER_SUBS: "3" } });
  });
  after(async () => {
    await stack?.stop();
  });

  test("only listed servers are answered; a real nats-server not on the list gets its client refused", async () => {
    const alice = await registered(stack.worker);
    const request = (server) => {
      const nonce = randomBytes(11).toString("base64url");
      const now = Math.floor(Date.now() / 1000);
      const iss = nkeyFor("server", rawPublic(server));
      const connectOpts = { nkey: nkeyFor("user", Buffer.from(alice.hex, "hex")), sig: sign(null, Buffer.from(nonce), alice.id.privateKey).toString("base64url") };
      const claims = { aud: "nats-authorization-request", exp: now + 5, iat: now, iss, jti: "X", sub: stack.nats.issuerPublic, nats: { type: "authorization_request", version: 2, user_nkey: nkeyFor("user", randomBytes(32)), server_id: { id: iss }, client_info: { nonce }, connect_opts: connectOpts } };
      return signJwt(claims, server);
    };
    const post = async (token) => {
      const response = await fetch(`${stack.worker.url}/internal/nats/auth`, { method: "POST", body: token, headers: bridgeHeaders(stack.nats.bridgeSigningKey, token) });
      return { status: response.status, text: await response.text() };
    };
    const unlisted = await post(request(generateKeyPairSync("ed25519").privateKey));
    assert.equal(unlisted.status, 403);
    assert.equal(JSON.parse(unlisted.text).error, "unknown_nats_server");
    const allowed = await post(request(listed));
    assert.equal(allowed.status, 200);
    const user = verifiedClaims(verifiedClaims(allowed.text, stack.nats.issuerPublic).nats.jwt, stack.nats.issuerPublic);
    assert.equal(user.nats.subs, 3, "NATS_USER_SUBS");
    // The stack's own nats-server is not listed: its callouts are refused, so is its client.
    assert.match(await refusal(stack, { authenticator: kezAuthenticator(alice.id) }), /authorization violation|timeout/i);
  });
});

describe("user JWT expiry", () => {
  let stack, alice;
  before(async () => {
    stack = await startStack({ ttlSeconds: 2, recordCallouts: true });
    alice = await registered(stack.worker);
  });
  after(async () => {
    await stack?.stop();
  });

  test("a client is disconnected when its user JWT expires", async () => {
    const nc = await connect({ servers: stack.nats.url, reconnect: false, authenticator: kezAuthenticator(alice.id) });
    const connectedAt = Date.now();
    const statuses = [];
    (async () => { for await (const s of nc.status()) statuses.push(`${s.type}: ${s.error?.message ?? s.data ?? ""}`); })();
    const closed = await Promise.race([nc.closed(), settle(10_000).then(() => "still connected")]);
    const closedAt = Date.now();
    assert.notEqual(closed, "still connected");
    assert.match(String(closed?.message ?? "") + statuses.join(" "), /expired/i);
    // The user JWT the worker actually issued for this connection (its only callout).
    const callouts = stack.proxy.answers.filter((a) => a.path === "/internal/nats/auth");
    assert.equal(callouts.length, 1);
    const user = verifiedClaims(verifiedClaims(callouts[0].body, stack.nats.issuerPublic).nats.jwt, stack.nats.issuerPublic);
    assert.equal(user.exp - user.iat, 2);
    // Whole seconds: `exp` may be anything from 1 to 2 s after the connect. nats-server arms its
    // timer for (exp - now, in whole seconds) s, so it fires at exp or up to 1 s later, never
    // before exp (both clocks are this machine's); the upper bound only allows for a slow machine.
    const late = closedAt / 1000 - user.exp;
    console.log(`# user JWT expiry: exp came ${(user.exp - connectedAt / 1000).toFixed(3)} s after the connect; disconnected ${late.toFixed(3)} s after exp`);
    assert.ok(late >= 0 && late < 5, `disconnected ${late.toFixed(3)} s after the JWT's exp`);
  });
});

describe("bridge operations", () => {
  let stack, alice;
  before(async () => {
    stack = await startStack();
    alice = await registered(stack.worker);
  });
  after(async () => {
    await stack?.stop();
  });

  test("two bridges share the callouts; SIGTERM stops one cleanly and the other carries on", async () => {
    const second = await startBridge(stack.nats, stack.worker.url);
    for (let i = 0; i < 10; i++) {
      const nc = await connect({ servers: stack.nats.url, reconnect: false, authenticator: kezAuthenticator(alice.id) });
      await nc.close();
    }
    const answered = () => answeredCount(logLines(stack.bridge.log())) + answeredCount(logLines(second.log()));
    const deadline = Date.now() + 5000;
    while (answered() < 10 && Date.now() < deadline) await settle(20);
    assert.equal(answered(), 10, "every callout answered once");
    const code = await second.stop("SIGTERM");
    assert.equal(code, 0);
    const messages = logLines(second.log()).map((l) => l.msg);
    assert.deepEqual(messages.slice(-2), ["shutting down", "stopped"]);
    const nc = await connect({ servers: stack.nats.url, reconnect: false, authenticator: kezAuthenticator(alice.id) });
    await nc.close();
  });
});

describe("encrypted callouts (xkey)", () => {
  let stack, alice;
  before(async () => {
    stack = await startStack({ xkey: nkeyFor("curve", randomBytes(32)) });
    alice = await registered(stack.worker);
  });
  after(async () => {
    await stack?.stop();
  });

  test("are refused at once with a clear log line", async () => {
    const started = Date.now();
    assert.match(await refusal(stack, { authenticator: kezAuthenticator(alice.id) }), /authorization violation/i);
    // A refusal by nats-server's callout timeout cannot come before that timeout has passed.
    const elapsed = Date.now() - started;
    assert.ok(elapsed < stack.nats.authTimeoutSeconds * 1000, `refused after ${elapsed} ms, not by the ${stack.nats.authTimeoutSeconds} s auth timeout`);
    const lines = await logUntil(stack.bridge, (ls) => ls.some((l) => l.msg === "refused (empty reply)"));
    const refused = lines.find((l) => l.msg === "refused (empty reply)");
    assert.ok(refused, "the bridge logged the refusal");
    assert.match(refused.reason, /xkey/);
  });
});

/**
 * A fake NATS server on loopback: its INFO carries `nonce` (left out when undefined); it
 * answers PING with PONG and records everything the client writes.
 */
async function fakeNats(nonce) {
  let received = "";
  const sockets = new Set();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("data", (d) => {
      received += d;
      if (received.endsWith("PING\r\n")) socket.write("PONG\r\n");
    });
    socket.write(`INFO ${JSON.stringify({ server_id: "x", version: "2.15.1", proto: 1, headers: true, max_payload: 1048576, auth_required: true, nonce })}\r\n`);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `nats://127.0.0.1:${server.address().port}`,
    received: () => received,
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

describe("NATS nonce guard", () => {
  const alice = identity();
  // Bytes the identity key signs elsewhere, passed off as nonces.
  const crafted = {
    "a message header's signed bytes": `kez-msg-v1\u0000${canonicalize({ from: alice.primary, type: "text", text: "hi", v: 1 })}`,
    "a registration payload": canonicalize(registrationPayload({ handle: "alice", primary: alice.primary, server: "localhost" })),
    "a 65-character string": "A".repeat(65),
    "a 10-character string": "AAAAAAAAAA",
    "padded base64": "AAAAAAAAAAAAAAA=",
    nothing: undefined,
  };

  test("the nonce guard accepts what nats-server sends and refuses the rest", () => {
    // Nonces seen from nats-server 2.15.1, and its recipe: 11 random bytes, base64 RawURLEncoding.
    for (const nonce of ["DrZHljg68Mn1ZYk", "9MymgZZ-qhXP_7E", "-UfLsRgGr22fLNc"]) assert.equal(checkNatsNonce(nonce), nonce);
    for (let i = 0; i < 100; i++) checkNatsNonce(randomBytes(11).toString("base64url"));
    for (const [what, nonce] of Object.entries(crafted)) {
      assert.throws(() => checkNatsNonce(nonce), /refusing to sign a NATS nonce that does not look like one/, what);
    }
    assert.throws(() => checkNatsNonce(12345678901234), /refusing to sign/);
  });

  for (const [what, nonce] of Object.entries(crafted)) {
    test(`a server offering ${what} as a nonce gets no signature`, async () => {
      const server = await fakeNats(nonce);
      try {
        await assert.rejects(
          connect({ servers: server.url, reconnect: false, authenticator: kezAuthenticator(alice) }),
          /refusing to sign a NATS nonce/,
        );
        assert.doesNotMatch(server.received(), /CONNECT|"sig"/, "nothing was sent, let alone a signature");
      } finally {
        await server.close();
      }
    });
  }

  test("a real-looking nonce is signed, and the signature covers exactly the nonce bytes", async () => {
    const nonce = randomBytes(11).toString("base64url");
    const server = await fakeNats(nonce);
    try {
      const nc = await connect({ servers: server.url, reconnect: false, authenticator: kezAuthenticator(alice) });
      await nc.close().catch(() => {});
      const line = server.received().split("\r\n").find((l) => l.startsWith("CONNECT "));
      const sent = JSON.parse(line.slice("CONNECT ".length));
      assert.equal(sent.nkey, nkeyFor("user", rawPublic(alice.privateKey)));
      assert.ok(verify(null, Buffer.from(nonce, "utf8"), createPublicKey(alice.privateKey), Buffer.from(sent.sig, "base64url")));
    } finally {
      await server.close();
    }
  });
});

describe("bridge concurrency", () => {
  let stack;
  before(async () => {
    // A worker that takes 300 ms per callout, and a bridge that may have 2 in flight.
    stack = await startStack({ recordCallouts: true, proxyDelayMs: 300, bridgeArgs: ["--max-concurrent", "2"] });
  });
  after(async () => {
    await stack?.stop();
  });

  test("--max-concurrent caps the callouts in flight; the others wait their turn and get in", async () => {
    const users = await Promise.all(Array.from({ length: 6 }, () => registered(stack.worker)));
    const clients = await Promise.all(users.map((u) => connect({ servers: stack.nats.url, reconnect: false, authenticator: kezAuthenticator(u.id) })));
    assert.equal(clients.length, 6);
    assert.equal(stack.proxy.answers.filter((a) => a.path === "/internal/nats/auth").length, 6);
    assert.equal(stack.proxy.maxInFlight, 2);
    await Promise.all(clients.map((nc) => nc.close()));
  });
});

describe("bridge setup", () => {
  const runBridge = (args) =>
    new Promise((resolve) => execFile(BRIDGE_BIN, args, (error, stdout, stderr) => resolve({ code: error?.code ?? 0, stdout, stderr })));

  test("keygen writes the setup (with the issuer seed) to a 0600 file and prints only public keys", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kez-keygen-"));
    try {
      const { code, stdout } = await runBridge(["keygen", "--out-dir", dir]);
      assert.equal(code, 0);
      const seeds = ["issuer.seed", "bridge-nats.seed", "bridge-http.seed"].map((f) => readFileSync(path.join(dir, f), "utf8").trim());
      for (const seed of seeds) assert.ok(!stdout.includes(seed), "no seed on the terminal");
      assert.doesNotMatch(stdout, /\bS[AU][A-Z2-7]{50,}/, "nothing shaped like a seed on the terminal");
      const setup = path.join(dir, "setup.txt");
      assert.equal(statSync(setup).mode & 0o777, 0o600);
      assert.ok(readFileSync(setup, "utf8").includes(`NATS_ISSUER_SEED=${seeds[0]}`));
      for (const f of ["issuer.seed", "bridge-nats.seed", "bridge-http.seed"]) assert.equal(statSync(path.join(dir, f)).mode & 0o777, 0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the bridge refuses a plain http:// worker URL that is not this machine", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kez-keygen-"));
    try {
      await runBridge(["keygen", "--out-dir", dir]);
      const { code, stdout, stderr } = await runBridge(["run", "--nats-url", "nats://127.0.0.1:1", "--nats-seed-file", path.join(dir, "bridge-nats.seed"), "--worker-url", "http://kez.example", "--signing-seed-file", path.join(dir, "bridge-http.seed")]);
      assert.equal(code, 1);
      assert.match(stdout + stderr, /plain http:\/\/ only to this machine/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
