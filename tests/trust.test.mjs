// The client's trust and safety, in headless Chromium with the worker and a local relay, and
// carol (a second client built from the app's protocol code) acting as an attacker: message
// requests and their quota under a flood from fresh keys, pinned keys when the home server
// swaps one, safety numbers, no silent replacement of a file on screen, deceptive file names,
// signed times, and keeping the identity (storage.persist, the backup reminder).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import canonicalize from "canonicalize";
import { openProfile, screenshots } from "./support/browser.mjs";
import { acceptRequest, attachmentHashes, bmp, bubbleWith, image, openChat, openRequest, readStore, saveContact, setUp, sha256, showView, statusOf, typeAndSend } from "./support/chat.mjs";
import { freshEnvelope, identity as nodeIdentity, postRegister, signCheckpoint } from "./support/kez.mjs";
import { loadProtocol } from "./support/protocol.mjs";
import { startRelay } from "./support/relay.mjs";
import { startWorker } from "./support/worker.mjs";

let worker;
let relay;
let alice;
let bob;
const people = {};
let proto;
/** carol: registered, driven from Node with the app's own protocol code. */
let carol;

/** A sealed event from `sender` (a protocol identity) to `to` (a primary key). */
function eventFrom(sender, to, body, data = undefined, { id = undefined, sentAt = undefined } = {}) {
  const recipient = proto.parsePrimary(to);
  return proto.wrap(proto.seal(proto.encodeMessage(sender, to, body, data, id, sentAt), recipient), recipient);
}

/** Publishes events as fast as the relay answers (no pacing: an attacker's script), waiting for every OK. */
async function flood(events) {
  const ws = new WebSocket(relay.url);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`cannot connect to ${relay.url}`));
  });
  const waiting = new Map();
  ws.onmessage = (m) => {
    const [type, id, ok, why] = JSON.parse(m.data);
    if (type === "OK") waiting.get(id)?.(ok ? null : why);
  };
  const answers = events.map((e) => new Promise((resolve) => waiting.set(e.id, resolve)));
  for (const e of events) ws.send(JSON.stringify(["EVENT", e]));
  const refusals = (await Promise.all(answers)).filter((why) => why !== null);
  ws.close();
  assert.deepEqual(refusals, [], "the relay took every event");
}

const fresh = () => proto.identityFromSeed(randomBytes(32));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const eventFrames = (p, from = 0) => p.framesSent.slice(from).filter((f) => f.data.startsWith('["EVENT"'));

