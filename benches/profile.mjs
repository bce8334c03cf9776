// Where a request's CPU time goes: loads one endpoint of the worker in workerd for 4 s under
// the V8 sampling profiler (through workerd's inspector) and prints self time by function
// (wasm names included) and by file. Needs a build that keeps the names section:
//
//   source scripts/env.sh && kez_install_toolchain && NO_MINIFY=1 worker-build --release --out-dir build-prof \
//     && KEZ_KEEP_NAMES=1 node scripts/lib/plain-entry.mjs build-prof/index.js
//   [KEZ_PROFILE_VARS=LOOKUP_CACHE_SECONDS=0] node benches/profile.mjs [/v1/u/benchalice | register]
import { Miniflare } from "miniflare";
import { freePort } from "../tests/support/worker.mjs";
import { readFileSync, readdirSync } from "node:fs";
import { identity, registrationPayload, signEnvelope } from "../scripts/lib/registration.mjs";
/** Every migration, in order, as single statements (D1's prepare takes one at a time). */
const MIGRATIONS = readdirSync("migrations").filter((f) => f.endsWith(".sql")).sort()
  .flatMap((f) => readFileSync(`migrations/${f}`, "utf8").replace(/--.*$/gm, "").split(";")).map((s) => s.trim()).filter(Boolean);
const port = await freePort();
const inspectorPort = await freePort();
const mf = new Miniflare({ name: "rust", modules: true, scriptPath: "build-prof/index.js", modulesRoot: "build-prof", modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }], compatibilityDate: "2026-07-01", d1Databases: { DB: "x" }, bindings: { SERVER_DOMAIN: "localhost", SIG_SERVER_URL: "http://localhost:7878", REGISTRATION_RATE_LIMITS: "off", LOG_SIGNING_SEED: "07".repeat(32), ...Object.fromEntries((process.env.KEZ_PROFILE_VARS ?? "").split(",").filter(Boolean).map((kv) => kv.split("="))) }, host: "127.0.0.1", port, inspectorPort });
await mf.ready;
const db = await mf.getD1Database("DB");
for (const statement of MIGRATIONS) await db.prepare(statement).run();
const id = identity();
await fetch(`http://127.0.0.1:${port}/v1/register`, { method: "POST", body: JSON.stringify(signEnvelope(id, registrationPayload({ handle: "benchalice", primary: id.primary, server: "localhost" }))) });
const list = await (await fetch(`http://127.0.0.1:${inspectorPort}/json/list`)).json();
const ws = new WebSocket(list.find((t) => t.id === "core:user:rust").webSocketDebuggerUrl);
await new Promise((r) => (ws.onopen = r));
let n = 0; const pending = new Map();
ws.onmessage = (e) => { const m = JSON.parse(e.data); if (pending.has(m.id)) { pending.get(m.id)(m.result); pending.delete(m.id); } };
const call = (method, params = {}) => new Promise((r) => { const i = ++n; pending.set(i, r); ws.send(JSON.stringify({ id: i, method, params })); });
const path = process.argv[2] ?? "/v1/u/benchalice";
// "register": fresh registrations, signed before the profile starts.
const pool = path === "register" ? Array.from({ length: 20000 }, (_, i) => {
  const key = identity();
  return JSON.stringify(signEnvelope(key, registrationPayload({ handle: `prof${i.toString(36)}`, primary: key.primary, server: "localhost" })));
}) : [];
const send = () => path === "register"
  ? fetch(`http://127.0.0.1:${port}/v1/register`, { method: "POST", body: pool.pop(), headers: { "content-type": "application/json" } })
  : fetch(`http://127.0.0.1:${port}${path}`);
for (let i = 0; i < 300; i++) await (await send()).arrayBuffer();
await call("Profiler.enable"); await call("Profiler.setSamplingInterval", { interval: 50 }); await call("Profiler.start");
const end = Date.now() + 4000; let count = 0;
await Promise.all(Array.from({ length: 8 }, async () => { while (Date.now() < end) { await (await send()).arrayBuffer(); count++; } }));
const { profile } = await call("Profiler.stop");
const self = new Map(); const total = profile.samples.length;
const byId = new Map(profile.nodes.map((nd) => [nd.id, nd]));
const counts = new Map(); for (const s of profile.samples) counts.set(s, (counts.get(s) ?? 0) + 1);
for (const [idn, c] of counts) { const nd = byId.get(idn); const name = `${nd.callFrame.functionName || "(anon)"} ${nd.callFrame.url.split("/").pop()}`; self.set(name, (self.get(name) ?? 0) + c); }
console.log(`${count} requests; ${total} samples`);
for (const [name, c] of [...self].filter(([n]) => /wasm|index\.js/.test(n)).sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log(((c / total) * 100).toFixed(2).padStart(5), name.replace(/::h[0-9a-f]{16}/, "").slice(0, 120));
const byFile = new Map();
for (const [idn, c] of counts) { const nd = byId.get(idn); const f = nd.callFrame.url.split("/").pop().replace(/-[0-9a-f]+$/, "") || "(native/" + (nd.callFrame.functionName || "?") + ")"; byFile.set(f, (byFile.get(f) ?? 0) + c); }
console.log("--- by file"); for (const [f, c] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(((c / total) * 100).toFixed(1).padStart(5), f.slice(0, 80));
await mf.dispose();
