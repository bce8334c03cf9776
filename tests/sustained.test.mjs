// Registrations under sustained concurrency, through the built worker in workerd with a local
// D1: every one is answered 201 with its proof in the log. The log's steps were once shared
// between the registrations of an isolate, and a registration that went on from a step another
// request had made failed its own I/O ("Cannot perform I/O on behalf of a different request"),
// or hung: after some 20,000 registrations from 8 clients, a quarter came back without their
// proof or as 500s. It only showed after that long, so this test registers that many, on the
// worker's own socket (as the benchmark does: `wrangler dev`'s proxy would take three times
// as long).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { after, before, test } from "node:test";
import { Miniflare } from "miniflare";
import { freshEnvelope } from "./support/kez.mjs";
import { freePort, migrationStatements } from "./support/worker.mjs";

const ROOT = path.resolve(import.meta.dirname, "..");
const SERVER = "localhost";
const REGISTRATIONS = Number(process.env.KEZ_SUSTAINED ?? 32_000);
const CLIENTS = 8;
let mf;
let url;
let logs = "";

before(async () => {
  const port = await freePort();
  const script = path.join(ROOT, "build/index.js");
  mf = new Miniflare({
    modules: true,
    scriptPath: script,
    modulesRoot: path.dirname(script),
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
    compatibilityDate: /compatibility_date = "(.+)"/.exec(readFileSync(path.join(ROOT, "wrangler.toml"), "utf8"))[1],
    d1Databases: { DB: "sustained" },
    bindings: { SERVER_DOMAIN: SERVER, SIG_SERVER_URL: "http://localhost:7878", REGISTRATION_RATE_LIMITS: "off", LOG_SIGNING_SEED: randomBytes(32).toString("hex") },
    host: "127.0.0.1",
    port: await freePort(),
    unsafeDirectSockets: [{ host: "127.0.0.1", port }],
    handleRuntimeStdio(stdout, stderr) {
      for (const stream of [stdout, stderr]) stream.on("data", (chunk) => (logs += chunk));
    },
  });
  await mf.ready;
  url = `http://127.0.0.1:${port}`;
  const db = await mf.getD1Database("DB");
  for (const statement of migrationStatements()) await db.prepare(statement).run();
});
after(async () => {
  await mf?.dispose();
});

/** POSTs `body` to `url` on a keep-alive socket of `agent`; resolves to `[status, text]`. */
function post(agent, url, body) {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { agent, method: "POST", headers: { "content-type": "application/json" } }, (response) => {
      const chunks = [];
      response.on("data", (chunk) => chunks.push(chunk));
      response.on("end", () => resolve([response.statusCode, Buffer.concat(chunks).toString()]));
      response.on("error", reject);
    });
    request.on("error", reject);
    request.end(body);
  });
}

test(`${REGISTRATIONS} registrations from ${CLIENTS} clients at once: each answered 201 with its proof`, { timeout: 600_000 }, async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  const statuses = new Map();
  let withoutProof = 0;
  let firstWrong;
  let next = 0;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < REGISTRATIONS) {
        const sent = next++;
        // Signed as it is sent: one signed long before would be refused as stale on a slow run.
        const body = JSON.stringify(freshEnvelope(SERVER).envelope);
        const [status, text] = await post(agent, `${url}/v1/register`, body);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        const log = status === 201 ? JSON.parse(text).log : undefined;
        const proven = Number.isInteger(log?.index) && typeof log.checkpoint === "string" && Array.isArray(log.inclusion_proof);
        if (status === 201 && !proven) withoutProof++;
        if (!proven) firstWrong ??= `registration ${sent}: ${status} ${text.slice(0, 300)}`;
      }
    }),
  );
  agent.destroy();
  assert.deepEqual(Object.fromEntries(statuses), { 201: REGISTRATIONS }, `the first wrong answer: ${firstWrong}`);
  assert.equal(withoutProof, 0, `${withoutProof} answered 201 without their proof; the first: ${firstWrong}`);
  const { size } = await (await mf.getD1Database("DB")).prepare("SELECT size FROM log_state WHERE id = 1").first();
  assert.equal(size, REGISTRATIONS, "the signed tree holds every registration");
  assert.doesNotMatch(logs, /step failed|different request/);
});