/** Waits until a message with `text` is stored in the page's IndexedDB (handled, even if not shown). */
async function storedText(p, text) {
  for (let tries = 0; !(await readStore(p, "messages")).some((m) => m.value.text === text); tries++) {
    if (tries > 300) throw new Error(`${p.name} never stored ${JSON.stringify(text)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  // Takes events of 256 KiB (the app, told nothing by NIP-11, sends at most 64 KiB), so carol
  // can send the version 1 chunks an older client would.
  relay = await startRelay({ maxEventSize: 262_144 });
  worker = await startWorker(["--var", `NOSTR_RELAYS:${relay.url}`]);
  ({ p: alice, primary: people.alice } = await setUp(worker.url, "alice"));
  ({ p: bob, primary: people.bob } = await setUp(worker.url, "bob"));
  proto = await loadProtocol();
  const seed = nodeIdentity();
  carol = proto.identityFromSeed(Buffer.from(seed.seedHex, "hex"));
  people.carol = carol.primary;
  assert.equal((await postRegister(worker.url, freshEnvelope("localhost", { handle: "carol", id: seed }).envelope)).status, 201);
});

after(async () => {
  await screenshots("trust", [alice, bob]);
  await alice?.close();
  await bob?.close();
  await worker?.stop();
  await relay?.close();
});

describe("trust and safety in the web app", () => {
  test("a first message from someone new is a request: no receipt, no lookup until opened; first-contact and later latency", async () => {
    await saveContact(alice, "bob");
    await openChat(alice, "bob@localhost");
    const aliceFingerprint = proto.fingerprint(proto.parsePrimary(people.alice));
    const bobRequestsBefore = bob.requests.length;

    let start = Date.now();
    await typeAndSend(alice, "first contact");
    const request = bob.page.getByRole("button", { name: `Open request from Unverified key ${aliceFingerprint}` });
    await request.waitFor({ timeout: 60_000 });
    const first = Date.now() - start;
    await bob.page.getByTestId("request-count").getByText("(1)").waitFor();
    await typeAndSend(alice, "are you there?");
    const lookupsBeforeOpening = bob.requests.slice(bobRequestsBefore).filter((u) => u.includes("/v1/by-primary/"));

    await openRequest(bob, `Unverified key ${aliceFingerprint}`);
    // Both handled (the second long after the first's receipt would have gone): nothing was
    // sent back, and nothing was asked about alice's key before bob opened the request.
    await bubbleWith(bob, "are you there?").waitFor({ timeout: 30_000 });
    assert.deepEqual(lookupsBeforeOpening, [], "no lookup before opening");
    assert.equal(eventFrames(bob).length, 0, "bob sent no event");
    assert.equal(await bubbleWith(alice, "first contact").getAttribute("data-status"), "sent");
    // Opening asks the directory: the signed binding names her, as a claim, not yet a contact.
    await bob.page.locator("#chat-title").getByText("alice@localhost", { exact: true }).waitFor({ timeout: 30_000 });
    assert.equal(await bob.page.getByLabel("Message", { exact: true }).count(), 0, "no composer before accepting");
    await acceptRequest(bob);
    await statusOf(bubbleWith(alice, "first contact"), "delivered");
    // Accepting pins her handle: she is a contact now.
    await showView(bob, "New chat");
    await bob.page.getByTestId("contacts").getByText("alice@localhost").waitFor();
    await openChat(bob, "alice@localhost");

    const later = [];
    for (let i = 0; i < 5; i++) {
      start = Date.now();
      await typeAndSend(alice, `later message ${i}`);
      await bubbleWith(bob, `later message ${i}`).waitFor({ timeout: 30_000 });
      later.push(Date.now() - start);
    }
    console.log(`# first contact: ${first} ms from alice pressing Enter to bob's Requests showing her; later messages: p50 ${median(later)} ms (${later.join(", ")} ms) to the open chat`);
  });

  test("safety numbers: equal on both sides, different for a third person, verified only after comparing", async () => {
    await alice.page.getByRole("button", { name: "Safety number" }).click();
    await bob.page.getByRole("button", { name: "Safety number" }).click();
    const numberOf = async (p) => (await p.page.getByTestId("safety-number").textContent()).replace(/\s/g, "");
    const aliceSees = await numberOf(alice);
    assert.match(aliceSees, /^\d{60}$/);
    assert.equal(await numberOf(bob), aliceSees);
    for (const p of [alice, bob]) {
      assert.equal((await p.page.getByTestId("safety-state").textContent()).trim(), "Not compared yet.");
      assert.equal((await p.page.getByTestId("trust-state").textContent()).trim(), "Not compared");
    }

    // A wrong number is refused and changes nothing.
    const wrong = aliceSees.slice(0, 59) + ((Number(aliceSees[59]) + 1) % 10);
    await alice.page.getByLabel("Their safety number").fill(wrong);
    await alice.page.getByRole("button", { name: "Compare" }).click();
    await alice.page.getByTestId("safety-error").getByText("These numbers do not match", { exact: false }).waitFor();
    assert.equal((await alice.page.getByTestId("safety-state").textContent()).trim(), "Not compared yet.");

    // alice scans a picture of bob's code: the QR holds exactly the number.
    await bob.page.locator(".qr svg").waitFor();
    const qr = await bob.page.locator(".qr").screenshot();
    await alice.page.getByTestId("safety-scan").setInputFiles({ name: "bob-code.png", mimeType: "image/png", buffer: qr });
    await alice.page.getByTestId("safety-state").getByText("✓ Verified", { exact: false }).waitFor();
    assert.equal((await alice.page.getByTestId("trust-state").textContent()).trim(), "✓ Verified");
    // bob types what alice's screen shows, grouped as people read it.
    await bob.page.getByLabel("Their safety number").fill(aliceSees.match(/\d{5}/g).join(" "));
    await bob.page.getByRole("button", { name: "Compare" }).click();
    await bob.page.getByTestId("safety-state").getByText("✓ Verified", { exact: false }).waitFor();

    // With carol, alice has another number.
    await saveContact(alice, "carol");
    await openChat(alice, "carol@localhost");
    await alice.page.getByRole("button", { name: "Safety number" }).click();
    const withCarol = await numberOf(alice);
    assert.match(withCarol, /^\d{60}$/);
    assert.notEqual(withCarol, aliceSees);
    assert.equal((await alice.page.getByTestId("trust-state").textContent()).trim(), "Not compared");
    await openChat(alice, "bob@localhost");
  });

  test("a sender cannot replace a file already shown: same message id, or the same file id, with other bytes", async () => {
    await saveContact(bob, "carol");
    const original = bmp(40, 40);
    const swapped = bmp(40, 40);
    const id = proto.newId();
    const file_id = proto.newId();
    const body = (bytes, type = "kez-file-v2") => ({ type, mode: "inline", file_id, name: "photo.bmp", mime: "image/bmp", size: bytes.length, sha256: sha256(bytes) });
    await flood([eventFrom(carol, people.bob, body(original), original, { id })]);
    await openChat(bob, "carol@localhost");
    await image(bob, "photo.bmp").waitFor({ timeout: 30_000 });
    await flood([
      eventFrom(carol, people.bob, body(swapped), swapped, { id }), // the same message again, other bytes
      eventFrom(carol, people.bob, body(swapped), swapped), // a new message reusing the file id
      eventFrom(carol, people.bob, body(swapped, "kez-file-v1"), swapped), // the same, as an older client
    ]);
    // A transfer under the same file id: an older client's pointer and its one chunk (which,
    // assembled, would be stored under that key), and a version 2 pointer.
    const big = randomBytes(81_921);
    const v1 = { type: "kez-file-v1", mode: "pointer", file_id, name: "photo.bmp", mime: "image/bmp", size: big.length, chunks: 1, sha256: sha256(big) };
    const v2 = { ...body(big), mode: "pieces", scheme: proto.PIECE_SCHEME, piece_bytes: 81_922, k: 1, n: 2 };
    await flood([
      eventFrom(carol, people.bob, v1),
      eventFrom(carol, people.bob, { type: "kez-file-chunk-v1", file_id, i: 0, n: 1 }, big),
      eventFrom(carol, people.bob, v2),
      eventFrom(carol, people.bob, { type: "text", text: "did it change?" }),
    ]);
    await bubbleWith(bob, "did it change?").waitFor({ timeout: 30_000 });
    await bob.page.reload();
    await openChat(bob, "carol@localhost");
    await image(bob, "photo.bmp").waitFor();
    const hashes = await attachmentHashes(bob);
    assert.ok(hashes.includes(sha256(original)), "the original is kept");
    assert.ok(!hashes.includes(sha256(swapped)) && !hashes.includes(sha256(big)), "the other bytes were never stored");
    assert.equal((await readStore(bob, "messages")).filter((m) => m.key === `in:${people.carol}/${file_id}`).length, 0, "no transfer entry under that file id");
    assert.equal(await image(bob, "photo.bmp").count(), 1, "one bubble");
    // The bubble shows the one file kept under carol's file id, which (above) is the original.
    assert.equal((await readStore(bob, "attachments")).filter((a) => a.key === `${people.carol}/${file_id}`).length, 1);
  });

  test("file names lose bidi overrides and C1 controls; a sent HTML file is kept as plain bytes", async () => {
    const pdf = Buffer.from("%PDF-1.4 not really\n");
    const body = { type: "kez-file-v2", mode: "inline", file_id: proto.newId(), name: "invoice\u202Efdp.exe\u0085", mime: "application/pdf", size: pdf.length, sha256: sha256(pdf) };
    await flood([eventFrom(carol, people.bob, body, pdf)]);
    const link = bob.page.getByTestId("download").filter({ hasText: "invoice" });
    await link.waitFor({ timeout: 30_000 });
    assert.equal((await link.textContent()).trim(), "⬇ invoicefdp.exe");
    assert.equal(await link.getAttribute("download"), "invoicefdp.exe");

    await alice.page.getByTestId("file-input").setInputFiles({ name: "page.html", mimeType: "text/html", buffer: Buffer.from("<script>alert(1)</script>") });
    await alice.page.getByTestId("bubble").filter({ hasText: "page.html" }).getByTestId("status").getByText("Delivered").waitFor({ timeout: 30_000 });
    const kept = (await readStore(alice, "attachments")).map((a) => a.value.type);
    assert.ok(kept.length >= 1);
    assert.ok(kept.every((t) => t === "application/octet-stream" || t.startsWith("image/")), `kept as ${kept}`);
    assert.ok(kept.includes("application/octet-stream"));
  });

  test("each bubble shows the signed time, the chat is ordered by it, and a message two days late is flagged", async () => {
    const twoDaysAgo = Date.now() - 2 * 24 * 3600_000;
    await flood([eventFrom(carol, people.bob, { type: "text", text: "written two days ago" }, undefined, { sentAt: twoDaysAgo })]);
    const late = bubbleWith(bob, "written two days ago");
    await late.waitFor({ timeout: 30_000 });
    assert.equal(await late.getByTestId("sent-at").getAttribute("datetime"), new Date(twoDaysAgo).toISOString());
    await late.getByTestId("delayed").waitFor();
    // Ordered by its signed time: before everything carol sent today, though it arrived last.
    const texts = await bob.page.getByTestId("bubble").allTextContents();
    assert.match(texts[0], /written two days ago/);
    assert.equal(await bubbleWith(bob, "did it change?").getByTestId("delayed").count(), 0);
  });

  test("a message signed days before this device first asked its relay is not flagged as delayed; one the relay hands over only after it was asked is", async () => {
    const seed = nodeIdentity();
    const gina = proto.identityFromSeed(Buffer.from(seed.seedHex, "hex"));
    assert.equal((await postRegister(worker.url, freshEnvelope("localhost", { handle: "gina", id: seed }).envelope)).status, 201);
    const threeDaysAgo = Date.now() - 3 * 24 * 3600_000;
    const waited = "written before gina's device ever asked";
    await flood([eventFrom(carol, gina.primary, { type: "text", text: waited }, undefined, { sentAt: threeDaysAgo })]);
    const p = await openProfile("gina");
    try {
      await p.page.goto(worker.url);
      await p.page.getByRole("button", { name: "Restore an identity" }).click();
      const backup = { kez: "identity_backup", version: 1, primary: gina.primary, seed: seed.seedHex };
      await p.page.getByLabel("Import identity file").setInputFiles({ name: "gina.json", mimeType: "application/json", buffer: Buffer.from(JSON.stringify(backup)) });
      await p.page.getByTestId("me").getByText("gina@localhost").waitFor();
      const inbox = proto.inboxTag(gina.publicKey);
      for (let tries = 0; !(await readStore(p, "settings")).some((s) => typeof s.key === "string" && s.key.startsWith("caught-up ") && s.key.endsWith(` ${inbox}`)); tries++) {
        if (tries > 300) throw new Error("gina's app never caught up with the relay");
        await new Promise((r) => setTimeout(r, 100));
      }
      const heldBack = "held back by the relay until after gina had asked";
      await flood([eventFrom(carol, gina.primary, { type: "text", text: heldBack }, undefined, { sentAt: threeDaysAgo })]);
      await openRequest(p, `Unverified key ${proto.fingerprint(carol.publicKey)}`);
      await bubbleWith(p, heldBack).getByTestId("delayed").waitFor();
      await bubbleWith(p, waited).waitFor();
      assert.equal(await bubbleWith(p, waited).getByTestId("delayed").count(), 0);
    } finally {
      await p.close();
    }
  });

  test("500 messages from 500 fresh keys land in Requests: no receipts, no lookups, alice's own message still goes; the quota holds", async () => {
    // bob's chat with alice is open; alice's with bob too.
    await openChat(bob, "alice@localhost");
    const strangers = Array.from({ length: 500 }, fresh);
    const events = strangers.map((s, i) => eventFrom(s, people.alice, { type: "text", text: `buy now ${i}` }));
    const framesBefore = alice.framesSent.length;
    const requestsBefore = alice.requests.length;
    const flooding = flood(events);
    const start = Date.now();
    await typeAndSend(alice, "sent during the flood");
    await bubbleWith(bob, "sent during the flood").waitFor({ timeout: 60_000 });
    const delivered = Date.now() - start;
    await statusOf(bubbleWith(alice, "sent during the flood"), "delivered", 60_000);
    await flooding;
    await alice.page.getByTestId("request-count").getByText("(500)").waitFor({ timeout: 120_000 });
    console.log(`# flood: alice's message reached bob in ${delivered} ms while 500 messages from 500 fresh keys arrived; all 500 in Requests after ${Date.now() - start} ms`);

    // One more key sends 60 messages: 50 are kept (REQUEST_QUOTA), the rest dropped.
    const pushy = fresh();
    const pushed = Array.from({ length: 60 }, (_, i) => eventFrom(pushy, people.alice, { type: "text", text: `again ${i}` }));
    await flood(pushed);
    // Events are handled in arrival order: once a later marker is stored, all 60 were handled.
    // (From one more stranger: a contact's marker would get a receipt.)
    const marker = fresh();
    strangers.push(marker);
    await flood([eventFrom(marker, people.alice, { type: "text", text: "a marker after the sixty" })]);
    await storedText(alice, "a marker after the sixty");
    await alice.page.getByTestId("request-count").getByText("(502)").waitFor({ timeout: 60_000 });
    const kept = (await readStore(alice, "messages")).filter((m) => m.value.peer === pushy.primary);
    assert.equal(kept.length, 50);
    assert.equal((await readStore(alice, "peers")).find((p) => p.key === pushy.primary).value.held.messages, 50);
    assert.deepEqual(kept.map((m) => m.value.text).sort(), Array.from({ length: 50 }, (_, i) => `again ${i}`).sort());
    // Only what was taken is remembered as handled: the ten the quota dropped leave no trace.
    const seen = new Set((await readStore(alice, "seen")).map(({ key }) => key));
    assert.equal(pushed.filter((event) => seen.has(event.id)).length, 50);

    // alice sent only her own message (one event to the one relay), nothing to any stranger,
    // and asked the directory about none of them.
    assert.equal(eventFrames(alice, framesBefore).length, 1);
    const strangerKeys = [...strangers, pushy].map((s) => s.primary.slice(8));
    assert.deepEqual(alice.requests.slice(requestsBefore).filter((u) => strangerKeys.some((k) => u.includes(k))), []);

    // Block: the key's messages go and what it sends later is dropped.
    await openRequest(alice, `Unverified key ${proto.fingerprint(pushy.publicKey)}`);
    await alice.page.getByTestId("request").getByRole("button", { name: "Block…" }).click();
    await alice.page.getByTestId("request").getByRole("button", { name: "Block", exact: true }).click();
    await alice.page.getByTestId("request-count").getByText("(501)").waitFor();
    await flood([eventFrom(pushy, people.alice, { type: "text", text: "after the block" })]);
    await flood([eventFrom(carol, people.alice, { type: "text", text: "a marker after the block" })]);
    await storedText(alice, "a marker after the block");
    assert.equal((await readStore(alice, "messages")).filter((m) => m.value.peer === pushy.primary).length, 0);
    // Unblocked, it is a request again the next time it writes.
    await alice.page.getByText("Blocked keys (1)").click();
    await alice.page.getByTestId("blocked").getByRole("button", { name: `Unblock ${pushy.primary}` }).click();
    await alice.page.getByTestId("blocked").waitFor({ state: "detached" });
    await flood([eventFrom(pushy, people.alice, { type: "text", text: "after the unblock" })]);
    await alice.page.getByTestId("request-count").getByText("(502)").waitFor({ timeout: 60_000 });

    // After a flood, one click clears Requests; the chats stay.
    await alice.page.getByRole("button", { name: "Delete all requests…" }).click();
    await alice.page.getByRole("alertdialog").getByRole("button", { name: "Delete all", exact: true }).click();
    await alice.page.getByTestId("requests").waitFor({ state: "detached", timeout: 60_000 });
    const left = new Set((await readStore(alice, "messages")).map((m) => m.value.peer));
    assert.ok(strangers.every((s) => !left.has(s.primary)), "no stranger's message is left");
    assert.ok(left.has(people.bob));
    await openChat(alice, "bob@localhost");
  });

  test("a request's message sent again in other events (anyone who saw it can) counts once against its quota", async () => {
    const sender = fresh();
    const id = randomBytes(16).toString("hex");
    const copies = Array.from({ length: 10 }, () => eventFrom(sender, people.alice, { type: "text", text: "said once, sent ten times" }, undefined, { id }));
    assert.equal(new Set(copies.map((e) => e.id)).size, 10, "ten events");
    await flood(copies);
    const marker = fresh();
    await flood([eventFrom(marker, people.alice, { type: "text", text: "a marker after the copies" })]);
    await storedText(alice, "a marker after the copies");
    assert.deepEqual((await readStore(alice, "peers")).find((p) => p.key === sender.primary).value.held, { messages: 1, bytes: "said once, sent ten times".length });
    assert.equal((await readStore(alice, "messages")).filter((m) => m.value.peer === sender.primary).length, 1);
  });

  test("a contact's message sent again in other events is shown once, and the copies are not remembered (anyone who saw it can send them without end)", async () => {
    const id = randomBytes(16).toString("hex");
    const text = "a contact's text, sent eleven times";
    const original = eventFrom(carol, people.alice, { type: "text", text }, undefined, { id });
    await flood([original]);
    await storedText(alice, text);
    const copies = Array.from({ length: 10 }, () => eventFrom(carol, people.alice, { type: "text", text }, undefined, { id }));
    await flood(copies);
    await flood([eventFrom(carol, people.alice, { type: "text", text: "a marker after carol's copies" })]);
    await storedText(alice, "a marker after carol's copies");
    const seen = new Set((await readStore(alice, "seen")).map((s) => s.key));
    assert.ok(seen.has(original.id), "the event taken is remembered");
    assert.deepEqual(copies.filter((e) => seen.has(e.id)), [], "no copy is remembered");
    assert.equal((await readStore(alice, "messages")).filter((m) => m.value.text === text).length, 1);
  });

  test("a deleted request does not come back in new events wrapping its boxes; what the key writes anew does", async () => {
    const sender = fresh();
    const id = randomBytes(16).toString("hex");
    const text = "a request deleted, then sent again in a new event";
    await flood([eventFrom(sender, people.alice, { type: "text", text }, undefined, { id })]);
    await storedText(alice, text);
    await openRequest(alice, `Unverified key ${proto.fingerprint(sender.publicKey)}`);
    const request = alice.page.getByTestId("request");
    await request.getByRole("button", { name: "Delete…" }).click();
    await request.getByRole("button", { name: "Delete", exact: true }).click();
    await request.waitFor({ state: "detached" });
    const fromSender = async () => (await readStore(alice, "messages")).filter((m) => m.value.peer === sender.primary).map((m) => m.value.text);
    for (let tries = 0; (await fromSender()).length > 0; tries++) {
      if (tries > 100) throw new Error("the request was never deleted");
      await new Promise((r) => setTimeout(r, 100));
    }
    await flood([eventFrom(sender, people.alice, { type: "text", text }, undefined, { id })]);
    await flood([eventFrom(sender, people.alice, { type: "text", text: "written anew after the delete" })]);
    await storedText(alice, "written anew after the delete");
    assert.deepEqual(await fromSender(), ["written anew after the delete"]);
    // As the tests after this expect: alice's chat with bob open.
    await openChat(alice, "bob@localhost");
  });

  test("the seed survives a reload, persist() is asked for, and the backup reminder stays until two words are re-typed", async () => {
    const erin = await openProfile("erin");
    try {
      await erin.page.context().addInitScript(() => {
        const persist = navigator.storage.persist.bind(navigator.storage);
        window.kezPersistCalls = 0;
        navigator.storage.persist = () => ((window.kezPersistCalls += 1), persist());
      });
      await erin.page.goto(worker.url);
      await erin.page.getByRole("button", { name: "Create a new identity" }).click();
      const primary = await erin.page.getByTestId("primary").textContent();
      await erin.page.getByTestId("backup-reminder").waitFor();
      assert.ok((await erin.page.evaluate(() => window.kezPersistCalls)) >= 1, "persist() was requested");
      await erin.page.getByTestId("backup-state").getByText(/This browser (keeps|may clear)/).waitFor();
      await erin.page.reload();
      assert.equal(await erin.page.getByTestId("primary").textContent(), primary);
      await erin.page.getByTestId("backup-reminder").waitFor();

      await erin.page.getByRole("button", { name: "Show recovery phrase" }).click();
      const words = await erin.page.getByTestId("phrase").locator("li").allTextContents();
      assert.equal(words.length, 24);
      await erin.page.getByRole("button", { name: "I wrote the phrase down" }).click();
      const quiz = erin.page.getByTestId("backup-quiz");
      const position = async (i) => Number((await quiz.locator("label").nth(i).textContent()).replace("Word ", ""));
      const [a, b] = [await position(0), await position(1)];
      await erin.page.getByLabel(`Word ${a}`, { exact: true }).fill(words[a - 1]);
      await erin.page.getByLabel(`Word ${b}`, { exact: true }).fill(words[a - 1] === words[b - 1] ? "wrong" : words[a - 1]);
      await quiz.getByRole("button", { name: "Confirm backup" }).click();
      await quiz.getByText("That is not what the phrase says", { exact: false }).waitFor();
      await erin.page.getByTestId("backup-reminder").waitFor();
      await erin.page.getByLabel(`Word ${b}`, { exact: true }).fill(` ${words[b - 1].toUpperCase()} `);
      await quiz.getByRole("button", { name: "Confirm backup" }).click();
      await erin.page.getByTestId("backup-reminder").waitFor({ state: "detached" });
      await erin.page.reload();
      assert.equal(await erin.page.getByTestId("primary").textContent(), primary);
      await erin.page.getByTestId("backup-state").getByText("✓ Backed up.").waitFor();
      assert.equal(await erin.page.getByTestId("backup-reminder").count(), 0);
    } finally {
      await erin.close();
    }
  });

  test("a database from before requests (version 1) upgrades in place: same seed, its conversations accepted", async () => {
    const frank = await openProfile("frank");
    try {
      // The page's origin, without the app: version 1's schema, as the previous release made it.
      await frank.page.goto(`${worker.url}/v1/healthz`);
      const seedHex = randomBytes(32).toString("hex");
      const [old, unlooked, dora] = [fresh(), fresh(), fresh()];
      await frank.page.evaluate(
        ({ seedHex, peer, unlooked, contact }) =>
          new Promise((resolve, reject) => {
            const request = indexedDB.open("kez-chat", 1);
            request.onupgradeneeded = () => {
              const db = request.result;
              for (const name of ["identity", "registration", "attachments", "seen", "settings"]) db.createObjectStore(name);
              db.createObjectStore("contacts", { keyPath: "primary" });
              const messages = db.createObjectStore("messages", { keyPath: "id" });
              messages.createIndex("peer", "peer");
              messages.createIndex("status", "status");
              db.createObjectStore("chunks", { keyPath: ["file", "i"] }).createIndex("file", "file");
              db.createObjectStore("peers", { keyPath: "primary" });
            };
            request.onerror = () => reject(request.error);
            request.onsuccess = () => {
              const db = request.result;
              const tx = db.transaction(["identity", "peers", "messages", "contacts"], "readwrite");
              tx.objectStore("identity").put({ seed: Uint8Array.from(seedHex.match(/../g).map((h) => parseInt(h, 16))), createdAt: "2026-11-01T00:00:00.000Z" }, "self");
              tx.objectStore("peers").put({ primary: peer, fqhn: null, checkedAt: 1 });
              tx.objectStore("messages").put({ id: "0".repeat(32), peer, direction: "in", text: "from before the upgrade", status: "received", sentAt: Date.now(), at: Date.now() });
              // A conversation whose sender's lookup never finished: no peer record.
              tx.objectStore("messages").put({ id: "1".repeat(32), peer: unlooked, direction: "in", text: "never looked up", status: "received", sentAt: Date.now(), at: Date.now() });
              tx.objectStore("contacts").put({ primary: contact, fqhn: "dora@localhost", handle: "dora", server: "localhost", fingerprint: "-", savedAt: "2026-11-01T00:00:00.000Z" });
              tx.oncomplete = () => (db.close(), resolve());
            };
          }),
        { seedHex, peer: old.primary, unlooked: unlooked.primary, contact: dora.primary },
      );
      await frank.page.goto(worker.url);
      // An identity from before backups were confirmed is reminded of it.
      await frank.page.getByTestId("backup-reminder").waitFor();
      // Someone with conversations goes straight to them, handle or not.
      await showView(frank, "Settings");
      assert.equal(await frank.page.getByTestId("primary").textContent(), proto.identityFromSeed(Buffer.from(seedHex, "hex")).primary);
      // The old conversation is a chat, not a request.
      await frank.page.getByRole("button", { name: `Open chat with Unverified key ${proto.fingerprint(old.publicKey)}` }).waitFor();
      await frank.page.getByRole("button", { name: `Open chat with Unverified key ${proto.fingerprint(unlooked.publicKey)}` }).waitFor();
      await frank.page.getByRole("button", { name: "Open chat with dora@localhost" }).waitFor();
      assert.equal(await frank.page.getByTestId("requests").count(), 0);
      const peers = (await readStore(frank, "peers")).map((p) => p.value);
      for (const key of [old, unlooked]) {
        const peer = peers.find((p) => p.primary === key.primary);
        assert.deepEqual({ standing: peer.standing, held: peer.held }, { standing: "accepted", held: { messages: 0, bytes: 0 } });
      }
      // The new index over the contacts that were there: dora's handle is pinned to her key.
      const byHandle = await frank.page.evaluate(
        () =>
          new Promise((resolve) => {
            const request = indexedDB.open("kez-chat");
            request.onsuccess = () => {
              const get = request.result.transaction("contacts").objectStore("contacts").index("fqhn").getAll("dora@localhost");
              get.onsuccess = () => (request.result.close(), resolve(get.result.map((c) => c.primary)));
            };
          }),
      );
      assert.deepEqual(byHandle, [dora.primary]);
    } finally {
      await frank.close();
    }
  });

  test("a home server that swaps bob's key after alice pinned it: alice is warned, and her message still goes to the pinned key", async () => {
    const inboxOf = (primary) => proto.inboxTag(proto.parsePrimary(primary));
    const bobInbox = inboxOf(people.bob);
    // The operator rewrites the registry: bob@localhost now names a key the operator holds.
    const impostor = nodeIdentity();
    worker.tamper("DELETE FROM registrations WHERE handle = 'bob'");
    assert.equal((await postRegister(worker.url, freshEnvelope("localhost", { handle: "bob", id: impostor }).envelope)).status, 201);
    const impostorInbox = inboxOf(impostor.primary);

    // Opening the chat looks the handle up again: the pin holds, with a warning.
    await alice.page.getByRole("button", { name: "Close" }).click();
    await openChat(alice, "bob@localhost");
    const warning = alice.page.getByTestId("key-change");
    await warning.waitFor({ timeout: 30_000 });
    assert.match(await warning.textContent(), new RegExp(proto.fingerprint(proto.parsePrimary(impostor.primary))));
    await alice.page.getByTestId("chat-key-change").waitFor();
    // The directory says so too, and does not offer to save the new key as if it were new.
    await showView(alice, "New chat");
    await alice.page.getByLabel("Handle, handle@domain or key").fill("bob");
    await alice.page.getByRole("button", { name: "Look up" }).click();
    await alice.page.getByTestId("lookup-key-change").waitFor();
    assert.equal(await alice.page.getByTestId("lookup-result").getByRole("button", { name: "Save contact" }).count(), 0);
    await openChat(alice, "bob@localhost");

    const before = new Set(relay.events().map((e) => e.id));
    await typeAndSend(alice, "to the key I pinned");
    await bubbleWith(bob, "to the key I pinned").waitFor({ timeout: 30_000 });
    const sent = relay.events().filter((e) => !before.has(e.id) && e.tags[0][1] !== inboxOf(people.alice));
    assert.ok(sent.length >= 1);
    assert.ok(sent.every((e) => e.tags[0][1] === bobInbox && e.tags[0][1] !== impostorInbox), "every event went to bob's pinned key");
    // Still verified: the comparison was with the pinned key, which is still the one in use.
    assert.equal((await alice.page.getByTestId("trust-state").textContent()).trim(), "✓ Verified");

    // Only alice moves the pin, after a confirmation; the new key starts "not compared".
    await warning.getByRole("button", { name: "Accept the new key…" }).click();
    await warning.getByRole("button", { name: "Use the new key" }).click();
    await alice.page.getByTestId("key-change").waitFor({ state: "detached" });
    await alice.page.locator("#chat-title").getByText("bob@localhost", { exact: true }).waitFor();
    assert.equal((await alice.page.getByTestId("trust-state").textContent()).trim(), "Not compared");
    const contacts = (await readStore(alice, "contacts")).filter((c) => c.value.fqhn === "bob@localhost");
    assert.deepEqual(contacts.map((c) => c.key), [impostor.primary]);
    // The old key's conversation stays, named by its fingerprint only (it was compared: "Verified key").
    await alice.page.getByRole("button", { name: `Open chat with Verified key ${proto.fingerprint(proto.parsePrimary(people.bob))}` }).waitFor();
  });

  test("a binding the server's signed log does not hold raises a lasting alarm, and the key is not offered", async () => {
    // dave registers properly: alice finds him, logged and checked, with no alarm.
    const dave = nodeIdentity();
    const handle = `dave${randomBytes(3).toString("hex")}`;
    assert.equal((await postRegister(worker.url, freshEnvelope("localhost", { handle, id: dave }).envelope)).status, 201);
    const lookUp = async (text) => {
      await showView(alice, "New chat");
      await alice.page.getByLabel("Handle, handle@domain or key").fill(text);
      await alice.page.getByRole("button", { name: "Look up" }).click();
    };
    await lookUp(dave.primary);
    await alice.page.getByTestId("lookup-result").waitFor();
    assert.equal(await alice.page.getByTestId("log-alarm").count(), 0);

    // The operator rewrites dave's row behind the worker: a binding for dave, validly signed by
    // a key the operator holds, that was never appended to the log.
    const forged = nodeIdentity();
    const { envelope } = freshEnvelope("localhost", { handle, id: forged });
    worker.tamper("UPDATE registrations SET primary_key = ?, envelope = ? WHERE handle = ?", forged.primary, canonicalize(envelope), handle);
    await lookUp(handle);
    const alarm = alice.page.getByTestId("log-alarm");
    await alarm.waitFor({ timeout: 30_000 });
    assert.match(await alarm.textContent(), /localhost showed something its own signed log contradicts: This binding is not in the log the server signed/);
    assert.equal(await alice.page.getByTestId("lookup-result").getByRole("button", { name: "Save contact" }).count(), 0, "the forged key is not offered");
    // The alarm is kept: a reload shows it again until alice dismisses it.
    await alice.page.reload();
    await alice.page.getByTestId("log-alarm").waitFor();
    await alice.page.getByRole("button", { name: "I understand, hide this" }).click();
    await alice.page.getByTestId("log-alarm").waitFor({ state: "detached" });
  });

  test("gossip: texts carry the sender's newest checkpoint, and a contact's signed checkpoint of another history raises the alarm", async () => {
    // The app's settings, by name (store.ts keeps them under "app <name>").
    const settings = async (p) => new Map((await readStore(p, "settings")).map((s) => [String(s.key).replace(/^app /, ""), s.value]));
    const kept = (await settings(alice)).get("log localhost").checkpoint;
    assert.match(kept, /^localhost\/log\n\d+\n/, "alice keeps the newest checkpoint she checked");

    // alice's first text to carol since her page loaded carries it inside the sealed box:
    // relays see none of it.
    const carolInbox = proto.inboxTag(carol.publicKey);
    await alice.page.reload();
    const before = new Set(relay.events().map((e) => e.id));
    await openChat(alice, "carol@localhost");
    await typeAndSend(alice, "gossip rides along");
    let event;
    for (let tries = 0; !(event = relay.events().find((e) => !before.has(e.id) && e.tags[0][1] === carolInbox)); tries++) {
      if (tries > 300) throw new Error("alice's text never reached the relay");
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(!event.content.includes("localhost/log"));
    const { header } = proto.decodeMessage(proto.open(proto.unwrap(event), carol.seed), carol.primary);
    assert.equal(header.text, "gossip rides along");
    assert.equal(header.checkpoint, (await settings(alice)).get("log localhost").checkpoint);
    // The next one, with the same checkpoint, does not carry it again.
    await typeAndSend(alice, "and not twice");
    let next;
    for (let tries = 0; !(next = relay.events().find((e) => !before.has(e.id) && e.id !== event.id && e.tags[0][1] === carolInbox)); tries++) {
      if (tries > 300) throw new Error("alice's second text never reached the relay");
      await new Promise((r) => setTimeout(r, 100));
    }
    const second = proto.decodeMessage(proto.open(proto.unwrap(next), carol.seed), carol.primary).header;
    assert.equal(second.text, "and not twice");
    assert.equal(second.checkpoint, undefined);

    // The server signs, for carol, a checkpoint of another tree of the size alice holds; carol
    // passes it on. A note with the right shape but no valid signature proves nothing: ignored.
    const size = Number(kept.split("\n")[1]);
    const unsigned = signCheckpoint(randomBytes(32).toString("hex"), "localhost/log", size, randomBytes(32));
    const forked = signCheckpoint(worker.logSeed, "localhost/log", size, randomBytes(32));
    await flood([eventFrom(carol, people.alice, { type: "text", text: "what my app was shown", checkpoint: unsigned })]);
    await flood([eventFrom(carol, people.alice, { type: "text", text: "what my app was shown, signed", checkpoint: forked })]);
    const alarm = alice.page.getByTestId("log-alarm");
    await alarm.waitFor({ timeout: 30_000 });
    const forkedRoot = forked.split("\n")[2].slice(0, 12);
    assert.match(await alarm.textContent(), new RegExp(`localhost showed something its own signed log contradicts: It showed a contact's app \\(${carol.primary.slice(0, 20)}…\\) a checkpoint \\(size ${size}, root ${forkedRoot.replace(/[+/]/g, "\\$&")}…\\) that contradicts the history it showed this app\\.`));
    // One alarm: the unsigned note raised none, and the forked checkpoint is not kept.
    const stored = await settings(alice);
    assert.equal(stored.get("log-alarms").length, 1);
    assert.notEqual(stored.get("log localhost").checkpoint, forked);
    // The alarm keeps both signed checkpoints, and shows them to be copied.
    assert.deepEqual(stored.get("log-alarms")[0].evidence, [stored.get("log localhost").checkpoint, forked]);
    await alarm.getByText("The evidence:", { exact: false }).click();
    assert.deepEqual(await alarm.getByTestId("log-evidence").allTextContents(), [stored.get("log localhost").checkpoint, forked]);
    await alice.page.getByRole("button", { name: "I understand, hide this" }).click();
    await alice.page.getByTestId("log-alarm").waitFor({ state: "detached" });
  });

  test("gossip: a check the server stalls by refusing its tiles is kept, and made at the next start", async () => {
    const settings = async (p) => new Map((await readStore(p, "settings")).map((s) => [String(s.key).replace(/^app /, ""), s.value]));
    const kept = (await settings(alice)).get("log localhost").checkpoint;
    const size = Number(kept.split("\n")[1]);
    assert.ok(size > 1);
    // A smaller tree of another history: checking it needs tiles of the tree alice holds.
    const forked = signCheckpoint(worker.logSeed, "localhost/log", size - 1, randomBytes(32));
    await alice.page.route("**/log/tile/**", (route) => route.fulfill({ status: 404, contentType: "application/json", body: '{"error":"tile_not_found","message":"refused for this test"}' }));
    try {
      await flood([eventFrom(carol, people.alice, { type: "text", text: "shown while tiles are refused", checkpoint: forked })]);
      for (let i = 0; !((await settings(alice)).get("log-heard-unchecked") ?? []).some((h) => h.note === forked); i++) {
        if (i > 300) throw new Error("the stalled check was never kept");
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(await alice.page.getByTestId("log-alarm").count(), 0, "a refused tile proves nothing");
    } finally {
      await alice.page.unroute("**/log/tile/**");
    }
    await alice.page.reload();
    const alarm = alice.page.getByTestId("log-alarm");
    await alarm.waitFor({ timeout: 30_000 });
    assert.match(await alarm.textContent(), new RegExp(`It showed a contact's app \\(${carol.primary.slice(0, 20)}…\\) a checkpoint \\(size ${size - 1},`));
    for (let i = 0; ((await settings(alice)).get("log-heard-unchecked") ?? []).length > 0; i++) {
      if (i > 300) throw new Error("the check made stayed in the list");
      await new Promise((r) => setTimeout(r, 100));
    }
    await alice.page.getByRole("button", { name: "I understand, hide this" }).click();
    await alice.page.getByTestId("log-alarm").waitFor({ state: "detached" });
  });
});
