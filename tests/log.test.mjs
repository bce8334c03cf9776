// The transparency log through the built worker in workerd with a local D1: every accepted
// registration is an entry, each 201 and lookup carries a proof against a signed checkpoint,
// tiles serve the log, and an independent auditor (tests/audit_log.py, Python, no project
// code) verifies all of it, and catches an operator who edits the log behind the worker.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { errorCode, freshEnvelope, getJson, postRegister, verifierKeyOf } from "./support/kez.mjs";
import { startWorker } from "./support/worker.mjs";

const ROOT = path.resolve(import.meta.dirname, "..");
const SERVER = "localhost";
const PYTHON = process.env.KEZ_VECTOR_PYTHON ?? "python3";
const run = promisify(execFile);
let worker;
let scratch;

before(async () => {
  worker = await startWorker();
  scratch = mkdtempSync(path.join(tmpdir(), "kez-log-"));
});
after(async () => {
  await worker?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

/**
 * Registers someone else, then looks `handle` (the registration just before, left unsigned) up
 * through that registration's bookmark: its step signed both.
 */
async function assertSignedByNextRegistration(handle) {
  const next = await postRegister(worker.url, freshEnvelope(SERVER).envelope);
  assert.equal(next.status, 201);
  const signed = await getJson(`${worker.url}/v1/u/${handle}`, { headers: { "x-kez-bookmark": next.headers.get("x-kez-bookmark") } });
  assert.equal(signed.status, 200);
  assert.equal(signed.body.log.index, next.body.log.index - 1, "signed by the next registration's step");
  assert.equal(signed.body.log.checkpoint, next.body.log.checkpoint);
}

/** Runs the auditor; resolves to its summary, or rejects with its output. */
async function audit(...args) {
  try {
    const { stdout } = await run(PYTHON, [path.join(ROOT, "tests/audit_log.py"), worker.url, ...args]);
    return JSON.parse(stdout);
  } catch (e) {
    throw new Error(`audit failed: ${e.stdout}${e.stderr}`);
  }
}

/** The size line of a signed checkpoint. */
const sizeOf = (note) => Number(note.split("\n")[1]);

async function register() {
  const { id, handle, envelope } = freshEnvelope(SERVER);
  const response = await postRegister(worker.url, envelope);
  assert.equal(response.status, 201, JSON.stringify(response.body));
  return { id, handle, response };
}

describe("the log", () => {
  const users = [];

  test("healthz publishes the verifier key of the configured seed; the empty log's checkpoint is signed", async () => {
    const health = await getJson(`${worker.url}/v1/healthz`);
    assert.deepEqual(health.body.log, { origin: "localhost/log", verifier_key: verifierKeyOf(worker.logSeed, "localhost/log"), checkpoint: "/log/checkpoint" });
    const response = await fetch(`${worker.url}/log/checkpoint`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.equal(response.headers.get("cache-control"), "no-cache");
    assert.equal(response.headers.get("access-control-allow-origin"), "*");
    const note = await response.text();
    assert.equal(note.split("\n").slice(0, 3).join("\n"), `localhost/log\n0\n${createHash("sha256").digest("base64")}`);
    const summary = await audit("--save", path.join(scratch, "empty"));
    assert.equal(summary.size, 0);
  });

  test("each registration is the next entry, and its 201 proves it is in a signed checkpoint", async () => {
    for (let i = 0; i < 5; i++) users.push(await register());
    assert.deepEqual(users.map((u) => u.response.body.log.index), [0, 1, 2, 3, 4]);
    for (const [i, { response }] of users.entries()) {
      assert.equal(sizeOf(response.body.log.checkpoint), i + 1, "the checkpoint right after the write");
      assert.ok(Array.isArray(response.body.log.inclusion_proof));
    }
    const rows = worker.query("SELECT r.handle, e.entry FROM registrations r JOIN log_entries e ON e.idx = r.log_index ORDER BY e.idx");
    assert.deepEqual(rows.map((r) => r.handle), users.map((u) => u.handle));
    for (const row of rows) assert.equal(row.entry, worker.query("SELECT envelope FROM registrations WHERE handle = ?", row.handle)[0].envelope);
  });

  test("lookups by handle and by key carry the newest proof; the auditor verifies them and the whole log", async () => {
    // Through the newest write's bookmark: fresh from D1, not from a cache.
    const headers = { "x-kez-bookmark": users.at(-1).response.headers.get("x-kez-bookmark") };
    for (const { handle, id } of users) {
      const byHandle = await getJson(`${worker.url}/v1/u/${handle}`, { headers });
      const byKey = await getJson(`${worker.url}/v1/by-primary/${id.primary}`, { headers });
      assert.equal(byHandle.status, 200);
      assert.deepEqual(byKey.body.log, byHandle.body.log);
      assert.equal(sizeOf(byHandle.body.log.checkpoint), users.length);
    }
    const summary = await audit("--since", path.join(scratch, "empty"), "--save", path.join(scratch, "five"), ...users.flatMap((u) => ["--handle", u.handle]));
    assert.equal(summary.size, 5);
    assert.equal(summary.consistent_from, 0);
    assert.deepEqual(summary.lookups.map((l) => l.index), [0, 1, 2, 3, 4]);
  });

  test("concurrent registrations get distinct, consecutive entries and one tree; full tiles are immutable", async () => {
    const before = users.length;
    const batch = [];
    for (let round = 0; round < 6; round++) batch.push(...(await Promise.all(Array.from({ length: 50 }, () => register()))));
    users.push(...batch);
    const indexes = batch.map((u) => u.response.body.log.index).sort((a, b) => a - b);
    assert.deepEqual(indexes, Array.from({ length: 300 }, (_, i) => before + i));
    const note = await (await fetch(`${worker.url}/log/checkpoint`)).text();
    assert.equal(sizeOf(note), users.length);
    // Every 201 of the batch carries a proof the auditor checks against the whole log (most
    // were read back in the batch of the step that signed them).
    const answers = path.join(scratch, "answers.json");
    writeFileSync(answers, JSON.stringify(batch.map((u) => u.response.body)));
    const summary = await audit("--since", path.join(scratch, "five"), "--handle", users[0].handle, "--handle", users.at(-1).handle, "--answers", answers);
    assert.equal(summary.size, users.length);
    assert.equal(summary.consistent_from, 5);
    assert.deepEqual(summary.answers.map((a) => a.index), batch.map((u) => u.response.body.log.index));
    assert.ok(summary.answers.every((a) => a.checkpoint_size > a.index));

    const full = await fetch(`${worker.url}/log/tile/0/000`);
    assert.equal(full.status, 200);
    assert.equal(full.headers.get("cache-control"), "public, max-age=31536000, immutable");
    assert.equal(full.headers.get("content-type"), "application/octet-stream");
    assert.equal((await full.arrayBuffer()).byteLength, 256 * 32);
    const partial = await fetch(`${worker.url}/log/tile/0/001.p/${users.length - 256}`);
    assert.equal(partial.status, 200);
    assert.equal(partial.headers.get("cache-control"), "public, max-age=60");
    const bundle = await fetch(`${worker.url}/log/tile/entries/000`);
    assert.equal(bundle.status, 200);
    const bytes = new Uint8Array(await bundle.arrayBuffer());
    const first = worker.query("SELECT entry FROM log_entries WHERE idx = 0")[0].entry;
    assert.equal((bytes[0] << 8) | bytes[1], Buffer.byteLength(first));
    assert.equal(Buffer.from(bytes.subarray(2, 2 + Buffer.byteLength(first))).toString(), first);
    assert.equal((await fetch(`${worker.url}/log/tile/1/000.p/1`)).status, 200, "the level-1 hash of the first full tile");
    assert.equal((await fetch(`${worker.url}/log/tile/entries/001.p/${users.length - 256}`)).status, 200, "the right edge's bundle");
  });

  test("tiles outside the tree and other spellings are 404 tile_not_found, never cached", async () => {
    const size = users.length;
    // An entry written but not yet in a signed tree (as between a write and its log step).
    worker.tamper("INSERT INTO log_entries (idx, entry) VALUES (?, 'unsigned')", size);
    const outside = [
      "tile/0/001", "tile/0/005", "tile/entries/001", "tile/2/000.p/1", "tile/0/1", "tile/0/000.p/0", "tile/0/000.p/256", "tile/entries/x000/000", "tile/-1/000",
      // Wider than the tree at its right edge; the bundle that would hold the unsigned entry.
      `tile/0/001.p/${size - 256 + 1}`, `tile/entries/001.p/${size - 256 + 1}`,
      // Indexes so large that counting their first item overflows: 2^56 bundles, 2^48 tiles.
      "tile/entries/x072/x057/x594/x037/x927/936", "tile/0/x281/x474/x976/x710/656.p/1",
    ];
    try {
      for (const tile of outside) {
        const response = await getJson(`${worker.url}/log/${tile}`);
        assert.equal(response.status, 404, tile);
        assert.equal(errorCode(response), "tile_not_found");
        assert.equal(response.headers.get("cache-control"), "no-store", tile);
      }
      // Narrower partials are the tiles of older trees, which clients with older checkpoints ask for.
      for (const tile of [`tile/0/001.p/${size - 256 - 1}`, "tile/0/000.p/5", "tile/entries/000.p/5", `tile/entries/001.p/${size - 256}`]) {
        assert.equal((await fetch(`${worker.url}/log/${tile}`)).status, 200, tile);
      }
    } finally {
      worker.tamper("DELETE FROM log_entries WHERE idx = ?", size);
    }
    assert.equal((await getJson(`${worker.url}/log/`)).status, 404);
    assert.equal((await getJson(`${worker.url}/log/checkpoint`, { method: "POST" })).status, 405);
  });

  test("a refused registration writes no entry", async () => {
    const size = worker.query("SELECT count(*) AS n FROM log_entries")[0].n;
    const { envelope: again } = freshEnvelope(SERVER, { handle: users[0].handle });
    const conflict = await postRegister(worker.url, again);
    assert.equal(conflict.status, 409);
    assert.equal(worker.query("SELECT count(*) AS n FROM log_entries")[0].n, size);
  });

  test("a registration whose log step fails is still answered 201 (without a proof), and the next step signs it", async () => {
    // The step's batch fails (its update of the tree's state), after the registration's own
    // batch has committed.
    worker.tamper("CREATE TRIGGER refuse_steps BEFORE UPDATE ON log_state BEGIN SELECT RAISE(ABORT, 'step refused'); END");
    let first;
    try {
      first = freshEnvelope(SERVER);
      const response = await postRegister(worker.url, first.envelope);
      assert.equal(response.status, 201, JSON.stringify(response.body));
      assert.equal(response.body.handle, first.handle);
      assert.equal(response.body.log, null, "not signed yet");
      const bookmark = { "x-kez-bookmark": response.headers.get("x-kez-bookmark") };
      const found = await getJson(`${worker.url}/v1/u/${first.handle}`, { headers: bookmark });
      assert.equal(found.status, 200);
      assert.equal(found.body.log, null);
    } finally {
      worker.tamper("DROP TRIGGER refuse_steps");
    }
    await assertSignedByNextRegistration(first.handle);
  });

  test("a registration whose entry another isolate's step signed first still gets its proof", async () => {
    // Another isolate's step wins the race for the state: the trigger writes the step's state
    // itself, once, so this isolate's own update changes no row, and the state its step's
    // batch reads after it covers the entry all the same.
    worker.tamper("CREATE TABLE other_isolate_wins (once INTEGER)");
    worker.tamper("INSERT INTO other_isolate_wins VALUES (1)");
    worker.tamper(`CREATE TRIGGER other_isolate BEFORE UPDATE ON log_state WHEN (SELECT count(*) FROM other_isolate_wins) > 0 BEGIN
      DELETE FROM other_isolate_wins;
      UPDATE log_state SET size = NEW.size, edge = NEW.edge, checkpoint = NEW.checkpoint WHERE id = 1;
      SELECT RAISE(IGNORE);
    END`);
    try {
      const { handle, envelope } = freshEnvelope(SERVER);
      const response = await postRegister(worker.url, envelope);
      assert.equal(response.status, 201, JSON.stringify(response.body));
      assert.equal(worker.query("SELECT count(*) AS n FROM other_isolate_wins")[0].n, 0, "the other isolate's step ran");
      assert.equal(response.body.handle, handle);
      const note = await (await fetch(`${worker.url}/log/checkpoint`)).text();
      assert.ok(response.body.log, "the 201 carries its proof");
      assert.equal(response.body.log.checkpoint, note);
      assert.equal(sizeOf(note), response.body.log.index + 1);
    } finally {
      worker.tamper("DROP TRIGGER other_isolate");
      worker.tamper("DROP TABLE other_isolate_wins");
    }
  });

  test("a step whose state write does not take is made again; after 8 such steps the entry waits for the next registration's", async () => {
    // The trigger drops the state write of the next `remaining` steps: the registration reads
    // the state again and steps again, as it does when over 256 entries wait before it.
    worker.tamper("CREATE TABLE skip_steps (remaining INTEGER)");
    worker.tamper("INSERT INTO skip_steps VALUES (3)");
    worker.tamper(`CREATE TRIGGER skip_step BEFORE UPDATE ON log_state WHEN (SELECT remaining FROM skip_steps) > 0 BEGIN
      UPDATE skip_steps SET remaining = remaining - 1;
      SELECT RAISE(IGNORE);
    END`);
    let unsigned;
    try {
      const retried = await postRegister(worker.url, freshEnvelope(SERVER).envelope);
      assert.equal(retried.status, 201, JSON.stringify(retried.body));
      assert.equal(worker.query("SELECT remaining FROM skip_steps")[0].remaining, 0, "three steps were dropped");
      assert.ok(retried.body.log, "the fourth step signed it: the 201 carries its proof");
      assert.equal(sizeOf(retried.body.log.checkpoint), retried.body.log.index + 1);

      worker.tamper("UPDATE skip_steps SET remaining = 8");
      unsigned = freshEnvelope(SERVER);
      const gaveUp = await postRegister(worker.url, unsigned.envelope);
      assert.equal(gaveUp.status, 201, JSON.stringify(gaveUp.body));
      assert.equal(gaveUp.body.log, null, "eight steps dropped: not signed yet");
      for (let i = 0; i < 100 && !/not signed after 8 steps/.test(worker.log()); i++) await new Promise((r) => setTimeout(r, 100));
      assert.match(worker.log(), /log: entry \d+ not signed after 8 steps/);
    } finally {
      worker.tamper("DROP TRIGGER skip_step");
      worker.tamper("DROP TABLE skip_steps");
    }
    await assertSignedByNextRegistration(unsigned.handle);
  });

  test("a registration answered 503 wrote nothing, even when only the read of its row failed", async () => {
    // Lookups read log_nodes, the registration's own statements do not.
    worker.tamper("ALTER TABLE log_nodes RENAME TO log_nodes_away");
    const count = (table) => worker.query(`SELECT count(*) AS n FROM ${table}`)[0].n;
    const before = [count("registrations"), count("log_entries")];
    try {
      const { envelope } = freshEnvelope(SERVER);
      const response = await postRegister(worker.url, envelope);
      assert.equal(response.status, 503, JSON.stringify(response.body));
      assert.equal(errorCode(response), "storage_unavailable");
      assert.match(response.body.message, /Try again in 5 seconds/);
      assert.deepEqual([count("registrations"), count("log_entries")], before, "nothing was written");
    } finally {
      worker.tamper("ALTER TABLE log_nodes_away RENAME TO log_nodes");
    }
    assert.equal((await postRegister(worker.url, freshEnvelope(SERVER).envelope)).status, 201, "and the next one is written");
  });

  test("an entry edited behind the worker fails the audit", async () => {
    const changes = worker.tamper("UPDATE log_entries SET entry = replace(entry, 'handle_registration', 'handle_registratioN') WHERE idx = 3");
    assert.equal(changes.changes, 1);
    await assert.rejects(audit(), /do not match the entries|signed root/);
  });
});

describe("without a log key", () => {
  let bare;
  before(async () => {
    bare = await startWorker([], undefined, { logSeed: "" });
  });
  after(async () => {
    await bare?.stop();
  });

  test("registrations are refused with 503 log_not_configured and nothing is written; lookups still answer", async () => {
    const { envelope, handle } = freshEnvelope(SERVER);
    const response = await postRegister(bare.url, envelope);
    assert.equal(response.status, 503);
    assert.equal(errorCode(response), "log_not_configured");
    assert.equal(bare.query("SELECT count(*) AS n FROM registrations")[0].n, 0);
    assert.equal(bare.query("SELECT count(*) AS n FROM log_entries")[0].n, 0);
    assert.equal((await getJson(`${bare.url}/v1/u/${handle}`)).status, 404);
    assert.equal((await getJson(`${bare.url}/v1/healthz`)).body.log, null);
    assert.equal((await getJson(`${bare.url}/log/checkpoint`)).status, 503);
  });
});

test("the migration makes earlier registrations the log's first entries, in the order they were made", () => {
  const db = new DatabaseSync(":memory:");
  const migration = (name) => readFileSync(path.join(ROOT, "migrations", name), "utf8");
  db.exec(migration("0001_registrations.sql"));
  db.exec(migration("0002_handle_skeletons.sql"));
  const insert = db.prepare("INSERT INTO registrations (handle, primary_key, registered_at, envelope, skeleton) VALUES (?, ?, ?, ?, ?)");
  insert.run("bob", `ed25519:${"b".repeat(64)}`, "2026-01-02T00:00:00Z", '{"who":"bob"}', "bob");
  insert.run("alice", `ed25519:${"a".repeat(64)}`, "2026-01-01T00:00:00Z", '{"who":"alice"}', "alice");
  insert.run("carol", `ed25519:${"c".repeat(64)}`, "2026-01-02T00:00:00Z", '{"who":"carol"}', "carol");
  db.exec(migration("0003_log.sql"));
  const rows = db.prepare("SELECT r.handle, r.log_index, e.entry FROM registrations r JOIN log_entries e ON e.idx = r.log_index ORDER BY e.idx").all();
  assert.deepEqual(rows.map((r) => [r.handle, r.log_index, r.entry]), [["alice", 0, '{"who":"alice"}'], ["bob", 1, '{"who":"bob"}'], ["carol", 2, '{"who":"carol"}']]);
  assert.deepEqual({ ...db.prepare("SELECT size, edge, checkpoint FROM log_state").get() }, { size: 0, edge: "", checkpoint: null });
});
