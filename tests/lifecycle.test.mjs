// Key rotation and handle release through the built worker in workerd with a local D1: every
// rule and code, one winner among concurrent rotations, 410 after a release, the quarantine,
// and the same key taking its handle back; each applied statement is the log's next entry.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { releaseEnvelope, rotationEnvelope } from "../scripts/lib/registration.mjs";
import { errorCode, freshEnvelope, getJson, identity, postRegister } from "./support/kez.mjs";
import { startWorker } from "./support/worker.mjs";

const SERVER = "localhost";
let worker;

before(async () => {
  worker = await startWorker(["--var", "LOOKUP_CACHE_SECONDS:0"]);
});
after(async () => {
  await worker?.stop();
});

const post = (path, body) => getJson(`${worker.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
const rotate = (body) => post("/v1/rotate", body);
const release = (body) => post("/v1/release", body);
const entries = () => worker.query("SELECT count(*) AS n FROM log_entries")[0].n;

/** A registered user: `{ id, handle }`. */
async function registered() {
  const { id, handle, envelope } = freshEnvelope(SERVER);
  assert.equal((await postRegister(worker.url, envelope)).status, 201);
  return { id, handle };
}

describe("key rotation", () => {
  test("signed by both keys, it moves the handle: lookups answer the new key, the old key is 404, and it is logged", async () => {
    const { id, handle } = await registered();
    const next = identity();
    const before = entries();
    const response = await rotate(rotationEnvelope(id, next, { handle, server: SERVER }));
    assert.equal(response.status, 201, JSON.stringify(response.body));
    assert.equal(response.body.primary, next.primary);
    assert.equal(response.body.envelope.kez, "key_rotation");
    assert.equal(response.body.log.index, before, "the next entry");
    assert.equal(entries(), before + 1);
    const found = await getJson(`${worker.url}/v1/u/${handle}`);
    assert.equal(found.body.primary, next.primary);
    assert.deepEqual(found.body.envelope, response.body.envelope);
    assert.equal((await getJson(`${worker.url}/v1/by-primary/${id.primary}`)).status, 404);
    assert.equal((await getJson(`${worker.url}/v1/by-primary/${next.primary}`)).body.handle, handle);
  });

  test("every rule has its code, and a refused rotation writes nothing", async () => {
    const { id, handle } = await registered();
    const next = identity();
    const other = await registered();
    const good = rotationEnvelope(id, next, { handle, server: SERVER });
    const cases = [
      ["not JSON", "{", 400, "invalid_json"],
      ["one signature", { ...good, signatures: [good.signatures[0]] }, 400, "key_mismatch"],
      ["signatures swapped", { ...good, signatures: [good.signatures[1], good.signatures[0]] }, 400, "key_mismatch"],
      ["new key's signature missing its key", { ...good, signatures: [good.signatures[0], { ...good.signatures[1], sig: good.signatures[0].sig }] }, 400, "invalid_signature"],
      ["to the same key", rotationEnvelope(id, id, { handle, server: SERVER }), 400, "same_key"],
      ["stale", rotationEnvelope(id, next, { handle, server: SERVER, createdAt: new Date(Date.now() - 600_000) }), 400, "clock_skew"],
      ["another server", rotationEnvelope(id, next, { handle, server: "kez.lat" }), 400, "wrong_server"],
      ["a key that does not hold the handle", rotationEnvelope(identity(), next, { handle, server: SERVER }), 409, "not_current_key"],
      ["an unknown handle", rotationEnvelope(id, next, { handle: `nobody${Date.now()}`, server: SERVER }), 404, "user_not_found"],
      ["to a key that has a handle", rotationEnvelope(id, other.id, { handle, server: SERVER }), 409, "key_already_registered"],
    ];
    const before = entries();
    for (const [name, body, status, code] of cases) {
      const response = typeof body === "string" ? await getJson(`${worker.url}/v1/rotate`, { method: "POST", body }) : await rotate(body);
      assert.equal(response.status, status, `${name}: ${JSON.stringify(response.body)}`);
      assert.equal(errorCode(response), code, name);
    }
    // The errors that say what the statement must be are worded for a rotation.
    const registrationTag = await rotate({ ...good, kez: "handle_registration" });
    assert.equal(errorCode(registrationTag), "unsupported_envelope");
    assert.match(registrationTag.body.message, /"key_rotation"/);
    const oneSignature = await rotate({ ...good, signatures: [good.signatures[0]] });
    assert.match(oneSignature.body.message, /old key, then by its new key/);
    assert.equal(entries(), before, "nothing appended");
    assert.equal((await getJson(`${worker.url}/v1/u/${handle}`)).body.primary, id.primary, "nothing changed");
    // Replayed after it applied: the old key no longer holds the handle.
    assert.equal((await rotate(good)).status, 201);
    const replay = await rotate(good);
    assert.equal(replay.status, 409);
    assert.equal(errorCode(replay), "not_current_key");
  });

  test("of concurrent rotations of one handle, exactly one wins", async () => {
    const { id, handle } = await registered();
    const before = entries();
    const responses = await Promise.all(Array.from({ length: 8 }, () => rotate(rotationEnvelope(id, identity(), { handle, server: SERVER }))));
    assert.deepEqual(responses.map((r) => r.status).sort(), [201, ...Array(7).fill(409)]);
    assert.ok(responses.filter((r) => r.status === 409).every((r) => errorCode(r) === "not_current_key"));
    assert.equal(entries(), before + 1);
    const winner = responses.find((r) => r.status === 201).body.primary;
    assert.equal((await getJson(`${worker.url}/v1/u/${handle}`)).body.primary, winner);
  });
});

describe("replays", () => {
  /** Posts `envelope` to `path`; asserts it is 409 statement_superseded and wrote nothing. */
  async function superseded(path, envelope, handle, primary) {
    const before = entries();
    const response = await post(path, envelope);
    assert.equal(response.status, 409, JSON.stringify(response.body));
    assert.equal(errorCode(response), "statement_superseded");
    assert.equal(entries(), before, "nothing appended");
    const found = await getJson(`${worker.url}/v1/u/${handle}`);
    assert.equal(found.status, 200, "still held");
    assert.equal(found.body.primary, primary, "by the same key");
  }

  test("a release replayed after its key took the handle back is 409 statement_superseded", async () => {
    const { id, handle } = await registered();
    const released = releaseEnvelope(id, { handle, server: SERVER });
    assert.equal((await release(released)).status, 201);
    assert.equal((await postRegister(worker.url, freshEnvelope(SERVER, { handle, id }).envelope)).status, 201);
    await superseded("/v1/release", released, handle, id.primary);
  });

  test("a rotation replayed after the rotation back is 409 statement_superseded", async () => {
    const { id, handle } = await registered();
    const next = identity();
    const away = rotationEnvelope(id, next, { handle, server: SERVER });
    assert.equal((await rotate(away)).status, 201);
    assert.equal((await rotate(rotationEnvelope(next, id, { handle, server: SERVER }))).status, 201);
    await superseded("/v1/rotate", away, handle, id.primary);
  });

  test("a statement signed in the same millisecond as the one in force is 409 statement_superseded, so none applies twice", async () => {
    // Were both of two statements signed in one millisecond to apply, the first could be
    // replayed after the second, and again, each time logged anew.
    const at = new Date();
    const { id, handle, envelope } = freshEnvelope(SERVER, { edit: (p) => (p.created_at = at.toISOString()) });
    assert.equal((await postRegister(worker.url, envelope)).status, 201);
    await superseded("/v1/release", releaseEnvelope(id, { handle, server: SERVER, createdAt: at }), handle, id.primary);
    const next = identity();
    const later = new Date(at.getTime() + 1);
    assert.equal((await rotate(rotationEnvelope(id, next, { handle, server: SERVER, createdAt: later }))).status, 201);
    await superseded("/v1/rotate", rotationEnvelope(next, id, { handle, server: SERVER, createdAt: later }), handle, next.primary);
    // A millisecond later, it applies.
    assert.equal((await rotate(rotationEnvelope(next, id, { handle, server: SERVER, createdAt: new Date(later.getTime() + 1) }))).status, 201);
    // A registration signed in the release's millisecond does not take the handle back.
    const releasedAt = new Date(later.getTime() + 2);
    assert.equal((await release(releaseEnvelope(id, { handle, server: SERVER, createdAt: releasedAt }))).status, 201);
    const before = entries();
    const back = await postRegister(worker.url, freshEnvelope(SERVER, { handle, id, edit: (p) => (p.created_at = releasedAt.toISOString()) }).envelope);
    assert.equal(errorCode(back), "statement_superseded");
    assert.equal(entries(), before, "nothing appended");
    assert.equal((await getJson(`${worker.url}/v1/u/${handle}`)).status, 410, "still released");
  });

  test("a statement signed before the registration in force is 409 statement_superseded", async () => {
    const { id, handle } = await registered();
    const earlier = { handle, server: SERVER, createdAt: new Date(Date.now() - 60_000) };
    await superseded("/v1/rotate", rotationEnvelope(id, identity(), earlier), handle, id.primary);
    await superseded("/v1/release", releaseEnvelope(id, earlier), handle, id.primary);
  });
});

describe("replayed registrations", () => {
  /** A registration signed a second ago, so that every statement signed after it is later. */
  const signedBefore = (options = {}) => freshEnvelope(SERVER, { ...options, edit: (p) => (p.created_at = new Date(Date.now() - 1000).toISOString()) });

  /** Posts `envelope` to `url`; asserts it is 409 statement_superseded, wrote nothing, and `handle` is still released. */
  async function refused(url, envelope, handle, count) {
    const before = count();
    const replay = await postRegister(url, envelope);
    assert.equal(replay.status, 409, JSON.stringify(replay.body));
    assert.equal(errorCode(replay), "statement_superseded");
    assert.equal(count(), before, "nothing appended");
    assert.equal((await getJson(`${url}/v1/u/${handle}`)).status, 410, "still released");
  }

  test("a registration replayed after its key released the handle is 409 statement_superseded", async () => {
    const { id, handle, envelope } = signedBefore();
    assert.equal((await postRegister(worker.url, envelope)).status, 201);
    assert.equal((await release(releaseEnvelope(id, { handle, server: SERVER }))).status, 201);
    await refused(worker.url, envelope, handle, entries);
    // Signed after the release, the same key takes its handle back.
    assert.equal((await postRegister(worker.url, freshEnvelope(SERVER, { handle, id }).envelope)).status, 201);
  });

  test("a registration by the same key signed before its release, sent after it, is 409 statement_superseded", async () => {
    const { id, handle, envelope } = freshEnvelope(SERVER);
    assert.equal((await postRegister(worker.url, envelope)).status, 201);
    const early = signedBefore({ handle, id });
    assert.equal((await release(releaseEnvelope(id, { handle, server: SERVER }))).status, 201);
    await refused(worker.url, early.envelope, handle, entries);
  });
});

describe("handle release", () => {
  test("lookups answer 410 with the signed release; the handle is quarantined from other keys; its key takes it back", async () => {
    const { id, handle } = await registered();
    const before = entries();
    const released = await release(releaseEnvelope(id, { handle, server: SERVER }));
    assert.equal(released.status, 201, JSON.stringify(released.body));
    assert.equal(released.body.log.index, before);
    for (const path of [`/v1/u/${handle}`, `/v1/by-primary/${id.primary}`, `/.well-known/webfinger?resource=acct:${handle}@${SERVER}`]) {
      const gone = await getJson(`${worker.url}${path}`);
      assert.equal(gone.status, 410, path);
      assert.equal(gone.body.error, "handle_released");
      assert.equal(gone.body.envelope.kez, "handle_release");
      assert.equal(gone.body.envelope.payload.primary, id.primary);
      assert.equal(gone.body.log.index, before);
    }
    // Released again, or rotated: 409 handle_released.
    assert.equal(errorCode(await release(releaseEnvelope(id, { handle, server: SERVER }))), "handle_released");
    assert.equal(errorCode(await rotate(rotationEnvelope(id, identity(), { handle, server: SERVER }))), "handle_released");
    // Another key: 409 handle_quarantined, nothing written.
    const stranger = await postRegister(worker.url, freshEnvelope(SERVER, { handle }).envelope);
    assert.equal(stranger.status, 409);
    assert.equal(errorCode(stranger), "handle_quarantined");
    assert.equal(entries(), before + 1);
    // The same key takes it back.
    const back = await postRegister(worker.url, freshEnvelope(SERVER, { handle, id }).envelope);
    assert.equal(back.status, 201, JSON.stringify(back.body));
    assert.equal((await getJson(`${worker.url}/v1/u/${handle}`)).body.primary, id.primary);
  });

  test("a handle reserved since it was registered stays its holder's to rotate and release; a stranger's is refused by the database", async () => {
    // As if `adm1n` had been registered before lookalikes of reserved names were refused.
    const { id, handle } = await registered();
    worker.tamper("UPDATE registrations SET handle = 'adm1n', skeleton = 'admin' WHERE handle = ?", handle);
    const stranger = await release(releaseEnvelope(identity(), { handle: "adm1n", server: SERVER }));
    assert.equal(stranger.status, 409, JSON.stringify(stranger.body));
    assert.equal(errorCode(stranger), "not_current_key");
    const next = identity();
    const rotated = await rotate(rotationEnvelope(id, next, { handle: "adm1n", server: SERVER }));
    assert.equal(rotated.status, 201, JSON.stringify(rotated.body));
    assert.equal(rotated.body.primary, next.primary);
    const released = await release(releaseEnvelope(next, { handle: "adm1n", server: SERVER }));
    assert.equal(released.status, 201, JSON.stringify(released.body));
    // Nobody holds `admin`: a release of it is refused by the database, not by the name.
    assert.equal(errorCode(await release(releaseEnvelope(identity(), { handle: "admin", server: SERVER }))), "user_not_found");
  });

  test("a handle registered before its exact name was reserved is still found by lookups and WebFinger", async () => {
    const { id, handle } = await registered();
    // As if `support` had been registered before it was reserved.
    worker.tamper("UPDATE registrations SET handle = 'support', skeleton = 'support' WHERE handle = ?", handle);
    for (const path of ["/v1/u/support", "/v1/u/Support", `/v1/by-primary/${id.primary}`]) {
      const found = await getJson(`${worker.url}${path}`);
      assert.equal(found.status, 200, `${path}: ${JSON.stringify(found.body)}`);
      assert.equal(found.body.handle, "support", path);
      assert.equal(found.body.primary, id.primary, path);
    }
    const webfinger = await getJson(`${worker.url}/.well-known/webfinger?resource=${encodeURIComponent(`acct:support@${SERVER}`)}`);
    assert.equal(webfinger.status, 200, JSON.stringify(webfinger.body));
    assert.equal(webfinger.body.subject, `acct:support@${SERVER}`);
    // A reserved name nobody holds is still 404.
    assert.equal(errorCode(await getJson(`${worker.url}/v1/u/admin`)), "user_not_found");
  });

  test("a release by a key that does not hold the handle is 409 not_current_key", async () => {
    const { handle } = await registered();
    const response = await release(releaseEnvelope(identity(), { handle, server: SERVER }));
    assert.equal(response.status, 409);
    assert.equal(errorCode(response), "not_current_key");
  });
});

describe("after the quarantine", () => {
  let short;
  before(async () => {
    short = await startWorker(["--var", "RELEASE_QUARANTINE_DAYS:0", "--var", "LOOKUP_CACHE_SECONDS:0"]);
  });
  after(async () => {
    await short?.stop();
  });

  test("another key may register a released handle", async () => {
    const { id, handle, envelope } = freshEnvelope(SERVER);
    assert.equal((await postRegister(short.url, envelope)).status, 201);
    assert.equal((await getJson(`${short.url}/v1/release`, { method: "POST", body: JSON.stringify(releaseEnvelope(id, { handle, server: SERVER })) })).status, 201);
    const next = freshEnvelope(SERVER, { handle });
    const taken = await postRegister(short.url, next.envelope);
    assert.equal(taken.status, 201, JSON.stringify(taken.body));
    assert.equal((await getJson(`${short.url}/v1/u/${handle}`)).body.primary, next.id.primary);
    assert.equal(short.query("SELECT count(*) AS n FROM log_entries")[0].n, 3, "registration, release, registration");
  });

  test("but not with a registration signed before the release", async () => {
    const { id, handle, envelope } = freshEnvelope(SERVER);
    assert.equal((await postRegister(short.url, envelope)).status, 201);
    const early = freshEnvelope(SERVER, { handle, edit: (p) => (p.created_at = new Date(Date.now() - 1000).toISOString()) });
    assert.equal((await getJson(`${short.url}/v1/release`, { method: "POST", body: JSON.stringify(releaseEnvelope(id, { handle, server: SERVER })) })).status, 201);
    const count = () => short.query("SELECT count(*) AS n FROM log_entries")[0].n;
    const before = count();
    const late = await postRegister(short.url, early.envelope);
    assert.equal(late.status, 409, JSON.stringify(late.body));
    assert.equal(errorCode(late), "statement_superseded");
    assert.equal(count(), before, "nothing appended");
    assert.equal((await postRegister(short.url, freshEnvelope(SERVER, { handle, id: early.id }).envelope)).status, 201, "signed after it, it applies");
  });
});
