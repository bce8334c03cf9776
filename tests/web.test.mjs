// The web app end to end: the built app served by the worker in workerd (local D1), driven
// in real headless Chromium profiles. Screenshots of the main screens go to test-artifacts/.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";
import { openProfile } from "./support/browser.mjs";
import { freePort, startWorker } from "./support/worker.mjs";
import { freshEnvelope, postRegister } from "./support/kez.mjs";
import { readStore, showView } from "./support/chat.mjs";

const mnemonicVectors = JSON.parse(readFileSync(new URL("./vectors/mnemonic.json", import.meta.url), "utf8"));

let worker;
let remote;
let remoteDomain;
const profiles = [];
const people = {};
/** Origins of other servers a test had the app look a handle up at. */
const lookedUpAt = new Set();

async function profile(name, options) {
  const p = await openProfile(name, options);
  profiles.push(p);
  return p;
}

/** Opens the app and creates an identity; returns the key and fingerprint it shows. */
async function createIdentity(p) {
  await p.page.goto(worker.url);
  await p.page.getByRole("button", { name: "Create a new identity" }).click();
  const primary = await p.page.getByTestId("primary").textContent();
  const fingerprint = await p.page.getByTestId("fingerprint").textContent();
  assert.match(primary, /^ed25519:[0-9a-f]{64}$/);
  assert.match(fingerprint, /^([0-9A-F]{4} ){4}[0-9A-F]{4}$/);
  return { primary, fingerprint };
}

async function registerHandle(p, handle) {
  const input = p.page.getByLabel("Handle", { exact: true });
  await input.fill(handle);
  await input.press("Enter");
}

async function lookUp(p, query) {
  if (!(await p.page.getByLabel("Handle, handle@domain or key").isVisible())) await showView(p, "New chat");
  await p.page.getByLabel("Handle, handle@domain or key").fill(query);
  await p.page.getByRole("button", { name: "Look up" }).click();
}

/** D1's rows for a handle, as plain objects. */
function rows(handle) {
  return worker.query("SELECT handle, primary_key FROM registrations WHERE handle = ?", handle).map((r) => ({ ...r }));
}

before(async () => {
  // No relays: this file tests identity, registration and the directory (messaging is in
  // messaging.test.mjs), and the app must then open no connection at all.
  worker = await startWorker(["--var", "NOSTR_RELAYS:"]);
  // A second home server, for lookups of handle@another-domain through WebFinger.
  const port = await freePort();
  remoteDomain = `127.0.0.1:${port}`;
  remote = await startWorker(["--var", `SERVER_DOMAIN:${remoteDomain}`], port);
});

after(async () => {
  for (const p of profiles) await p.close();
  await worker?.stop();
  await remote?.stop();
});

