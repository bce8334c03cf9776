// NATS side of the callout tests: nkey and JWT encoding written independently of the
// Rust code (so each checks the other), and real nats-server and bridge processes.
import { execFile, spawn } from "node:child_process";
import { createHash, createPublicKey, sign, verify } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { freePort } from "./worker.mjs";
import { kezAuthenticator, nkeyFor, unbase32 } from "../../scripts/lib/nats.mjs";
import { identity } from "../../scripts/lib/registration.mjs";

export { kezAuthenticator, nkeyFor };

const ROOT = path.resolve(import.meta.dirname, "../..");
export const BRIDGE_BIN = process.env.KEZ_BRIDGE_BIN ?? path.join(ROOT, "target/release/kez-nats-bridge");
export const NATS_SERVER_BIN = process.env.KEZ_NATS_SERVER_BIN;
const run = promisify(execFile);

/** A Node private key from an nkey seed (`SU…`, `SA…`). */
export function keyFromSeed(seed) {
  return identity(unbase32(seed.trim()).subarray(2, 34).toString("hex")).privateKey;
}

/** Raw 32 public key bytes of a Node private key. */
export function rawPublic(privateKey) {
  return Buffer.from(createPublicKey(privateKey).export({ format: "jwk" }).x, "base64url");
}

export function signJwt(claims, privateKey) {
  const head = Buffer.from(JSON.stringify({ typ: "JWT", alg: "ed25519-nkey" })).toString("base64url");
  const body = Buffer.from(JSON.stringify(claims)).toString("base64url");
  const sig = sign(null, Buffer.from(`${head}.${body}`), privateKey).toString("base64url");
  return `${head}.${body}.${sig}`;
}

/** Claims of a JWT after checking its signature by the `A…`/`N…` key in `iss`. */
export function verifiedClaims(token, expectedIssuer) {
  const [head, body, sig] = token.split(".");
  const claims = JSON.parse(Buffer.from(body, "base64url"));
  if (claims.iss !== expectedIssuer) throw new Error(`issuer ${claims.iss}, expected ${expectedIssuer}`);
  const raw = unbase32(claims.iss).subarray(1, 33);
  const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" });
  if (!verify(null, Buffer.from(`${head}.${body}`), key, Buffer.from(sig, "base64url"))) throw new Error("bad JWT signature");
  return claims;
}

/** The bridge's headers for `body`, signed with `privateKey` at `time` (Unix seconds). */
export function bridgeHeaders(privateKey, body, time = Math.floor(Date.now() / 1000), { method = "POST", path = "/internal/nats/auth" } = {}) {
  const digest = createHash("sha256").update(body).digest("hex");
  const message = Buffer.from(`kez-nats-bridge-v2\n${method}\n${path}\n${time}\n${digest}`);
  return {
    "x-kez-bridge-time": String(time),
    "x-kez-bridge-signature": sign(null, message, privateKey).toString("base64url"),
  };
}

function waitForPort(port, child, log, what) {
  const deadline = Date.now() + 20_000;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (child.exitCode !== null) return reject(new Error(`${what} exited:\n${log()}`));
      if (Date.now() > deadline) return reject(new Error(`${what} not listening:\n${log()}`));
      const socket = createConnection({ port, host: "127.0.0.1" });
      socket.once("connect", () => {
        socket.destroy();
        resolve();
      });
      socket.once("error", () => setTimeout(attempt, 100));
    };
    attempt();
  });
}

