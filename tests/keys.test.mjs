// Moving a handle to a new key and giving it up, from the app's Settings in headless Chromium,
// against the worker and a local relay: each is signed in the browser, applied by the server
// with its log entry, and checked by the app against the log before it takes effect.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { screenshots } from "./support/browser.mjs";
import { openChat, readStore, saveContact, setUp, showView, typeAndSend, writeStore } from "./support/chat.mjs";
import { freshEnvelope, getJson, identity, postRegister } from "./support/kez.mjs";
import { releaseEnvelope, rotationEnvelope } from "../scripts/lib/registration.mjs";
import { startRelay } from "./support/relay.mjs";
import { startWorker } from "./support/worker.mjs";

let relay;
let worker;
let alice;
let bob;

before(async () => {
  relay = await startRelay();
  worker = await startWorker(["--var", `NOSTR_RELAYS:${relay.url}`, "--var", "LOOKUP_CACHE_SECONDS:0"]);
  alice = await setUp(worker.url, "alice");
  bob = await setUp(worker.url, "bob");
  // bob knows alice by her first key.
  await saveContact(bob.p, "alice");
});

after(async () => {
  await screenshots("keys", [alice?.p, bob?.p]);
  await alice?.p.close();
  await bob?.p.close();
  await worker?.stop();
  await relay?.close();
});

/** The texts of the messages the page keeps in IndexedDB. */
const storedTexts = async (p) => (await readStore(p, "messages")).map(({ value }) => value.text);

test("move to a new key: after a confirmation, the handle names a new key made in the browser, signed by both", async () => {
  const { page } = alice.p;
  await showView(alice.p, "Settings");
  await page.getByRole("button", { name: "Move to a new key…" }).click();
  await page.getByText("Move alice@localhost to a new key?").waitFor();
  await page.getByRole("button", { name: "Move to a new key", exact: true }).click();
  // The identity card shows the new key once the move is in the log and checked.
  const shown = page.getByTestId("primary");
  for (let i = 0; (await shown.textContent()).trim() === alice.primary.trim(); i++) {
    if (i > 300) throw new Error("the key never changed");
    await new Promise((r) => setTimeout(r, 100));
  }
  const next = (await shown.textContent()).trim();
  const found = await getJson(`${worker.url}/v1/u/alice`);
  assert.equal(found.body.primary, next);
  assert.equal(found.body.envelope.kez, "key_rotation");
  assert.equal(found.body.envelope.payload.old, alice.primary.trim());
  assert.equal((await getJson(`${worker.url}/v1/by-primary/${alice.primary.trim()}`)).status, 404);
  await page.getByTestId("registered").getByText("alice@localhost").waitFor();
  await page.getByTestId("backup-reminder").waitFor();
  assert.equal(await page.getByTestId("log-alarm").count(), 0);
  assert.equal((await page.getByTestId("handle-change-error").textContent()).trim(), "");
});

