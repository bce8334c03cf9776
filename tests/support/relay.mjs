// Local nostr relays for the browser tests: PyPI nostr-relay 1.14 (installed by
// kez_install_relay in scripts/env.sh, pinned by tests/relay-requirements.txt), one
// gunicorn master + one uvicorn worker per relay, each with its own SQLite file in a
// fresh temp dir, on 127.0.0.1.
//
// Behaviour of nostr-relay 1.14 worth knowing in tests (measured with this config):
// - An event whose content is longer than maxEventSize (characters of `content` only;
//   tags and the rest do not count) is answered, after a 2 s pause, with
//   ["OK", "", false, "invalid: 280 characters should be enough for anybody"]: the id is
//   EMPTY, so a client waiting for OK by id sees a timeout. Every rejected EVENT (size,
//   signature, age) also doubles a per-connection throttle (2 s, 4 s, 8 s, ...) that
//   then delays every later message on that WebSocket (REQ and EVENT alike).
// - is_recent rejects created_at older than 1 year (oldest_event = 31536000 s) or more
//   than 1 hour in the future, with ["OK", "", false, "invalid: <created_at> is too old"].
// - No rate limit unless `rate_limits` is configured (it is not here).
// - WebSocket messages up to 16 MiB (uvicorn's ws_max_size) are accepted; a bigger one
//   drops the connection (the browser sees close code 1006), no OK.
// - Accepted 255 KB events: OK in ~7 ms each sent one at a time, 30 pipelined in ~0.2 s.
// - Kinds 10000-19999 keep only the latest per author and kind, 30000-39999 per d tag;
//   kinds 20000-29999 and events with an expired NIP-40 `expiration` tag are stored, then
//   deleted by the garbage collector (every 300 s).
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { freePort } from "./worker.mjs";

const NOSTR_RELAY_BIN =
  process.env.KEZ_NOSTR_RELAY_BIN ?? path.join(homedir(), ".cache/kez-chat-server/nostr-relay-1.14/bin/nostr-relay");

const running = new Set(); // child processes (gunicorn masters) still alive

