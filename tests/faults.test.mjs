// Faults the worker must answer cleanly, in workerd with a real local D1: a database without
// its schema (every query fails, as when D1 is down) is 503 `storage_unavailable` with
// Retry-After, never a 500, and nothing is written.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { errorCode, freshEnvelope, getJson, postRegister } from "./support/kez.mjs";
import { startWorker } from "./support/worker.mjs";

let broken;

before(async () => {
  broken = await startWorker([], undefined, { migrate: false });
});

after(async () => {
  await broken?.stop();
});

describe("when D1 fails", () => {
  const assertUnavailable = (response) => {
    assert.equal(response.status, 503, JSON.stringify(response.body));
    assert.equal(errorCode(response), "storage_unavailable");
    assert.equal(response.headers.get("retry-after"), "5");
    assert.match(response.body.message, /Try again in 5 seconds/);
    // (Case-sensitive: the random incident reference may hold "d1".)
    assert.doesNotMatch(response.body.message, /no such table|D1_ERROR|SQLITE/, "details stay in the log");
  };

  test("lookups by handle, by key and through WebFinger are 503 storage_unavailable", async () => {
    const { id } = freshEnvelope("localhost");
    assertUnavailable(await getJson(`${broken.url}/v1/u/alice`));
    assertUnavailable(await getJson(`${broken.url}/v1/by-primary/${encodeURIComponent(id.primary)}`));
    assertUnavailable(await getJson(`${broken.url}/.well-known/webfinger?resource=acct:alice@localhost`));
  });

  test("a registration is 503 storage_unavailable, and nothing is written", async () => {
    const { envelope } = freshEnvelope("localhost");
    assertUnavailable(await postRegister(broken.url, envelope));
    // The same envelope again: still unavailable, not "taken" (no half-written state).
    assertUnavailable(await postRegister(broken.url, envelope));
  });

  test("bad input is still judged before storage is touched, and healthz does not need it", async () => {
    assert.equal(errorCode(await getJson(`${broken.url}/v1/u/NOT!valid`)), "invalid_handle");
    assert.equal(errorCode(await postRegister(broken.url, "{")), "invalid_json");
    assert.equal((await getJson(`${broken.url}/v1/healthz`)).status, 200);
  });
});
