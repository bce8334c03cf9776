// Local nostr relays for the tests, all on 127.0.0.1, each with its store in a fresh temp dir:
//
// - startRelay(): PyPI nostr-relay 1.14 (installed by kez_install_relay in scripts/env.sh,
//   pinned by tests/relay-requirements.txt), one gunicorn master + one uvicorn worker.
// - startNostrRsRelay(): crates.io nostr-rs-relay 0.8.12 (kez_install_nostr_rs_relay), with
//   the sample config.toml the crate ships, changed only to run here.
// - startSilentRelay(): a WebSocket server that accepts connections, answers REQ with EOSE
//   and drops every EVENT without an OK: a relay that takes the connection and delivers nothing.
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
// - Rate limit only with `eventsPerSecond` (config `rate_limits: {ip: {EVENT: "N/s"}}`): an
//   EVENT that finds N events already accepted from the same IP address within the last
//   second (by its code, every client on 127.0.0.1 shares one budget) is not stored and is answered at
//   once with ["OK", <its id>, false, "rate-limited: slow down"]. Each such answer also
//   doubles that connection's throttle (0.5 s, 1 s, 2 s, ...; it never goes back down):
//   the relay then sleeps that long before reading the next message, and before every later
//   OK and after every later REQ on that WebSocket. Rate-limited events are not counted in
//   the budget. (With a REQ rule, which is not set here, a limited REQ gets
//   ["NOTICE", "rate-limited"].)
// - NIP-11 (GET / with exactly `Accept: application/nostr+json`; any other Accept, even
//   "application/nostr+json, */*", gets the text "try using a nostr client :-)") is a fixed
//   document, served as Content-Type application/json: name, description, pubkey, contact,
//   supported_nips, software, version. It has no `limitation` object, and nothing in the
//   config can add one: the relay never states its size limit. Both answers carry
//   Access-Control-Allow-Origin: * (and -Allow-Headers, -Allow-Methods: *); an OPTIONS
//   preflight gets 200 without them (a GET with only Accept needs no preflight).
// - NIP-42: with `authentication: {enabled: true, relay_urls: [...], actions: {save: w}}` it
//   sends ["AUTH", <challenge>] on connect, takes ["AUTH", <kind 22242 event>] without any
//   answer (a wrong one gets ["NOTICE", "invalid: Wrong challenge"]), and refuses a write the
//   client's role may not do, before or after AUTH (roles come only from `nostr-relay role
//   set`), with ["OK", "", false, "restricted: permission denied"] (empty id, 2 s throttle).
//   It never sends `auth-required:`, so it is not offered as an option here.
// - WebSocket messages up to 16 MiB (uvicorn's ws_max_size) are accepted; a bigger one
//   drops the connection (the browser sees close code 1006), no OK.
// - Accepted 255 KB events: OK in ~7 ms each sent one at a time, 30 pipelined in ~0.2 s.
// - Kinds 10000-19999 keep only the latest per author and kind, 30000-39999 per d tag;
//   kinds 20000-29999 and events with an expired NIP-40 `expiration` tag are stored, then
//   deleted by the garbage collector (every 300 s).
//
// nostr-rs-relay 0.8.12 with its shipped config (see nostrRsRelayConfig for the changes):
// - Limits are bytes of the whole WebSocket message (131072 here). An EVENT message of 131072
//   bytes is stored (OK true); one of 131073 bytes or more gets no OK but
//   ["NOTICE", "message too large (131073 > 131072)"], and then the relay drops the
//   connection (the client sees close code 1006).
// - NIP-11 (any Accept header containing application/nostr+json; Content-Type
//   application/nostr+json, Access-Control-Allow-Origin: *) states no size:
//   "limitation": {"payment_required": false} only. It lists 42 in supported_nips although
//   NIP-42 is off in the shipped config, and `id` is the sample's "wss://nostr.example.com/".
// - It logs to stdout (log()), at RUST_LOG=info unless RUST_LOG is set.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { connect as connectTcp, createServer as createNetServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import path from "node:path";
import { WebSocketServer } from "ws";
import { openShared } from "./sqlite.mjs";
import { freePort } from "./worker.mjs";

