// Write rate limits, with the worker as wrangler.toml configures it (Workers Rate Limiting
// bindings, which wrangler dev runs locally): 5 registrations a minute per client address
// (CF-Connecting-IP, which Cloudflare sets and wrangler dev passes on; an IPv6 address by its
// /64) and per key, 5 rotations and releases a minute per client address.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { releaseEnvelope, rotationEnvelope } from "../scripts/lib/registration.mjs";
import { errorCode, freshEnvelope, getJson, identity, postRegister, registrationPayload, signEnvelope } from "./support/kez.mjs";
import { startWorker } from "./support/worker.mjs";

let worker;
const from = (address) => ({ "content-type": "application/json", "cf-connecting-ip": address });

before(async () => {
  worker = await startWorker([], undefined, { rateLimits: true });
});

after(async () => {
  await worker?.stop();
});

/**
 * The limiter counts in fixed one-minute windows (wrangler dev's, like Cloudflare's, start on
 * the minute): a burst started in a window's last seconds could be split across two. Starts a
 * burst only with at least 40 s of its window left.
 */
async function windowWithRoom() {
  while (Date.now() % 60_000 > 45_000) await new Promise((r) => setTimeout(r, 60_000 - (Date.now() % 60_000) + 50));
}

function assertLimited(response) {
  assert.equal(response.status, 429, JSON.stringify(response.body));
  assert.equal(errorCode(response), "rate_limited");
  assert.equal(response.headers.get("retry-after"), "60");
}

async function assertNothingStored(handle, primary) {
  const rows = worker.query("SELECT count(*) AS n FROM registrations WHERE primary_key = ? OR handle = ?", primary, handle);
  assert.equal(rows[0].n, 0);
  assert.equal((await getJson(`${worker.url}/v1/u/${handle}`)).status, 404);
}

describe("registration rate limits", () => {
  test("an address gets 5 registrations a minute; the 6th is 429 with Retry-After, nothing written; other addresses are not affected", async () => {
    await windowWithRoom();
    for (let i = 0; i < 5; i++) assert.equal((await postRegister(worker.url, freshEnvelope("localhost").envelope, from("198.51.100.7"))).status, 201);
    const sixth = freshEnvelope("localhost");
    assertLimited(await postRegister(worker.url, sixth.envelope, from("198.51.100.7")));
    await assertNothingStored(sixth.handle, sixth.id.primary);
    // Refused before its body was read: even garbage from that address is 429, not 400.
    assertLimited(await postRegister(worker.url, "{", from("198.51.100.7")));
    assert.equal((await postRegister(worker.url, sixth.envelope, from("198.51.100.8"))).status, 201);
  });

  test("an IPv6 /64 is one address (a host holds the block whole): its 6th registration a minute is 429, whatever address in it sends it", async () => {
    await windowWithRoom();
    for (let i = 1; i <= 5; i++) assert.equal((await postRegister(worker.url, freshEnvelope("localhost").envelope, from(`2001:db8:7:7:${i}::${i}`))).status, 201);
    const sixth = freshEnvelope("localhost");
    assertLimited(await postRegister(worker.url, sixth.envelope, from("2001:0db8:0007:0007:ffff:ffff:ffff:ffff")));
    await assertNothingStored(sixth.handle, sixth.id.primary);
    // The next /64 is another address.
    assert.equal((await postRegister(worker.url, sixth.envelope, from("2001:db8:7:8::1"))).status, 201);
  });

  test("an IPv4-mapped IPv6 address counts as the IPv4 address", async () => {
    await windowWithRoom();
    for (let i = 0; i < 5; i++) assert.equal((await postRegister(worker.url, freshEnvelope("localhost").envelope, from("198.51.100.77"))).status, 201);
    assertLimited(await postRegister(worker.url, freshEnvelope("localhost").envelope, from("::ffff:198.51.100.77")));
  });

  test("a key gets 5 registrations a minute that reach the write, from any addresses; ones the database refuses count", async () => {
    const holder = freshEnvelope("localhost");
    assert.equal((await postRegister(worker.url, holder.envelope, from("203.0.113.200"))).status, 201);
    const id = identity();
    await windowWithRoom();
    for (let i = 0; i < 5; i++) {
      // A taken handle: signed and checked, then refused by the write, and counted.
      const taken = freshEnvelope("localhost", { id, handle: holder.handle });
      assert.equal(errorCode(await postRegister(worker.url, taken.envelope, from(`203.0.113.${i + 1}`))), "handle_taken");
    }
    const good = freshEnvelope("localhost", { id });
    assertLimited(await postRegister(worker.url, good.envelope, from("203.0.113.99")));
    await assertNothingStored(good.handle, id.primary);
  });

  test("a stranger cannot use up a key's limit: envelopes naming it, forged, failing a check or replayed stale, do not count", async () => {
    const victim = identity();
    const stranger = identity();
    await windowWithRoom();
    const attempts = [];
    for (let i = 0; i < 6; i++) {
      // Signed by the stranger, claiming the victim's key.
      const forged = signEnvelope(stranger, registrationPayload({ handle: `forged${i}x`, primary: victim.primary, server: "localhost" }));
      forged.signature.key = victim.primary;
      attempts.push([forged, "invalid_signature"]);
      // The victim's own signature, on a registration too old to take (as one read from the log would be).
      const stale = freshEnvelope("localhost", { id: victim, edit: (p) => (p.created_at = new Date(Date.now() - 3_600_000).toISOString()) });
      attempts.push([stale.envelope, "clock_skew"]);
    }
    for (const [i, [envelope, code]] of attempts.entries()) assert.equal(errorCode(await postRegister(worker.url, envelope, from(`192.0.2.${i + 1}`))), code);
    const own = freshEnvelope("localhost", { id: victim });
    assert.equal((await postRegister(worker.url, own.envelope, from("192.0.2.99"))).status, 201, "the victim's own registration is not limited");
  });
});