describe("web app in headless Chromium", () => {
  test("alice creates an identity and registers a handle", async () => {
    const alice = await profile("alice");
    people.alice = await createIdentity(alice);
    const { page } = alice;
    await alice.screenshot("1-identity");

    // Live validation, before anything is sent.
    const input = page.getByLabel("Handle", { exact: true });
    await input.fill("Al");
    await page.getByText("Use lowercase letters only.").waitFor();
    assert.equal(await input.getAttribute("aria-invalid"), "true");
    assert.equal(await page.getByRole("button", { name: "Register" }).isDisabled(), true);
    await input.fill("admin");
    await page.getByText("“admin” is reserved. Choose another handle.").waitFor();

    await registerHandle(alice, "alice");
    await page.getByTestId("me").getByText("alice@localhost").waitFor();
    assert.deepEqual(rows("alice"), [{ handle: "alice", primary_key: people.alice.primary }]);
    await alice.screenshot("2-registered");
  });

  test("alice reloads and is still herself, still registered", async () => {
    const { page } = profiles[0];
    // Her own lookup right after registering carries the registration's bookmark, so a
    // replica that has not caught up could not tell her she has no handle.
    const lookups = [];
    const onRequest = (request) => {
      if (request.url().includes("/v1/by-primary/")) lookups.push(request.headers()["x-kez-bookmark"]);
    };
    page.on("request", onRequest);
    await page.reload();
    await page.getByTestId("me").getByText("alice@localhost").waitFor();
    page.off("request", onRequest);
    assert.ok(lookups.length > 0, "the app looked its key up");
    for (const bookmark of lookups) assert.match(bookmark ?? "", /^[0-9a-f]+(-[0-9a-f]+)+$/);
    await showView(profiles[0], "Settings");
    assert.equal(await page.getByTestId("primary").textContent(), people.alice.primary);
    assert.equal(await page.getByTestId("my-fqhn").textContent(), "alice@localhost");
  });

  test("a second tab waits while the first one runs the messenger, says so, and takes over when the first closes", async () => {
    const alice = profiles[0];
    const second = await alice.newTab();
    await second.goto(worker.url);
    await second.getByTestId("open-elsewhere").getByText("kez-chat is open in another tab of this browser.").waitFor();
    // The second shows nothing of the app meanwhile; the first goes on as it was.
    assert.equal(await second.getByTestId("me").count(), 0);
    await alice.page.getByTestId("me").getByText("alice@localhost").waitFor();
    await alice.page.close();
    await second.getByTestId("me").getByText("alice@localhost").waitFor();
    assert.equal(await second.getByTestId("open-elsewhere").count(), 0);
    alice.page = second;
  });

  test("bob sees a clear error for a taken handle, and nothing is written", async () => {
    const bob = await profile("bob");
    people.bob = await createIdentity(bob);
    await registerHandle(bob, "alice");
    await bob.page.getByTestId("register-error").getByText("That handle is already taken on this server. Try another one.").waitFor();
    assert.deepEqual(rows("alice"), [{ handle: "alice", primary_key: people.alice.primary }], "alice's binding is untouched");
    assert.equal(worker.query("SELECT handle FROM registrations WHERE primary_key = ?", people.bob.primary).length, 0);
    await bob.screenshot("3-handle-taken");
    await registerHandle(bob, "bob");
    await bob.page.getByTestId("me").getByText("bob@localhost").waitFor();
  });

  test("a registration whose answer was lost: the next try finds the handle the key already holds, checked in the log", async () => {
    const dora = await profile("dora");
    const { primary } = await createIdentity(dora);
    // The server registers dora; the answer never reaches her page.
    let lost = 0;
    await dora.page.route("**/v1/register", async (route) => {
      await route.fetch();
      lost++;
      await route.abort("connectionreset");
    });
    await registerHandle(dora, "dora");
    await dora.page.getByTestId("register-error").getByText("Could not reach the server", { exact: false }).waitFor();
    await dora.page.unroute("**/v1/register");
    assert.equal(lost, 1);
    assert.deepEqual(rows("dora"), [{ handle: "dora", primary_key: primary }], "the first try went through");
    // The second try is refused (the key has a handle), and the app takes up the one it has.
    await registerHandle(dora, "dora");
    await dora.page.getByTestId("me").getByText("dora@localhost").waitFor();
  });

  test("alice finds bob by handle, checks his fingerprint and saves him", async () => {
    const alice = profiles[0];
    const { page } = alice;
    await showView(alice, "New chat");
    await page.getByTestId("no-contacts").waitFor();
    await lookUp(alice, "Bob");
    const result = page.getByTestId("lookup-result");
    await result.getByText("bob@localhost").waitFor();
    assert.equal(await result.getByTestId("result-primary").textContent(), people.bob.primary);
    assert.equal(await result.getByTestId("result-fingerprint").textContent(), people.bob.fingerprint);
    await result.getByRole("button", { name: "Save contact" }).click();
    await page.getByTestId("contacts").getByText("bob@localhost").waitFor();
    await alice.screenshot("4-directory");
    await page.reload();
    await page.getByTestId("contacts").getByText("bob@localhost").waitFor();
    // Saved contacts are chats.
    await page.getByTestId("chats").getByText("bob@localhost").waitFor();
  });

  test("alice finds bob by his key", async () => {
    const alice = profiles[0];
    await lookUp(alice, people.bob.primary);
    const result = alice.page.getByTestId("lookup-result");
    await result.getByText("bob@localhost").waitFor();
    assert.equal(await result.getByTestId("result-fingerprint").textContent(), people.bob.fingerprint);
  });

  test("alice finds carol on another home server through WebFinger", async () => {
    const carol = freshEnvelope(remoteDomain, { handle: "carol" });
    assert.equal((await postRegister(remote.url, carol.envelope)).status, 201);
    const alice = profiles[0];
    await lookUp(alice, `carol@${remoteDomain}`);
    const result = alice.page.getByTestId("lookup-result");
    await result.getByText(`carol@${remoteDomain}`).waitFor();
    assert.equal(await result.getByTestId("result-primary").textContent(), carol.id.primary);
  });

  test("another server's x-kez-bookmark does not steer the app's lookups at its home server", async () => {
    const { page } = profiles[0];
    const planted = "00000000-ffffffff-00000000ffffffffffffffffffffffff";
    // The remote's answers (WebFinger, then the user) each carry a bookmark, exposed to this page.
    await page.route(`${remote.url}/**`, async (route) => {
      const response = await route.fetch();
      await route.fulfill({ response, headers: { ...response.headers(), "x-kez-bookmark": planted } });
    });
    const remoteAnswers = [];
    const homeLookups = [];
    // Read at once (`headers()` is synchronous), so every answer is counted before the assertions.
    const onResponse = (response) => {
      if (response.url().startsWith(remote.url)) remoteAnswers.push(response.headers()["x-kez-bookmark"]);
    };
    const onRequest = (request) => {
      if (request.url().startsWith(`${worker.url}/v1/u/`)) homeLookups.push(request.headers()["x-kez-bookmark"]);
    };
    page.on("response", onResponse);
    page.on("request", onRequest);
    try {
      await lookUp(profiles[0], `carol@${remoteDomain}`);
      await page.getByTestId("lookup-result").getByText(`carol@${remoteDomain}`).waitFor();
      await lookUp(profiles[0], "bob");
      await page.getByTestId("lookup-result").getByText("bob@localhost").waitFor();
    } finally {
      page.off("response", onResponse);
      page.off("request", onRequest);
      await page.unroute(`${remote.url}/**`);
    }
    assert.ok(remoteAnswers.includes(planted), "the remote's answers carried the bookmark");
    assert.ok(homeLookups.length > 0, "the app looked bob up at home");
    for (const bookmark of homeLookups) assert.notEqual(bookmark, planted);
  });

  test("a server whose log key is not named after it is not pinned: its checkpoints could be compared with no one's", async () => {
    const bob = profiles[1];
    const pinned = async () => (await readStore(bob, "settings")).some(({ key }) => key === `app log ${remoteDomain}`);
    assert.equal(await pinned(), false);
    // The remote's healthz, with its log key renamed (and the key ID made to fit the name).
    await bob.page.route(`${remote.url}/v1/healthz`, async (route) => {
      const response = await route.fetch();
      const body = await response.json();
      // name+id+base64: the base64 may itself hold a "+".
      const raw = Buffer.from(body.log.verifier_key.split("+").slice(2).join("+"), "base64");
      const id = createHash("sha256").update(Buffer.concat([Buffer.from("elsewhere/log\n"), raw])).digest().subarray(0, 4).toString("hex");
      await route.fulfill({ response, json: { ...body, log: { ...body.log, verifier_key: `elsewhere/log+${id}+${raw.toString("base64")}` } } });
    });
    try {
      await lookUp(bob, `carol@${remoteDomain}`);
      await bob.page.getByTestId("lookup-error").getByText(`log key is named elsewhere/log, not ${remoteDomain}/log`, { exact: false }).waitFor();
      assert.equal(await pinned(), false);
    } finally {
      await bob.page.unroute(`${remote.url}/v1/healthz`);
    }
    await lookUp(bob, `carol@${remoteDomain}`);
    await bob.page.getByTestId("lookup-result").getByText(`carol@${remoteDomain}`).waitFor();
    assert.equal(await pinned(), true);
  });

  test("unknown and malformed lookups get clear errors", async () => {
    const alice = profiles[0];
    const error = alice.page.getByTestId("lookup-error");
    await lookUp(alice, "nobody-here");
    await error.getByText("Nobody with that name is registered there.").waitFor();
    await lookUp(alice, "not a handle");
    await error.getByText(/is not a handle/).waitFor();
    await lookUp(alice, "ed25519:abcd");
    await error.getByText(/not a valid key/).waitFor();
  });

  test("a server that answers without end: the lookup stops reading once past any answer's size, and says so", async () => {
    const alice = profiles[0];
    let sent = 0;
    let dropped;
    const cut = new Promise((resolve) => (dropped = resolve));
    // Another "home server" whose WebFinger answer never ends (CORS allowed, so the page reads it).
    const endless = createServer((req, res) => {
      res.writeHead(200, { "content-type": "application/jrd+json", "access-control-allow-origin": "*" });
      const chunk = Buffer.alloc(16 * 1024, 0x20);
      const timer = setInterval(() => {
        res.write(chunk);
        sent += chunk.length;
      }, 1);
      res.on("close", () => {
        clearInterval(timer);
        dropped();
      });
    });
    const port = await freePort();
    await new Promise((resolve) => endless.listen(port, "127.0.0.1", resolve));
    lookedUpAt.add(`http://127.0.0.1:${port}`);
    try {
      await lookUp(alice, `mallory@127.0.0.1:${port}`);
      await alice.page.getByTestId("lookup-error").getByText("The server answered with more than any answer holds.").waitFor({ timeout: 30_000 });
      await cut; // the page closed the connection
      console.log(`# endless answer: the page stopped reading and closed the connection after ${(sent / 1024).toFixed(0)} KiB were sent`);
    } finally {
      endless.closeAllConnections();
      endless.close();
    }
  });

  test("an answer whose key is not the one its signed registration names is refused (a key of the server's own making is the pins' job: trust.test.mjs)", async () => {
    const alice = profiles[0];
    const mallory = freshEnvelope("localhost", { handle: "mallory" });
    // The real answer for bob, with the key in the body swapped for mallory's.
    await alice.page.route("**/v1/u/bob", async (route) => {
      const response = await route.fetch();
      const body = await response.json();
      await route.fulfill({ response, json: { ...body, primary: mallory.id.primary } });
    });
    await lookUp(alice, "bob");
    await alice.page.getByTestId("lookup-error").getByText("does not match the registration signed by the key", { exact: false }).waitFor();
    assert.equal(await alice.page.getByTestId("lookup-result").count(), 0);
    await alice.page.unroute("**/v1/u/bob");
  });

  test("alice's phrase restores the same key, and her handle, in a fresh profile", async () => {
    const { page } = profiles[0];
    await showView(profiles[0], "Settings");
    await page.getByRole("button", { name: "Show recovery phrase" }).click();
    const words = await page.getByTestId("phrase").locator("li").allTextContents();
    assert.equal(words.length, 24);

    const fresh = await profile("alice-restored");
    await fresh.page.goto(worker.url);
    await fresh.page.getByRole("button", { name: "Restore an identity" }).click();
    await fresh.page.getByLabel("Recovery phrase (12 or 24 words)").fill(words.join(" "));
    await fresh.page.getByRole("button", { name: "Restore", exact: true }).click();
    await fresh.page.getByTestId("me").getByText("alice@localhost").waitFor();
    await showView(fresh, "Settings");
    assert.equal(await fresh.page.getByTestId("primary").textContent(), people.alice.primary);
    assert.equal(await fresh.page.getByTestId("fingerprint").textContent(), people.alice.fingerprint);
    await fresh.screenshot("5-restored");
  });

  test("a 12-word phrase restores the key of the KEZ convention; a bad phrase is explained", async () => {
    const p = profiles.at(-1);
    const { page } = p;
    await page.getByRole("button", { name: "Forget on this device" }).click();
    await page.getByRole("button", { name: "Forget it" }).click();
    // The app loads again, with nothing of the identity left.
    await page.getByRole("button", { name: "Restore an identity" }).waitFor();
    for (const name of ["identity", "registration", "contacts", "messages", "peers"]) assert.deepEqual(await readStore(p, name), [], name);
    await page.getByRole("button", { name: "Restore an identity" }).click();
    const field = page.getByLabel("Recovery phrase (12 or 24 words)");
    await field.fill("abandon abandon abandon");
    await page.getByRole("button", { name: "Restore", exact: true }).click();
    await page.getByText("A recovery phrase has 12 or 24 words; this has 3.").waitFor();
    const twelve = mnemonicVectors.vectors.find((v) => v.phrase.split(" ").length === 12);
    await field.fill(twelve.phrase);
    await page.getByRole("button", { name: "Restore", exact: true }).click();
    await page.getByTestId("primary").getByText(twelve.primary).waitFor();
    // Not registered here: the registration form is offered.
    await page.getByLabel("Handle", { exact: true }).waitFor();
  });

  test("an exported identity file counts once it is checked, and imports as the same key; a wrong file is explained", async () => {
    const { page } = profiles[0];
    const state = page.getByTestId("backup-state");
    await state.getByText("Not backed up yet.").waitFor();
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export identity file" }).click()]);
    const file = await download.path();
    const backup = JSON.parse(readFileSync(file, "utf8"));
    assert.equal(backup.primary, people.alice.primary);
    assert.match(backup.seed, /^[0-9a-f]{64}$/);
    assert.equal(backup.phrase.split(" ").length, 24);

    // The page cannot know the download was kept: until the saved file is chosen again and
    // holds this key, it is not a backup.
    const check = page.getByTestId("backup-file-check");
    await check.waitFor();
    assert.match(await state.textContent(), /Not backed up yet\./);
    await page.getByTestId("backup-reminder").waitFor();
    const saved = page.getByLabel("Check the saved file");
    await saved.setInputFiles({ name: "x.json", mimeType: "application/json", buffer: Buffer.from("{}") });
    await check.getByText("That file is not a kez-chat identity backup.").waitFor();
    const [other] = mnemonicVectors.vectors;
    const othersBackup = { ...backup, primary: other.primary, seed: other.seed_hex, phrase: other.phrase };
    await saved.setInputFiles({ name: "other.json", mimeType: "application/json", buffer: Buffer.from(JSON.stringify(othersBackup)) });
    await check.getByText("That file is the backup of another key, not of this one.").waitFor();
    assert.match(await state.textContent(), /Not backed up yet\./);
    await saved.setInputFiles(file);
    await state.getByText("✓ Backed up.").waitFor();
    await check.waitFor({ state: "detached" });
    await page.getByTestId("backup-reminder").waitFor({ state: "detached" });

    const fresh = await profile("alice-from-file");
    await fresh.page.goto(worker.url);
    await fresh.page.getByRole("button", { name: "Restore an identity" }).click();
    await fresh.page.getByLabel("Import identity file").setInputFiles({ name: "x.json", mimeType: "application/json", buffer: Buffer.from("{}") });
    await fresh.page.getByText("That file is not a kez-chat identity backup.").waitFor();
    await fresh.page.getByLabel("Import identity file").setInputFiles(file);
    await fresh.page.getByTestId("me").getByText("alice@localhost").waitFor();
    await showView(fresh, "Settings");
    await fresh.page.getByTestId("primary").getByText(people.alice.primary).waitFor();
  });

  test("works from the keyboard alone", async () => {
    const keys = await profile("keyboard");
    const { page } = keys;
    await page.goto(worker.url);
    await page.getByRole("button", { name: "Create a new identity" }).waitFor();
    for (let i = 0; i < 10 && (await page.evaluate(() => document.activeElement?.textContent?.trim())) !== "Create a new identity"; i++) {
      await page.keyboard.press("Tab");
    }
    await page.keyboard.press("Enter");
    await page.getByTestId("primary").waitFor();
    // Tab on to the handle field, type, and submit with Enter.
    for (let i = 0; i < 15 && (await page.evaluate(() => document.activeElement?.id)) !== "handle-input"; i++) {
      await page.keyboard.press("Tab");
    }
    await page.keyboard.type("keys-only");
    await page.keyboard.press("Enter");
    await page.getByTestId("me").getByText("keys-only@localhost").waitFor();
  });

  test("fits a 360 px wide screen", async () => {
    const narrow = await profile("narrow", { viewport: { width: 360, height: 740 } });
    await createIdentity(narrow);
    await registerHandle(narrow, "narrow-screen");
    await narrow.page.getByTestId("me").waitFor();
    await lookUp(narrow, "alice");
    await narrow.page.getByTestId("lookup-result").waitFor();
    const width = await narrow.page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 360, `page is ${width} px wide`);
    await narrow.screenshot("6-narrow-360px");
  });

  test("no page error, and no request to any origin but the two home servers and those a handle was looked up at", () => {
    const allowed = new Set([new URL(worker.url).origin, new URL(remote.url).origin, ...lookedUpAt]);
    for (const p of profiles) {
      assert.deepEqual(p.errors, [], `${p.name}: page errors`);
      const foreign = p.requests.filter((u) => !allowed.has(new URL(u).origin));
      assert.deepEqual(foreign, [], `${p.name}: requests elsewhere`);
      assert.ok(p.requests.length > 0);
    }
  });
});