const TOOLS = process.env.KEZ_TOOLS_DIR ?? path.join(homedir(), ".cache/kez-chat-server");
const NOSTR_RELAY_BIN = process.env.KEZ_NOSTR_RELAY_BIN ?? path.join(TOOLS, "nostr-relay-1.14/bin/nostr-relay");
const NOSTR_RS_RELAY_BIN = process.env.KEZ_NOSTR_RS_RELAY_BIN ?? path.join(TOOLS, "nostr-rs-relay-0.8.12/bin/nostr-rs-relay");
const NOSTR_RS_RELAY_CONFIG = process.env.KEZ_NOSTR_RS_RELAY_CONFIG ?? path.join(TOOLS, "nostr-rs-relay-0.8.12/config.toml");

const running = new Set(); // relay processes (process group leaders) still alive

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

/** The rows of a query on a relay's SQLite file (read-only: the relay keeps writing; WAL). */
function readRows(file, sql) {
  const db = openShared(file, { readOnly: true });
  try {
    return db.prepare(sql).all();
  } finally {
    db.close();
  }
}
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

/** Throws a clear error when something already listens on 127.0.0.1:`port`. */
export async function assertPortFree(port) {
  await new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once("error", (e) =>
      reject(e.code === "EADDRINUSE" ? new Error(`port ${port} on 127.0.0.1 is already in use (another relay?)`) : e),
    );
    server.listen(port, "127.0.0.1", () => server.close(resolve));
  });
}

/**
 * Runs `bin args` (detached: its own process group) and resolves once `url` accepts
 * WebSockets. Returns { start, stop, log } for the stop/restart of the relay objects.
 */
function relayProcess({ name, bin, args, cwd, url, env = {} }) {
  let log = "";
  let child = null; // the running process, or null when stopped
  let exited = null; // resolves when `child` has exited

  async function start() {
    const proc = spawn(bin, args, {
      cwd,
      env: { ...process.env, ...env },
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
        throw new Error(`${name} exited early (${proc.exitCode ?? proc.signalCode}):\n${log}`);
      }
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`${name} did not accept WebSockets on ${url} within 30 s:\n${log}`);
      }
      if (await canConnect(url)) return;
      await sleep(100);
    }
  }

  /** Stops the process (idempotent). */
  async function stop() {
    const proc = child;
    if (!proc) return;
    child = null;
    // SIGTERM to the leader alone. (nostr-relay: the gunicorn master then stops its worker,
    // which closes open WebSockets with 1012, in ~0.6 s; SIGINT/SIGQUIT hang the 1.14 master
    // until the SIGKILL below, and signalling the whole group makes it wait for the killed
    // worker.)
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
    // A child may outlive the leader by a moment; make sure the port is free again.
    try {
      process.kill(-proc.pid, "SIGKILL");
    } catch {
      // whole group gone
    }
    log += `--- stopped ${new Date().toISOString()}\n`;
  }

  return { start, stop, log: () => log };
}

/**
 * What every relay handle has: stop (the store stays), restart (same port, same store) and
 * close (stops, then `cleanUp`, which deletes the temp dir and anything in front).
 */
function lifecycle(proc, cleanUp) {
  return {
    /** Stops the relay (idempotent); the database stays, for restart(). */
    stop: proc.stop,
    /** Starts the stopped relay again: same port, same database. */
    async restart() {
      await proc.stop();
      await proc.start();
    },
    /** Stops the relay and deletes its temp dir (database included). */
    async close() {
      await proc.stop();
      await cleanUp();
    },
  };
}