// Never leave relays behind, even when a test throws before calling stop().
process.once("exit", () => {
  for (const child of running) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

const hex = (bytes) => Buffer.from(bytes).toString("hex");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves true once a WebSocket to `url` opens (then closes it), false on error. */
function canConnect(url) {
  return new Promise((resolve) => {
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      resolve(false);
      return;
    }
    const timer = setTimeout(() => {
      ws.close();
      resolve(false);
    }, 2000);
    ws.onopen = () => {
      clearTimeout(timer);
      ws.close();
      resolve(true);
    };
    ws.onerror = () => {
      clearTimeout(timer);
      resolve(false);
    };
  });
}

function config({ port, dbFile, maxEventSize }) {
  // nostr-relay reads `validators` under `storage:` (a top-level `validators:` key is
  // silently ignored and only is_signed runs). YAML strings are JSON-quoted.
  return `DEBUG: false
relay_name: kez e2e relay
relay_description: local relay for the kez browser tests
storage:
  sqlalchemy.url: ${JSON.stringify(`sqlite+aiosqlite:///${dbFile}`)}
  validators:
    - nostr_relay.validators.is_not_too_large
    - nostr_relay.validators.is_signed
    - nostr_relay.validators.is_recent
gunicorn:
  bind: "127.0.0.1:${port}"
  workers: 1
  loglevel: info
  reload: false
  graceful_timeout: 3
  # gunicorn 27 otherwise shares one control socket (~/.gunicorn/gunicorn.ctl) among relays.
  control_socket_disable: true
authentication:
  enabled: false
verification:
  nip05_verification: disabled
max_event_size: ${maxEventSize}
`;
}

/**
 * Starts a relay on a free port; resolves once it accepts WebSocket connections.
 * `maxEventSize` caps the length of an event's `content` (nostr-relay's own default: 4096);
 * `port` is a free one unless given.
 */
export async function startRelay({ maxEventSize = 262144, port: fixedPort } = {}) {
  if (!existsSync(NOSTR_RELAY_BIN)) {
    throw new Error(`no nostr-relay at ${NOSTR_RELAY_BIN}: run kez_install_relay (scripts/env.sh)`);
  }
  const dir = mkdtempSync(path.join(tmpdir(), "kez-relay-"));
  const dbFile = path.join(dir, "nostr.sqlite3");
  const configFile = path.join(dir, "config.yaml");
  const port = fixedPort ?? (await freePort());
  const url = `ws://127.0.0.1:${port}`;
  writeFileSync(configFile, config({ port, dbFile, maxEventSize }));

  let log = "";
  let child = null; // the running gunicorn master, or null when stopped
  let exited = null; // resolves when `child` has exited

  async function start() {
    // `nostr-relay serve` runs alembic migrations, then becomes the gunicorn master itself;
    // detached so that it and its worker share a process group (-pid) we can signal.
    const proc = spawn(NOSTR_RELAY_BIN, ["-c", configFile, "serve"], {
      cwd: dir,
      env: { ...process.env, PYTHONUNBUFFERED: "1" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    log += `--- start ${new Date().toISOString()} pid ${proc.pid}\n`;
    proc.stdout.on("data", (d) => (log += d));
    proc.stderr.on("data", (d) => (log += d));
    child = proc;
    running.add(proc);
    exited = new Promise((resolve) => proc.once("exit", resolve)).then(() => running.delete(proc));

    const deadline = Date.now() + 30_000;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        child = null;
        throw new Error(`nostr-relay exited early (${proc.exitCode ?? proc.signalCode}):\n${log}`);
      }
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`nostr-relay did not accept WebSockets on ${url} within 30 s:\n${log}`);
      }
      if (await canConnect(url)) return;
      await sleep(100);
    }
  }

  /** Stops the relay (idempotent); the database stays, for restart(). */
  async function stop() {
    const proc = child;
    if (!proc) return;
    child = null;
    // SIGTERM to the master alone: it stops the worker, which closes open WebSockets with
    // 1012, in ~0.6 s. (SIGINT/SIGQUIT hang the 1.14 master until the SIGKILL below, and
    // signalling the whole group makes it wait for the killed worker.)
    try {
      process.kill(proc.pid, "SIGTERM");
    } catch {
      // already gone
    }
    const done = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
    if (!done) {
      try {
        process.kill(-proc.pid, "SIGKILL");
      } catch {
        // exited meanwhile
      }
      await exited;
    }
    // The worker may outlive the master by a moment; make sure the port is free again.
    try {
      process.kill(-proc.pid, "SIGKILL");
    } catch {
      // whole group gone
    }
    log += `--- stopped ${new Date().toISOString()}\n`;
  }

  await start();

  const relay = {
    url,
    port,
    dir,
    dbFile,
    log: () => log,
    /**
     * Every stored event, oldest first, read straight from the relay's SQLite file.
     * nostr-relay 1.14 layout (nostr_relay/storage/__init__.py, SQLite flavour):
     *   events(id BLOB primary key, created_at INTEGER, kind INTEGER, pubkey BLOB,
     *          tags JSON (TEXT), sig BLOB, content TEXT)
     *   tags(id BLOB -> events.id ON DELETE CASCADE, name TEXT, value TEXT)  (index for #x filters)
     *   plus identity, auth and alembic_version. id/pubkey/sig are raw bytes (32/32/64).
     * The database is in WAL mode; reading while the relay runs sees committed events.
     */
    events() {
      const db = new DatabaseSync(dbFile, { readOnly: true });
      try {
        return db
          .prepare("SELECT id, pubkey, created_at, kind, tags, content, sig FROM events ORDER BY created_at, id")
          .all()
          .map((row) => ({
            id: hex(row.id),
            pubkey: hex(row.pubkey),
            created_at: Number(row.created_at),
            kind: Number(row.kind),
            tags: JSON.parse(row.tags),
            content: row.content,
            sig: hex(row.sig),
          }));
      } finally {
        db.close();
      }
    },
    stop,
    /** Starts the stopped relay again: same port, same database. */
    async restart() {
      await stop();
      await start();
    },
    /** Stops the relay and deletes its temp dir (database included). */
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return relay;
}
