// Runs the built worker in workerd through `wrangler dev`, exactly as the README's run
// command does, on 127.0.0.1 with a fresh local D1 that has the migrations applied.
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { openShared } from "./sqlite.mjs";

const ROOT = path.resolve(import.meta.dirname, "../..");
const WRANGLER = path.join(ROOT, "node_modules/.bin/wrangler");
const run = promisify(execFile);

/**
 * The first port the kernel hands out for outgoing connections (Linux; elsewhere none known).
 * A port from below it cannot be taken, between `freePort` and the server binding it, by one
 * of the many connections the tests open: a port the kernel picked for a listener could be.
 */
const EPHEMERAL_START = (() => {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || null;
  } catch {
    return null;
  }
})();
/** Ports this process handed out (each is free when handed out, and handed out once). */
const handedOut = new Set();

function listensOn(port) {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", (e) => (e.code === "EADDRINUSE" ? resolve(null) : reject(e)));
    server.listen(port, "127.0.0.1", () => {
      const bound = server.address().port;
      server.close(() => resolve(bound));
    });
  });
}

/**
 * A port free on 127.0.0.1 now: below the ephemeral range where there is one, else the kernel's
 * pick. Never one of the "bad ports" fetch and Chromium refuse to connect to (the highest is
 * 10080): a server handed one answers nobody.
 */
export async function freePort() {
  const low = 10_081;
  for (let attempt = 0; EPHEMERAL_START !== null && EPHEMERAL_START > low + 1_000 && attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (EPHEMERAL_START - low));
    if (handedOut.has(port) || (await listensOn(port)) === null) continue;
    handedOut.add(port);
    return port;
  }
  return listensOn(0);
}

/**
 * Every migration, in order, as single statements (D1's `prepare` takes one at a time): for a
 * D1 that Miniflare runs directly, which `wrangler d1 migrations apply` does not reach.
 */
export function migrationStatements() {
  return readdirSync(path.join(ROOT, "migrations"))
    .filter((f) => f.endsWith(".sql"))
    .sort()
    .flatMap((f) => readFileSync(path.join(ROOT, "migrations", f), "utf8").replace(/--.*$/gm, "").split(";"))
    .map((statement) => statement.trim())
    .filter(Boolean);
}

/** The SQLite file behind the local D1 database in a `--persist-to` folder. */
function d1File(persist) {
  const dir = path.join(persist, "v3", "d1", "miniflare-D1DatabaseObject");
  const files = readdirSync(dir).filter((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite");
  if (files.length !== 1) throw new Error(`expected one D1 database in ${dir}, found ${files}`);
  return path.join(dir, files[0]);
}

/**
 * Starts the worker; `extraArgs` go to `wrangler dev` (for example `--var` overrides).
 * `port` is a free one unless given (a test that needs the URL in a var picks it first).
 * `migrate: false` leaves the local D1 without its schema: a real storage fault.
 * Registration rate limits are off unless `rateLimits` (tests register dozens of handles a
 * minute from one address); tests/limits.test.mjs runs them as configured in wrangler.toml.
 * The log signs with a fresh `logSeed` (hex) unless one is given; "" leaves it unset.
 */
export async function startWorker(extraArgs = [], port = undefined, { migrate = true, rateLimits = false, logSeed = randomBytes(32).toString("hex") } = {}) {
  const persist = mkdtempSync(path.join(tmpdir(), "kez-d1-"));
  // The tests build the worker once beforehand; wrangler's [build] would redo it.
  const env = { ...process.env, KEZ_SKIP_BUILD: "1", WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", CI: "true" };
  if (migrate) await run(WRANGLER, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persist], { cwd: ROOT, env });
  port ??= await freePort();
  const inspectorPort = await freePort();
  const child = spawn(
    WRANGLER,
    ["dev", "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspectorPort), "--persist-to", persist, ...(rateLimits ? [] : ["--var", "REGISTRATION_RATE_LIMITS:off"]), "--var", `LOG_SIGNING_SEED:${logSeed}`, ...extraArgs],
    { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const url = `http://127.0.0.1:${port}`;

  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited early:\n${log}`);
    if (Date.now() > deadline) {
      process.kill(-child.pid, "SIGKILL");
      throw new Error(`wrangler dev did not answer within 120 s:\n${log}`);
    }
    try {
      // Ready once the worker itself answers (JSON), even with an error for a broken config.
      const response = await fetch(`${url}/v1/healthz`);
      await response.arrayBuffer();
      if (response.headers.get("content-type")?.startsWith("application/json")) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }

  return {
    url,
    logSeed,
    log: () => log,
    /** Reads the worker's local D1 (the SQLite file workerd writes) and returns the rows. */
    query(sql, ...params) {
      const db = openShared(d1File(persist), { readOnly: true });
      try {
        return db.prepare(sql).all(...params);
      } finally {
        db.close();
      }
    },
    /**
     * Writes to the worker's local D1 behind its back: what a dishonest operator (or anyone
     * with the Cloudflare account) can do. Returns the statement's changes.
     */
    tamper(sql, ...params) {
      const db = openShared(d1File(persist));
      try {
        return db.prepare(sql).run(...params);
      } finally {
        db.close();
      }
    },
    /** Runs a script of statements behind the worker's back (`tamper`, for several at once). */
    tamperScript(sql) {
      const db = openShared(d1File(persist));
      try {
        db.exec(sql);
      } finally {
        db.close();
      }
    },
    async stop() {
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        // already gone
      }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // exited cleanly
      }
      rmSync(persist, { recursive: true, force: true });
    },
  };
}