function nostrRelayConfig({ port, dbFile, maxEventSize, eventsPerSecond, maxLimit }) {
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
${maxLimit ? `max_limit: ${maxLimit}\n` : ""}${eventsPerSecond ? `rate_limits:\n  ip:\n    EVENT: "${eventsPerSecond}/s"\n` : ""}`;
}

const RELAY_OPTIONS = new Set(["maxEventSize", "port", "eventsPerSecond", "statedMessageLength", "maxLimit"]);

/**
 * An HTTP front on 127.0.0.1:`port` for a relay on `innerPort`: WebSocket upgrades are
 * spliced through to the relay byte for byte; a NIP-11 request gets the relay's own document
 * with `limitation.max_message_length` added. It stands for a relay that publishes its limit
 * (strfry does), which nostr-relay 1.14 cannot do itself.
 */
async function nip11Front(port, innerPort, maxMessageLength) {
  const sockets = new Set();
  const server = createServer(async (req, res) => {
    try {
      const inner = await fetch(`http://127.0.0.1:${innerPort}/`, { headers: { Accept: "application/nostr+json" } });
      const doc = await inner.json();
      const body = JSON.stringify({ ...doc, limitation: { ...doc.limitation, max_message_length: maxMessageLength } });
      res.writeHead(200, { "Content-Type": "application/nostr+json", "Access-Control-Allow-Origin": "*" }).end(body);
    } catch {
      res.writeHead(502).end();
    }
  });
  server.on("upgrade", (req, client, head) => {
    const relay = connectTcp(innerPort, "127.0.0.1");
    sockets.add(client).add(relay);
    const forget = () => (sockets.delete(client), sockets.delete(relay), client.destroy(), relay.destroy());
    client.on("error", forget).on("close", forget);
    relay.on("error", forget).on("close", forget);
    relay.on("connect", () => {
      const headers = Object.entries(req.headers).map(([k, v]) => `${k}: ${v}`).join("\r\n");
      relay.write(`${req.method} ${req.url} HTTP/1.1\r\n${headers}\r\n\r\n`);
      relay.write(head);
      client.pipe(relay).pipe(client);
    });
  });
  await new Promise((resolve, reject) => server.once("error", reject).listen(port, "127.0.0.1", resolve));
  return {
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * Starts a PyPI nostr-relay on a free port; resolves once it accepts WebSocket connections.
 * - `maxEventSize` caps the length of an event's `content` (nostr-relay's own default: 4096).
 * - `eventsPerSecond` (an integer; none by default) turns on its rate limiter: at most that
 *   many EVENTs accepted per second from one IP address; the rest are answered
 *   ["OK", <id>, false, "rate-limited: slow down"] (see the top of this file).
 * - `port` is a free one unless given.
 * - `maxLimit` caps the events one request returns, newest first (nostr-relay's `max_limit`,
 *   6000 by default; strfry's default is 500).
 * - `statedMessageLength`: nostr-relay 1.14 cannot state a limit in its NIP-11 document; with
 *   this, the relay listens behind nip11Front, whose NIP-11 answer adds
 *   `limitation.max_message_length` (what the relay's `maxEventSize` amounts to).
 */
export async function startRelay(options = {}) {
  for (const name of Object.keys(options)) {
    if (!RELAY_OPTIONS.has(name)) throw new Error(`startRelay: unknown option ${name}`);
  }
  const { maxEventSize = 262144, port: fixedPort, eventsPerSecond, statedMessageLength, maxLimit } = options;
  for (const [name, value] of Object.entries({ eventsPerSecond, maxLimit })) {
    if (value !== undefined && !(Number.isInteger(value) && value > 0)) throw new Error(`startRelay: ${name} must be a positive integer, not ${value}`);
  }
  if (!existsSync(NOSTR_RELAY_BIN)) {
    throw new Error(`no nostr-relay at ${NOSTR_RELAY_BIN}: run kez_install_relay (scripts/env.sh)`);
  }
  const port = fixedPort ?? (await freePort());
  if (fixedPort !== undefined) await assertPortFree(port);
  const dir = mkdtempSync(path.join(tmpdir(), "kez-relay-"));
  const dbFile = path.join(dir, "nostr.sqlite3");
  const configFile = path.join(dir, "config.yaml");
  const url = `ws://127.0.0.1:${port}`;
  const relayPort = statedMessageLength === undefined ? port : await freePort();
  writeFileSync(configFile, nostrRelayConfig({ port: relayPort, dbFile, maxEventSize, eventsPerSecond, maxLimit }));

  // `nostr-relay serve` runs alembic migrations, then becomes the gunicorn master itself.
  const proc = relayProcess({
    name: "nostr-relay",
    bin: NOSTR_RELAY_BIN,
    args: ["-c", configFile, "serve"],
    cwd: dir,
    url: `ws://127.0.0.1:${relayPort}`,
    env: { PYTHONUNBUFFERED: "1" },
  });
  let front = null;
  try {
    await proc.start();
    if (statedMessageLength !== undefined) front = await nip11Front(port, relayPort, statedMessageLength);
  } catch (e) {
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }

  return {
    url,
    port,
    dir,
    dbFile,
    log: proc.log,
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
      return readRows(dbFile, "SELECT id, pubkey, created_at, kind, tags, content, sig FROM events ORDER BY created_at, id").map((row) => ({
        id: hex(row.id),
        pubkey: hex(row.pubkey),
        created_at: Number(row.created_at),
        kind: Number(row.kind),
        tags: JSON.parse(row.tags),
        content: row.content,
        sig: hex(row.sig),
      }));
    },
    /**
     * How many EVENTs were answered `rate-limited:` so far (counted from the relay's log line
     * "Rate limiting <ip> for EVENT ..."; 0 without `eventsPerSecond`).
     */
    rateLimitedAnswers() {
      return (proc.log().match(/Rate limiting \S+ for EVENT /g) ?? []).length;
    },
    ...lifecycle(proc, async () => {
      await front?.close();
      rmSync(dir, { recursive: true, force: true });
    }),
  };
}

/**
 * The crate's shipped sample config.toml with only what running here needs changed: the
 * database in `dataDir`, listening on 127.0.0.1:`port`, and the three size limits it
 * documents (commented out in the sample) switched on at their documented 131072 bytes.
 * Everything else (relay_url, name, reject_future_seconds = 1800, no rate limit, no NIP-42)
 * stays as shipped. Throws if a line to change is not found (another sample version).
 */
export function nostrRsRelayConfig(sample, { port, dataDir }) {
  const edits = [
    [/^#data_directory = .*$/m, `data_directory = ${JSON.stringify(dataDir)}`],
    [/^address = "0\.0\.0\.0"$/m, 'address = "127.0.0.1"'],
    [/^port = 8080$/m, `port = ${port}`],
    [/^#max_event_bytes = 131072$/m, "max_event_bytes = 131072"],
    [/^#max_ws_message_bytes = 131072$/m, "max_ws_message_bytes = 131072"],
    [/^#max_ws_frame_bytes = 131072$/m, "max_ws_frame_bytes = 131072"],
  ];
  let config = sample;
  for (const [from, to] of edits) {
    if (!from.test(config)) throw new Error(`nostr-rs-relay sample config: no line ${from}`);
    config = config.replace(from, to);
  }
  return config;
}

/**
 * Starts crates.io nostr-rs-relay 0.8.12 with its shipped sample config (see
 * nostrRsRelayConfig) on a free port (or `port`); resolves once it accepts WebSockets.
 */
export async function startNostrRsRelay({ port: fixedPort } = {}) {
  for (const file of [NOSTR_RS_RELAY_BIN, NOSTR_RS_RELAY_CONFIG]) {
    if (!existsSync(file)) throw new Error(`no ${file}: run kez_install_nostr_rs_relay (scripts/env.sh)`);
  }
  const port = fixedPort ?? (await freePort());
  if (fixedPort !== undefined) await assertPortFree(port);
  const dir = mkdtempSync(path.join(tmpdir(), "kez-rs-relay-"));
  const configFile = path.join(dir, "config.toml");
  const config = nostrRsRelayConfig(readFileSync(NOSTR_RS_RELAY_CONFIG, "utf8"), { port, dataDir: dir });
  writeFileSync(configFile, config);
  const dbFile = path.join(dir, "nostr.db");
  const url = `ws://127.0.0.1:${port}`;

  // Its log goes to stdout, filtered by RUST_LOG (errors only when unset).
  const proc = relayProcess({
    name: "nostr-rs-relay",
    bin: NOSTR_RS_RELAY_BIN,
    args: ["--config", configFile],
    cwd: dir,
    url,
    env: { RUST_LOG: process.env.RUST_LOG ?? "info", NO_COLOR: "1" },
  });
  try {
    await proc.start();
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }

  return {
    url,
    port,
    dir,
    dbFile,
    config,
    log: proc.log,
    /**
     * Every stored event (not hidden by a deletion or replacement), oldest first, from its
     * SQLite file `nostr.db` (schema v18, src/repo/sqlite_migration.rs):
     *   event(id INTEGER primary key, event_hash BLOB unique (the 32-byte event id),
     *         first_seen INTEGER, created_at INTEGER, expires_at INTEGER, author BLOB,
     *         delegated_by BLOB, kind INTEGER, hidden INTEGER, content TEXT = the whole
     *         event as JSON)
     *   tag(id, event_id -> event.id, name, value, value_hex, created_at, kind)
     *   plus user_verification, account, invoice. WAL mode.
     */
    events() {
      return readRows(dbFile, "SELECT content FROM event WHERE hidden IS NOT TRUE ORDER BY created_at, id").map((row) => JSON.parse(row.content));
    },
    ...lifecycle(proc, () => rmSync(dir, { recursive: true, force: true })),
  };
}

/**
 * A relay that accepts WebSocket connections and then delivers nothing: every REQ is
 * answered with EOSE at once, every EVENT is counted and dropped without an OK, anything
 * else is ignored. Plain HTTP (a NIP-11 request included) gets a 404 with an empty body.
 * In this process (npm ws), on a free port unless `port` is given.
 */
export async function startSilentRelay({ port: fixedPort } = {}) {
  const port = fixedPort ?? (await freePort());
  const url = `ws://127.0.0.1:${port}`;
  let log = "";
  let eventsReceived = 0;
  let connections = 0;
  let http = null;
  let wss = null;

  async function start() {
    http = createServer((req, res) => {
      log += `${new Date().toISOString()} HTTP ${req.method} ${req.url} -> 404\n`;
      res.writeHead(404);
      res.end();
    });
    wss = new WebSocketServer({ server: http, maxPayload: 16 * 1024 * 1024 });
    wss.on("connection", (ws) => {
      connections += 1;
      const id = connections;
      log += `${new Date().toISOString()} connection ${id} opened\n`;
      ws.on("message", (data, isBinary) => {
        if (isBinary) return;
        let message;
        try {
          message = JSON.parse(data.toString());
        } catch {
          return;
        }
        if (!Array.isArray(message)) return;
        if (message[0] === "EVENT") eventsReceived += 1;
        else if (message[0] === "REQ" && typeof message[1] === "string") ws.send(JSON.stringify(["EOSE", message[1]]));
      });
      ws.on("close", () => (log += `${new Date().toISOString()} connection ${id} closed\n`));
    });
    await new Promise((resolve, reject) => {
      http.once("error", (e) =>
        reject(e.code === "EADDRINUSE" ? new Error(`port ${port} on 127.0.0.1 is already in use (another relay?)`) : e),
      );
      http.listen(port, "127.0.0.1", resolve);
    });
    log += `--- listening ${new Date().toISOString()} on ${url}\n`;
  }

  async function stop() {
    if (!http) return;
    const [h, w] = [http, wss];
    http = wss = null;
    for (const client of w.clients) client.terminate();
    await new Promise((resolve) => w.close(resolve));
    h.closeAllConnections();
    await new Promise((resolve) => h.close(resolve));
    log += `--- stopped ${new Date().toISOString()}\n`;
  }

  await start();
  return {
    url,
    port,
    log: () => log,
    /** EVENT messages received so far (all dropped). */
    eventsReceived: () => eventsReceived,
    /** WebSocket connections accepted so far. */
    connections: () => connections,
    /** Nothing is ever stored. */
    events: () => [],
    /** Closes every connection and stops listening (idempotent); the counts stay. */
    stop,
    /** Listens again on the same port. */
    async restart() {
      await stop();
      await start();
    },
    close: stop,
  };
}
