// The web app's own protocol code (web/src/lib: identity, message bodies, sealed box, nostr
// events), bundled with esbuild for Node, so a test can act as a second client that sends
// events in an order or shape the app itself never would.
import { build } from "esbuild";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

const LIB = path.resolve(import.meta.dirname, "../../web/src/lib");

export async function loadProtocol() {
  const result = await build({
    stdin: {
      contents: ["identity", "message", "seal", "nostr", "transfer", "erasure", "files"].map((m) => `export * from "./${m}";`).join("\n"),
      resolveDir: LIB,
      loader: "ts",
    },
    bundle: true,
    format: "esm",
    platform: "node",
    write: false,
    logLevel: "silent",
  });
  const file = path.join(mkdtempSync(path.join(tmpdir(), "kez-protocol-")), "protocol.mjs");
  writeFileSync(file, result.outputFiles[0].text);
  return import(pathToFileURL(file).href);
}

/** Publishes events to a relay in order, at most 5 per 1.05 s, and waits for every OK. */
export async function publishAll(url, events) {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
  });
  const pending = new Map();
  ws.onmessage = (m) => {
    const [type, id, ok, why] = JSON.parse(m.data);
    if (type === "OK" && pending.has(id)) {
      pending.get(id)(ok ? null : why);
      pending.delete(id);
    }
  };
  const answers = [];
  for (const [i, event] of events.entries()) {
    if (i > 0 && i % 5 === 0) await new Promise((r) => setTimeout(r, 1050));
    answers.push(new Promise((resolve) => pending.set(event.id, resolve)));
    ws.send(JSON.stringify(["EVENT", event]));
  }
  const refusals = (await Promise.all(answers)).filter((why) => why !== null);
  ws.close();
  if (refusals.length > 0) throw new Error(`${url} refused: ${refusals.join("; ")}`);
}