describe("rotation and release rate limits", () => {
  const post = (path, body, address) => getJson(`${worker.url}${path}`, { method: "POST", headers: from(address), body: typeof body === "string" ? body : JSON.stringify(body) });

  test("an address gets 5 rotations and releases a minute, counted before the body is read; the 6th is 429, nothing written", async () => {
    const user = freshEnvelope("localhost");
    assert.equal((await postRegister(worker.url, user.envelope, from("198.51.100.70"))).status, 201);
    await windowWithRoom();
    // Four statements the server refuses and one it applies: all five count.
    const stranger = identity();
    for (let i = 0; i < 2; i++) assert.equal(errorCode(await post("/v1/rotate", "{", "198.51.100.71")), "invalid_json");
    assert.equal(errorCode(await post("/v1/release", releaseEnvelope(stranger, { handle: user.handle, server: "localhost" }), "198.51.100.71")), "not_current_key");
    assert.equal(errorCode(await post("/v1/rotate", rotationEnvelope(stranger, identity(), { handle: user.handle, server: "localhost" }), "198.51.100.71")), "not_current_key");
    const next = identity();
    assert.equal((await post("/v1/rotate", rotationEnvelope(user.id, next, { handle: user.handle, server: "localhost" }), "198.51.100.71")).status, 201);
    const release = releaseEnvelope(next, { handle: user.handle, server: "localhost" });
    assertLimited(await post("/v1/release", release, "198.51.100.71"));
    // Refused before its body was read: garbage is 429 too, not 400.
    assertLimited(await post("/v1/rotate", "{", "198.51.100.71"));
    const now = await getJson(`${worker.url}/v1/u/${user.handle}`);
    assert.equal(now.status, 200, "the release was not written");
    assert.equal(now.body.primary, next.primary);
    // Another address is not affected.
    assert.equal((await post("/v1/release", release, "198.51.100.72")).status, 201);
  });
});
