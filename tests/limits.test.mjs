// Registration rate limits, with the worker as wrangler.toml configures it (Workers Rate
// Limiting bindings, which wrangler dev runs locally): 5 registrations a minute per client
// address (CF-Connecting-IP, which Cloudflare sets and wrangler dev passes on) and per key.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { errorCode, freshEnvelope, getJson, identity, postRegister } from "./support/kez.mjs";
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

  test("a key gets 5 attempts a minute, from any addresses; failed ones count", async () => {
    const id = identity();
    await windowWithRoom();
    for (let i = 0; i < 5; i++) {
      // Reserved handles: each attempt fails, and counts.
      const bad = freshEnvelope("localhost", { id, handle: "admin" });
      assert.equal(errorCode(await postRegister(worker.url, bad.envelope, from(`203.0.113.${i + 1}`))), "handle_reserved");
    }
    const good = freshEnvelope("localhost", { id });
    assertLimited(await postRegister(worker.url, good.envelope, from("203.0.113.99")));
    await assertNothingStored(good.handle, id.primary);
  });
});
