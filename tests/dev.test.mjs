// The README's run command, as a new user runs it: ./scripts/dev.sh with no relays named
// starts its own local relays, and two browser profiles can then chat and send an image with
// no other step (no internet here). Stopping dev.sh stops the relays.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { attachmentHashes, bmp, bubbleWith, openChat, saveContact, sendImageAndTime, setUp, sha256, typeAndSend } from "./support/chat.mjs";
import { freePort } from "./support/worker.mjs";

const ROOT = path.resolve(import.meta.dirname, "..");
let dev;
let exited;
let log = "";
let url;
let relayPorts;
let persist;
let alice;
let bob;

/** Resolves true if something accepts TCP connections on 127.0.0.1:`port`. */
async function listening(port) {
  try {
    await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2000) });
    return true;
  } catch (e) {
    return e.cause?.code !== "ECONNREFUSED";
  }
}

before(async () => {
  const port = await freePort();
  relayPorts = [await freePort(), await freePort(), await freePort()];
  persist = mkdtempSync(path.join(tmpdir(), "kez-dev-d1-"));
  url = `http://127.0.0.1:${port}`;
  // What a user types, with the ports and the D1 folder moved out of the way of a real dev.sh.
  const env = { ...process.env, PORT: String(port), KEZ_RELAY_PORTS: relayPorts.join(" "), KEZ_PERSIST_DIR: persist };
  delete env.NOSTR_RELAYS;
  dev = spawn("bash", ["scripts/dev.sh"], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  dev.stdout.on("data", (d) => (log += d));
  dev.stderr.on("data", (d) => (log += d));
  exited = new Promise((resolve) => dev.once("exit", resolve));
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (dev.exitCode !== null) throw new Error(`dev.sh exited early:\n${log}`);
    if (Date.now() > deadline) throw new Error(`dev.sh did not answer within 180 s:\n${log}`);
    try {
      const response = await fetch(`${url}/v1/healthz`);
      if (response.headers.get("content-type")?.startsWith("application/json")) break;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 500));
  }
});

after(async () => {
  await alice?.close();
  await bob?.close();
  if (dev?.exitCode === null) {
    dev.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
  }
  rmSync(persist, { recursive: true, force: true });
});

describe("./scripts/dev.sh with no relays named", () => {
  test("serves its own three local relays to the app", async () => {
    const health = await (await fetch(`${url}/v1/healthz`)).json();
    assert.deepEqual(
      health.relays,
      relayPorts.map((p) => `ws://127.0.0.1:${p}`),
    );
  });

  test("two browser profiles chat and send an image, with no other step", async () => {
    ({ p: alice } = await setUp(url, "alice"));
    ({ p: bob } = await setUp(url, "bob"));
    await saveContact(alice, "bob");
    await saveContact(bob, "alice");
    await openChat(alice, "bob@localhost");
    await openChat(bob, "alice@localhost");
    await typeAndSend(alice, "hello from a fresh dev.sh");
    await bubbleWith(bob, "hello from a fresh dev.sh").waitFor({ timeout: 30_000 });
    const picture = bmp(300, 560); // ~500 KB: in pieces over the three 64 KiB relays
    const { width } = await sendImageAndTime(alice, bob, picture, "dev.bmp");
    assert.equal(width, 300);
    assert.ok((await attachmentHashes(bob)).includes(sha256(picture)));
    for (const p of [alice, bob]) assert.deepEqual(p.errors, [], `${p.name}: page errors`);
  });

  test("stopping dev.sh stops the relays", async () => {
    dev.kill("SIGTERM");
    await exited;
    for (const port of relayPorts) assert.equal(await listening(port), false, `relay on ${port} still listening`);
  });
});