function startProcess(bin, args) {
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  // "close", not "exit": it comes once stdout and stderr are drained, so log() is complete.
  const exited = new Promise((resolve) => child.once("close", resolve));
  return {
    child,
    log: () => log,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null) child.kill(signal);
      await Promise.race([exited, new Promise((r) => setTimeout(r, 8000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      return exited;
    },
  };
}

/**
 * Keys from the bridge's own `keygen`, a nats-server configured with the nats.conf that
 * keygen wrote to its setup.txt (ports changed; `xkey` added when given), and returns everything needed
 * to start the bridge.
 */
export async function startNats({ xkey } = {}) {
  if (!NATS_SERVER_BIN) throw new Error("KEZ_NATS_SERVER_BIN is not set (scripts/test.sh sets it)");
  const dir = mkdtempSync(path.join(tmpdir(), "kez-nats-"));
  const keysDir = path.join(dir, "keys");
  await run(BRIDGE_BIN, ["keygen", "--out-dir", keysDir]);
  const setup = readFileSync(path.join(keysDir, "setup.txt"), "utf8");
  const section = (from, to) => setup.slice(setup.indexOf(from), setup.indexOf(to));
  const port = await freePort();
  const wsPort = await freePort();
  const conf = section("# ---- nats.conf", "# ---- worker secrets").replace("127.0.0.1:4222", `127.0.0.1:${port}`).replace("127.0.0.1:8443", `127.0.0.1:${wsPort}`)
    .replace("account: AUTH", xkey ? `account: AUTH\n    xkey: ${xkey}` : "account: AUTH");
  writeFileSync(path.join(dir, "nats.conf"), conf);
  const devVars = Object.fromEntries(
    section("# ---- or, for wrangler dev", "# ---- the bridge").split("\n").filter((l) => /^[A-Z_]+=/.test(l)).map((l) => l.split("=")),
  );
  const server = startProcess(NATS_SERVER_BIN, ["-c", path.join(dir, "nats.conf")]);
  await waitForPort(port, server.child, server.log, "nats-server");
  return {
    url: `nats://127.0.0.1:${port}`,
    wsPort,
    keysDir,
    workerVars: devVars,
    issuerPublic: /issuer: (A[A-Z2-7]{55})/.exec(conf)[1],
    /** `authorization.timeout` of nats.conf: how long nats-server waits for a callout answer. */
    authTimeoutSeconds: Number(/^\s*timeout: (\d+)/m.exec(conf)[1]),
    server,
    bridgeSigningKey: keyFromSeed(readFileSync(path.join(keysDir, "bridge-http.seed"), "utf8")),
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts the bridge between `nats` and the worker at `workerUrl`, and waits until it is subscribed. */
export async function startBridge(nats, workerUrl, extraArgs = []) {
  const bridge = startProcess(BRIDGE_BIN, [
    "run",
    "--nats-url", nats.url,
    "--nats-seed-file", path.join(nats.keysDir, "bridge-nats.seed"),
    "--worker-url", workerUrl,
    "--signing-seed-file", path.join(nats.keysDir, "bridge-http.seed"),
    ...extraArgs,
  ]);
  const deadline = Date.now() + 20_000;
  while (!bridge.log().includes('"msg":"ready"')) {
    if (bridge.child.exitCode !== null || Date.now() > deadline) throw new Error(`bridge did not start:\n${bridge.log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return bridge;
}

/**
 * An HTTP proxy on 127.0.0.1 in front of `targetUrl` (the worker) that keeps every answer it
 * passes back: point the bridge at `url` and read `answers` ({ path, status, body }) to see
 * exactly what the worker issued (the authorization response JWTs).
 */
export async function recordingProxy(targetUrl, { delayMs = 0 } = {}) {
  const answers = [];
  const flight = { now: 0, max: 0 };
  const server = createServer(async (req, res) => {
    flight.max = Math.max(flight.max, ++flight.now);
    try {
      // A slow worker, for tests of how many callouts the bridge has in flight at once.
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      const chunks = [];
      for await (const chunk of req) chunks.push(chunk);
      const headers = Object.fromEntries(
        Object.entries(req.headers).filter(([name]) => !["host", "connection", "content-length", "transfer-encoding", "keep-alive"].includes(name)),
      );
      const upstream = await fetch(new URL(req.url, targetUrl), {
        method: req.method,
        headers,
        body: chunks.length > 0 ? Buffer.concat(chunks) : undefined,
      });
      const body = Buffer.from(await upstream.arrayBuffer());
      answers.push({ path: req.url, status: upstream.status, body: body.toString() });
      res.writeHead(upstream.status, { "content-type": upstream.headers.get("content-type") ?? "application/octet-stream" });
      res.end(body);
    } catch (e) {
      res.writeHead(502, { "content-type": "text/plain" });
      res.end(String(e));
    } finally {
      flight.now -= 1;
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    answers,
    /** Requests in flight through the proxy at once, at most so far. */
    get maxInFlight() {
      return flight.max;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Parses the bridge's JSON log lines. */
export function logLines(text) {
  return text.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}