test("bob's app follows the move its pinned key signed: his contact is alice's new key, and his message reaches it", async () => {
  const next = (await alice.p.page.getByTestId("primary").textContent()).trim();
  // Looking alice up again: no key-change warning, the contact moves to the new key.
  await showView(bob.p, "New chat");
  await bob.p.page.getByLabel("Handle, handle@domain or key").fill("alice");
  await bob.p.page.getByRole("button", { name: "Look up" }).click();
  await bob.p.page.getByTestId("lookup-result").waitFor();
  assert.equal(await bob.p.page.getByTestId("lookup-key-change").count(), 0);
  const contacts = (await readStore(bob.p, "contacts")).map(({ value }) => [value.fqhn, value.primary]);
  assert.deepEqual(contacts.filter(([fqhn]) => fqhn === "alice@localhost"), [["alice@localhost", next]]);
  // And the chat goes on with her new key.
  await openChat(bob.p, "alice@localhost");
  await typeAndSend(bob.p, "still you?");
  // alice (who never saved bob) keeps it as a request to her new key.
  for (let i = 0; !(await storedTexts(alice.p)).includes("still you?"); i++) {
    if (i > 300) throw new Error("alice's new key never got bob's message");
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(await bob.p.page.getByTestId("log-alarm").count(), 0);
  // The old key's chat says where alice went, and leads there.
  await bob.p.page.goto(`${worker.url}/chat/${alice.primary.trim()}`);
  const moved = bob.p.page.getByTestId("moved");
  await moved.getByText("alice@localhost moved to a new key", { exact: false }).waitFor();
  assert.equal(await bob.p.page.getByTestId("claims").count(), 0, "a move its key signed is no claim on a handle pinned elsewhere");
  await bob.p.page.locator("#chat-title").getByText("alice@localhost's old key", { exact: false }).waitFor();
  await moved.getByRole("button", { name: "Open the chat with the new key" }).click();
  await bob.p.page.locator("#chat-title").getByText("alice@localhost", { exact: true }).waitFor();
  assert.ok(bob.p.page.url().endsWith(`/chat/${next}`));
});

test("give up the handle: after a confirmation, lookups answer 410 and the app keeps its key without a handle", async () => {
  const { page } = alice.p;
  const key = (await page.getByTestId("primary").textContent()).trim();
  await page.getByRole("button", { name: "Give up this handle…" }).click();
  await page.getByText("Give up alice@localhost?").waitFor();
  await page.getByRole("button", { name: "Give up this handle", exact: true }).click();
  await page.getByLabel("Handle", { exact: true }).waitFor();
  const gone = await getJson(`${worker.url}/v1/u/alice`);
  assert.equal(gone.status, 410);
  assert.equal(gone.body.envelope.payload.primary, key);
  assert.equal((await page.getByTestId("primary").textContent()).trim(), key, "the key stays");
  assert.equal(await page.getByTestId("log-alarm").count(), 0);
});

test("self-monitoring: a rotation of bob's handle made elsewhere (with his key) raises his alert at his next start", async () => {
  const { page } = bob.p;
  // A start with bob's identity notes where the log is; nothing is alarming yet.
  await startedWithoutAlarm(bob.p);
  // Another device (this test, with bob's seed) moves bob's handle to a key of its own.
  const { seed } = (await readStore(bob.p, "identity")).find(({ key }) => key === "self").value;
  const bobKey = identity(Buffer.from(Object.values(seed)).toString("hex"));
  assert.equal(bobKey.primary, bob.primary.trim());
  const moved = await getJson(`${worker.url}/v1/rotate`, { method: "POST", body: JSON.stringify(rotationEnvelope(bobKey, identity(), { handle: "bob", server: "localhost" })) });
  assert.equal(moved.status, 201, JSON.stringify(moved.body));
  // bob's next start reads the log since his last one, and finds a statement he did not make.
  await page.reload();
  const alarm = page.getByTestId("log-alarm");
  await alarm.waitFor({ timeout: 30_000 });
  assert.match(await alarm.textContent(), /someone made a statement about your handle/);
  assert.match(await alarm.textContent(), /key rotation of bob that this app did not make/);
});

/** How far the page's monitoring has read the log (its `log localhost` setting), once it has. */
async function monitoredUpTo(p, size) {
  for (let i = 0; i < 300; i++) {
    const monitored = (await readStore(p, "settings")).find(({ key }) => key === "app log localhost")?.value.monitored ?? null;
    if (monitored !== null && monitored >= size) return monitored;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${p.name} never read the log up to ${size}`);
}

const logSize = async () => Number((await (await fetch(`${worker.url}/log/checkpoint`)).text()).split("\n")[1]);

const MARKER = { server: "a marker this test put here" };

/**
 * Reloads the page and waits until that start's monitoring is over: it ends by rewriting
 * `monitor-unchecked`, over a marker put there first (with a log that did not grow, "read up
 * to the log's size" already held before the start). Then the start read the whole log and
 * raised no alarm.
 */
async function startedWithoutAlarm(p) {
  await writeStore(p, "settings", "app monitor-unchecked", MARKER);
  await p.page.reload();
  let unchecked = MARKER;
  for (let i = 0; unchecked?.server === MARKER.server; i++) {
    if (i > 300) throw new Error(`${p.name}'s start never finished its monitoring`);
    await new Promise((r) => setTimeout(r, 100));
    unchecked = (await readStore(p, "settings")).find(({ key }) => key === "app monitor-unchecked")?.value;
  }
  assert.equal(unchecked, undefined, "the start read the log");
  await monitoredUpTo(p, await logSize());
  assert.deepEqual((await readStore(p, "settings")).find(({ key }) => key === "app log-alarms")?.value ?? [], []);
  assert.equal(await p.page.getByTestId("log-alarm").count(), 0);
}

test("self-monitoring: a statement this app made itself (alice taking her handle back) raises nothing", async () => {
  const { page } = alice.p;
  await startedWithoutAlarm(alice.p);
  // alice takes her given-up handle back, from this app.
  await showView(alice.p, "Settings");
  const input = page.getByLabel("Handle", { exact: true });
  await input.fill("alice");
  await input.press("Enter");
  await page.getByTestId("registered").getByText("alice@localhost").waitFor();
  const size = await logSize();
  await page.reload();
  assert.equal(await monitoredUpTo(alice.p, size), size, "the next start read her registration");
  assert.equal(await page.getByTestId("log-alarm").count(), 0);
});

/** The identity of the key `p` holds, as another device restored from its seed would have it. */
async function sameKeyElsewhere(p) {
  const { seed } = (await readStore(p, "identity")).find(({ key }) => key === "self").value;
  return identity(Buffer.from(Object.values(seed)).toString("hex"));
}

/** The page's kept checkpoint of the home server's log, once it is `note`. */
async function keptCheckpoint(p, note) {
  for (let i = 0; i < 300; i++) {
    if ((await readStore(p, "settings")).find(({ key }) => key === "app log localhost")?.value.checkpoint === note) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${p.name} never kept the checkpoint ${note}`);
}

test("a move whose answer is lost: the next start finds the handle on the new key and takes it up, with no alarm", async () => {
  const { page } = alice.p;
  await startedWithoutAlarm(alice.p);
  const before = (await page.getByTestId("primary").textContent()).trim();
  // The server applies the move; its answer never reaches the app.
  await page.route("**/v1/rotate", async (route) => {
    await route.fetch();
    await route.fulfill({ status: 502, contentType: "text/plain", body: "bad gateway" });
  });
  const error = page.getByTestId("handle-change-error");
  try {
    await showView(alice.p, "Settings");
    await page.getByRole("button", { name: "Move to a new key…" }).click();
    await page.getByRole("button", { name: "Move to a new key", exact: true }).click();
    for (let i = 0; (await error.textContent()).trim() === ""; i++) {
      if (i > 300) throw new Error("the failed move was never reported");
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await page.unroute("**/v1/rotate");
  }
  const holder = (await getJson(`${worker.url}/v1/u/alice`)).body.primary;
  assert.notEqual(holder, before, "the server moved the handle");
  // alice tries again: the old key no longer holds the handle (409), and the key the first
  // try moved it to must not be lost to a new one.
  await page.getByRole("button", { name: "Move to a new key", exact: true }).click();
  await error.getByText("This handle is no longer held by this key", { exact: false }).waitFor();
  assert.equal((await page.getByTestId("primary").textContent()).trim(), before, "the page kept its key for now");
  await page.reload();
  const shown = page.getByTestId("primary");
  for (let i = 0; (await shown.textContent()).trim() !== holder; i++) {
    if (i > 300) throw new Error("the next start never took up the new key");
    await new Promise((r) => setTimeout(r, 100));
  }
  await page.getByTestId("registered").getByText("alice@localhost").waitFor();
  await monitoredUpTo(alice.p, await logSize());
  assert.equal(await page.getByTestId("log-alarm").count(), 0, "its own move, recorded before it was sent");
});

test("self-monitoring keeps watching a handle the directory stops naming (an unsigned 404 proves no release)", async () => {
  const carol = await setUp(worker.url, "carol");
  try {
    await startedWithoutAlarm(carol.p);
    // The operator drops carol's row: lookups of her key now say 404, and nothing is logged.
    assert.equal(worker.tamper("DELETE FROM registrations WHERE handle = 'carol'").changes, 1);
    await startedWithoutAlarm(carol.p);
    // The start looks its key up before it monitors: by now the 404 has been seen.
    assert.deepEqual(await readStore(carol.p, "registration"), [], "the app no longer names carol as hers");
    // Then the handle is given to another key, in the log.
    const taken = await postRegister(worker.url, freshEnvelope("localhost", { handle: "carol" }).envelope);
    assert.equal(taken.status, 201, JSON.stringify(taken.body));
    await carol.p.page.reload();
    const alarm = carol.p.page.getByTestId("log-alarm");
    await alarm.waitFor({ timeout: 30_000 });
    assert.match(await alarm.textContent(), /registration of carol that this app did not make/);
  } finally {
    await carol.p.close();
  }
});

test("a release made elsewhere (with the key): the next start no longer names the handle as the person's, offers it back, and raises the alert", async () => {
  const gwen = await setUp(worker.url, "gwen");
  try {
    await startedWithoutAlarm(gwen.p);
    const { seed } = (await readStore(gwen.p, "identity")).find(({ key }) => key === "self").value;
    const gwenKey = identity(Buffer.from(Object.values(seed)).toString("hex"));
    const given = await getJson(`${worker.url}/v1/release`, { method: "POST", body: JSON.stringify(releaseEnvelope(gwenKey, { handle: "gwen", server: "localhost" })) });
    assert.equal(given.status, 201, JSON.stringify(given.body));
    assert.equal((await getJson(`${worker.url}/v1/by-primary/${encodeURIComponent(gwenKey.primary)}`)).status, 410);
    await gwen.p.page.reload();
    const alarm = gwen.p.page.getByTestId("log-alarm");
    await alarm.waitFor({ timeout: 30_000 });
    assert.match(await alarm.textContent(), /release of gwen that this app did not make/);
    // The registration form is back (this key may take the handle back), and no handle is named.
    await gwen.p.page.getByLabel("Handle", { exact: true }).waitFor();
    assert.equal(await gwen.p.page.getByTestId("my-fqhn").count(), 0);
    assert.deepEqual(await readStore(gwen.p, "registration"), []);
  } finally {
    await gwen.p.close();
  }
});

test("self-monitoring reads from the person's registration: a statement made before the app's next start is caught there", async () => {
  // erin makes her identity and registers in one page load: no start has monitored yet.
  const erin = await setUp(worker.url, "erin");
  try {
    const moved = await getJson(`${worker.url}/v1/rotate`, { method: "POST", body: JSON.stringify(rotationEnvelope(await sameKeyElsewhere(erin.p), identity(), { handle: "erin", server: "localhost" })) });
    assert.equal(moved.status, 201, JSON.stringify(moved.body));
    await erin.p.page.reload();
    const alarm = erin.p.page.getByTestId("log-alarm");
    await alarm.waitFor({ timeout: 30_000 });
    assert.match(await alarm.textContent(), /key rotation of erin that this app did not make/);
  } finally {
    await erin.p.close();
  }
});

test("self-monitoring reads up to the newest checkpoint the app holds, though the server serves it an older one", async () => {
  const dave = await setUp(worker.url, "dave");
  try {
    await startedWithoutAlarm(dave.p);
    const older = await (await fetch(`${worker.url}/log/checkpoint`)).text();
    // Another device with dave's key moves his handle; the tree grows past `older`.
    const moved = await getJson(`${worker.url}/v1/rotate`, { method: "POST", body: JSON.stringify(rotationEnvelope(await sameKeyElsewhere(dave.p), identity(), { handle: "dave", server: "localhost" })) });
    assert.equal(moved.status, 201, JSON.stringify(moved.body));
    const newer = await (await fetch(`${worker.url}/log/checkpoint`)).text();
    // dave's app sees the newer checkpoint with a lookup's proof.
    await showView(dave.p, "New chat");
    await dave.p.page.getByLabel("Handle, handle@domain or key").fill("alice");
    await dave.p.page.getByRole("button", { name: "Look up" }).click();
    await dave.p.page.getByTestId("lookup-result").waitFor();
    await keptCheckpoint(dave.p, newer);
    // From now on the server serves dave's app the older checkpoint.
    assert.equal(worker.tamper("UPDATE log_state SET checkpoint = ? WHERE id = 1", older).changes, 1);
    try {
      assert.equal(await (await fetch(`${worker.url}/log/checkpoint`)).text(), older);
      await dave.p.page.reload();
      const alarm = dave.p.page.getByTestId("log-alarm");
      await alarm.waitFor({ timeout: 30_000 });
      assert.match(await alarm.textContent(), /key rotation of dave that this app did not make/);
    } finally {
      worker.tamper("UPDATE log_state SET checkpoint = ? WHERE id = 1", newer);
    }
  } finally {
    await dave.p.close();
  }
});

test("a start that cannot read the log says so: the handle is not shown as checked", async () => {
  const { page } = alice.p;
  await startedWithoutAlarm(alice.p);
  assert.equal(await page.getByTestId("log-unchecked").count(), 0);
  // Entry bundles fail while the table is away; checkpoints and lookups still answer.
  const size = await logSize();
  assert.equal((await postRegister(worker.url, freshEnvelope("localhost").envelope)).status, 201, "one more entry to read");
  worker.tamper("ALTER TABLE log_entries RENAME TO log_entries_away");
  try {
    assert.equal((await fetch(`${worker.url}/log/tile/entries/000.p/${size + 1}`)).status, 503);
    await page.reload();
    const unchecked = page.getByTestId("log-unchecked");
    await unchecked.waitFor({ timeout: 30_000 });
    assert.match(await unchecked.textContent(), /could not read localhost's log/);
  } finally {
    worker.tamper("ALTER TABLE log_entries_away RENAME TO log_entries");
  }
  await startedWithoutAlarm(alice.p);
  assert.equal(await page.getByTestId("log-unchecked").count(), 0, "gone once a start gets through");
});

test("self-monitoring checks what it reads against the signed tree: an entry served otherwise raises the alarm", async () => {
  const { page } = alice.p;
  await startedWithoutAlarm(alice.p);
  // A new statement enters the log; then the operator changes what is served as its entry and
  // leaves the tree as signed, as a server hiding a statement from a monitor would.
  assert.equal((await postRegister(worker.url, freshEnvelope("localhost").envelope)).status, 201);
  const size = await logSize();
  const hidden = JSON.stringify({ kez: "handle_registration", payload: { handle: "nobody-to-see" } });
  assert.equal(worker.tamper("UPDATE log_entries SET entry = ? WHERE idx = ?", hidden, size - 1).changes, 1);
  assert.match(await (await fetch(`${worker.url}/log/tile/entries/000.p/${size}`)).text(), /nobody-to-see/, "the edited entry is what is served");
  await page.reload();
  const alarm = page.getByTestId("log-alarm");
  await alarm.waitFor({ timeout: 30_000 });
  assert.match(await alarm.textContent(), /localhost showed something its own signed log contradicts: The log's entries do not match the tree it signed/);
});
