#!/usr/bin/env node
// Registers a handle on a kez-chat home server from the command line.
//
//   node scripts/register.mjs <handle> [--url http://127.0.0.1:8787] [--key FILE]
//
// The identity's secret seed lives in FILE (default ./kez-identity.json, created with a
// fresh key on first use, mode 0600). The server's domain is read from its /v1/healthz.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { identity, registrationPayload, signEnvelope } from "./lib/registration.mjs";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: "string", default: "http://127.0.0.1:8787" },
    key: { type: "string", default: "kez-identity.json" },
  },
});
if (positionals.length !== 1) {
  console.error("usage: node scripts/register.mjs <handle> [--url URL] [--key FILE]");
  process.exit(2);
}
const [handle] = positionals;

let id;
if (existsSync(values.key)) {
  id = identity(JSON.parse(readFileSync(values.key, "utf8")).seed_hex);
} else {
  id = identity();
  writeFileSync(values.key, JSON.stringify({ seed_hex: id.seedHex, primary: id.primary }, null, 2) + "\n", { mode: 0o600 });
  console.error(`new identity ${id.primary}, secret seed saved in ${values.key}`);
}

const base = values.url.replace(/\/+$/, "");
const health = await (await fetch(`${base}/v1/healthz`)).json();
const envelope = signEnvelope(id, registrationPayload({ handle, primary: id.primary, server: health.server }));
const response = await fetch(`${base}/v1/register`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(envelope),
});
const body = await response.json();
console.log(JSON.stringify(body, null, 2));
process.exit(response.ok ? 0 : 1);
