// End-to-end encrypted messages and files over nostr relays: two local relays (PyPI
// nostr-relay), one limited to 64 KiB like strfry's default and one to 256 KiB, the worker in
// workerd, and two headless Chromium profiles, alice and bob. Files travel as protocol v2
// pieces sized for the tighter relay; carol, a second client built from the app's protocol
// code, sends v1 events (an older client) and v2 input the app never would.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { openProfile, screenshots } from "./support/browser.mjs";
import {
  attachFile,
  attachmentHashes,
  bmp,
  bubbleWith,
  decodedSize,
  image,
  imageBubble,
  acceptRequest,
  openChat,
  openRequest,
  readStore,
  saveContact,
  sendImageAndTime,
  setUp as setUpPerson,
  showView,
  sha256,
  statusOf,
  typeAndSend,
  useRelays,
} from "./support/chat.mjs";
import { freshEnvelope, identity as nodeIdentity, postRegister } from "./support/kez.mjs";
import { loadProtocol, publishAll } from "./support/protocol.mjs";
import { startRelay } from "./support/relay.mjs";
import { startWorker } from "./support/worker.mjs";

const KIND = 4260;
let worker;
let relays = [];
/** Relays a test used for a while (their connections are expected too). */
const otherRelays = [];
let alice;
let bob;
const people = {};
const plaintexts = [];
/** The app's protocol code, for carol: a second client driven from Node. */
let proto;
let carol;
/** carol's file whose second chunk she sends only once bob's app marked it stalled. */
let stalled;
/** dave and frank: keys bob never heard of (so requests), driven from Node like carol. */
let dave;
let frank;
/** frank's file, sent with every redundant piece (no receipt stops them to a request). */
let franksFile;
const FRANKS_TEXT = "it's frank: the photo above is from me";
/** Ids of the events the Node clients (carol, dave, frank) published (v1 chunks are bigger than the 64 KiB relay takes). */
const nodeEvents = new Set();
/**
 * The tighter relay's limit: nostr-relay enforces it on content characters; the app, which is
 * not told (no NIP-11 limits), assumes strfry's 64 KiB of whole EVENT message, and the test
 * checks every EVENT message against that.
 */
const TIGHT = 65_536;

/** A sealed event to bob, from carol unless `from` is given. */
function carolEvent(body, data, id, maxPadded, from = carol) {
  const to = proto.parsePrimary(people.bob);
  return proto.wrap(proto.seal(proto.encodeMessage(from, people.bob, body, data, id), to, undefined, undefined, maxPadded), to);
}

/** The app's own plan for `size` bytes over the two relays (no NIP-11 limits counted: 64 KiB). */
const planFor = (size) => proto.planPieces(size, new Map(relays.map((r) => [r.url, proto.ASSUMED_LIMITS])), true);

/**
 * A v2 file from carol (or `from`) as the app would send it for the 64 KiB relay (pointer + all
 * n pieces), plus the pieces' raw bytes, so tests can send variations.
 */
async function carolPieces(bytes, name, from = carol) {
  const plan = planFor(bytes.length);
  const { k, n, pieceBytes, maxPadded } = plan;
  const data = await proto.makePieces(bytes, plan);
  const file_id = proto.newId();
  const pointerBody = { type: "kez-file-v2", mode: "pieces", file_id, name, mime: "image/bmp", size: bytes.length, sha256: sha256(bytes), scheme: proto.PIECE_SCHEME, piece_bytes: pieceBytes, k, n };
  const piece = (i, body = {}, piece = data[i]) => carolEvent({ type: "kez-file-piece-v2", file_id, i, k, n, ...body }, piece, undefined, maxPadded, from);
  return { k, n, pieceBytes, data, file_id, maxPadded, pointer: (body = {}) => carolEvent({ ...pointerBody, ...body }, undefined, undefined, maxPadded, from), piece };
}

/** Events carrying `bytes` from carol to bob as v1 chunks + pointer (`claimedSha256` may lie). */
function carolFile(bytes, name, { claimedSha256 = sha256(bytes) } = {}) {
  const bob = proto.parsePrimary(people.bob);
  const wrapFor = (body, data, id) => proto.wrap(proto.seal(proto.encodeMessage(carol, people.bob, body, data, id), bob), bob);
  const file_id = proto.newId();
  const n = Math.ceil(bytes.length / proto.CHUNK_BYTES);
  const chunks = Array.from({ length: n }, (_, i) =>
    wrapFor({ type: "kez-file-chunk-v1", file_id, i, n }, bytes.subarray(i * proto.CHUNK_BYTES, (i + 1) * proto.CHUNK_BYTES)),
  );
  const pointer = wrapFor({ type: "kez-file-v1", mode: "pointer", file_id, name, mime: "image/bmp", size: bytes.length, chunks: n, sha256: claimedSha256 });
  return { chunks, pointer };
}

/** Carol (or dave, or frank) publishes to the 256 KiB relay (v1 chunks do not fit the other one). */
async function carolSends(events) {
  for (const e of events) nodeEvents.add(e.id);
  await publishAll(relays[1].url, events);
}

/** Waits until the relays' stored event count has not moved for a second, and returns it. */
async function settledEventCount() {
  let count = storedEvents().length;
  for (let still = 0; still < 4; ) {
    await new Promise((r) => setTimeout(r, 250));
    const now = storedEvents().length;
    still = now === count ? still + 1 : 0;
    count = now;
  }
  return count;
}

async function sendText(p, text) {
  plaintexts.push(text);
  await typeAndSend(p, text);
}

function storedEvents() {
  return relays.flatMap((r) => r.events());
}

before(async () => {
  // The first publishes no limits (the app assumes 64 KiB); the second states its 256 KiB in
  // NIP-11, and the app must still size every event for the first.
  relays = [await startRelay({ maxEventSize: TIGHT }), await startRelay({ maxEventSize: 262_144, statedMessageLength: 262_144 })];
  worker = await startWorker(["--var", `NOSTR_RELAYS:${relays.map((r) => r.url).join(",")}`]);
  ({ p: alice, primary: people.alice } = await setUpPerson(worker.url, "alice"));
  ({ p: bob, primary: people.bob } = await setUpPerson(worker.url, "bob"));
  proto = await loadProtocol();
  people.aliceFingerprint = proto.fingerprint(proto.parsePrimary(people.alice));
  const seed = nodeIdentity();
  carol = proto.identityFromSeed(Buffer.from(seed.seedHex, "hex"));
  assert.equal((await postRegister(worker.url, freshEnvelope("localhost", { handle: "carol", id: seed }).envelope)).status, 201);
  // bob knows carol (her files are bigger than a request may hold, and an older client's
  // version 1 files are taken only from accepted senders); he does not know alice: her first
  // message is a request he accepts.
  await saveContact(bob, "carol");
  // Started now, checked by the last test: a transfer that never completes (one of two chunks).
  stalled = carolFile(bmp(256, 300), "stalls-then-completes.bmp");
  await carolSends([stalled.pointer, stalled.chunks[0]]);
  // Checked there too: dave, a request, sends two files, each within a request's 1 MB quota but
  // not both; the pieces past the quota are dropped, so one of them can never complete.
  dave = proto.identityFromSeed(randomBytes(32));
  for (const [bytes, name] of [[bmp(320, 320), "first-of-two.bmp"], [bmp(500, 500), "second-of-two.bmp"]]) {
    const file = await carolPieces(bytes, name, dave);
    await carolSends([file.pointer(), ...Array.from({ length: file.k }, (_, i) => file.piece(i))]);
  }
  // frank sends a file as the app would to a request, all n pieces (twice k over two relays:
  // more than the quota), then a text: the redundant pieces must leave room for it.
  frank = proto.identityFromSeed(randomBytes(32));
  franksFile = await carolPieces(bmp(480, 480), "from-frank.bmp", frank);
  assert.ok(franksFile.n * franksFile.pieceBytes > 1_000_000 && franksFile.k * franksFile.pieceBytes < 1_000_000);
  await carolSends([franksFile.pointer(), ...Array.from({ length: franksFile.n }, (_, i) => franksFile.piece(i)), carolEvent({ type: "text", text: FRANKS_TEXT }, undefined, undefined, undefined, frank)]);
  await saveContact(alice, "bob");
  await openChat(alice, "bob@localhost");
});

after(async () => {
  await screenshots("messaging", [alice, bob]);
  await alice?.close();
  await bob?.close();
  await worker?.stop();
  for (const r of relays) await r.close();
});

describe("messages over nostr relays, in headless Chromium", () => {
  test("both relays are used, and the Relays card shows each one's limit from its NIP-11 document", async () => {
    for (const p of [alice, bob]) {
      await showView(p, "Settings");
      for (const r of relays) await p.page.getByTestId("relays").getByText(r.url).waitFor();
      await p.page.getByTestId("relays").locator(".dot.open").nth(1).waitFor();
    }
    const limitOf = (r) => alice.page.getByTestId("relay").filter({ hasText: r.url }).getByTestId("relay-limit");
    await limitOf(relays[0]).getByText("takes 64 KB events (assumed: no limits published)").waitFor();
    await limitOf(relays[1]).getByText("takes 256 KB events").waitFor();
    assert.equal((await limitOf(relays[1]).textContent()).trim(), "· takes 256 KB events");
    await openChat(alice, "bob@localhost");
  });

  test("text both ways, each delivered with a receipt", async () => {
    await sendText(alice, "hello bob, this is alice");
    const mine = bubbleWith(alice, "hello bob, this is alice");
    await mine.waitFor(); // local echo
    // bob has not saved alice: she is a request, unacknowledged until he accepts. Opening it
    // asks the directory, whose signed binding names her.
    await openRequest(bob, `Unverified key ${people.aliceFingerprint}`);
    await bob.page.locator("#chat-title").getByText("alice@localhost", { exact: true }).waitFor({ timeout: 30_000 });
    await bubbleWith(bob, "hello bob, this is alice").waitFor({ timeout: 30_000 });
    assert.equal(await mine.getAttribute("data-status"), "sent");
    await acceptRequest(bob);
    await statusOf(mine, "delivered");
    assert.equal(await mine.getByTestId("status").textContent(), "Delivered");

    await sendText(bob, "hi alice! ✓ 😀");
    await bubbleWith(alice, "hi alice! ✓ 😀").waitFor({ timeout: 30_000 });
    await statusOf(bubbleWith(bob, "hi alice! ✓ 😀"), "delivered");
  });

  test("a message bob's browser could not store (a full disk, say) is taken from the other relay's copy", async () => {
    const text = "kept at the second try";
    // The first write of this message in bob's page fails, as a full disk's would.
    await bob.page.evaluate((text) => {
      const put = IDBObjectStore.prototype.put;
      window.failedWrites = 0;
      IDBObjectStore.prototype.put = function (value, ...rest) {
        if (window.failedWrites === 0 && this.name === "messages" && value?.text === text) {
          window.failedWrites++;
          throw new DOMException("The disk is full.", "QuotaExceededError");
        }
        return put.call(this, value, ...rest);
      };
    }, text);
    await sendText(alice, text);
    await bubbleWith(bob, text).waitFor({ timeout: 30_000 });
    assert.equal(await bob.page.evaluate(() => window.failedWrites), 1, "the first copy's write failed");
    await statusOf(bubbleWith(alice, text), "delivered");
  });

  test("a message bob's browser could not store from either relay is named in a banner, and fetched again once there is room", async () => {
    const text = "kept once there is room";
    await bob.page.evaluate((text) => {
      const put = IDBObjectStore.prototype.put;
      window.diskFull = true;
      IDBObjectStore.prototype.put = function (value, ...rest) {
        if (window.diskFull && this.name === "messages" && value?.text === text) throw new DOMException("The disk is full.", "QuotaExceededError");
        return put.call(this, value, ...rest);
      };
    }, text);
    await sendText(alice, text);
    const banner = bob.page.getByTestId("unstored");
    await banner.getByText("this device's storage is full; 1 item", { exact: false }).waitFor({ timeout: 30_000 });
    assert.equal(await bubbleWith(bob, text).count(), 0, "not shown while it could not be kept");
    await bob.page.evaluate(() => (window.diskFull = false));
    await banner.getByRole("button", { name: "Fetch again" }).click();
    await bubbleWith(bob, text).waitFor({ timeout: 30_000 });
    await banner.waitFor({ state: "detached" });
    await statusOf(bubbleWith(alice, text), "delivered");
  });

  test("a 30 KB image fits one event on both relays and travels inline", async () => {
    const small = bmp(100, 100);
    assert.ok(small.length > 29_000 && small.length < 31_000);
    const before = await settledEventCount();
    await attachFile(alice, { name: "inline.bmp", mimeType: "image/bmp", buffer: small });
    const received = image(bob, "inline.bmp");
    await received.waitFor({ timeout: 30_000 });
    assert.ok((await attachmentHashes(bob)).includes(sha256(small)));
    await statusOf(imageBubble(alice, "inline.bmp"), "delivered");
    // One event for the file on each relay, plus bob's receipt on each.
    assert.equal((await settledEventCount()) - before, 2 * 2);
  });

  test("a 50 KB image is too big for one 64 KiB event: it travels in pieces, striped, and renders", async () => {
    const small = bmp(128, 128);
    assert.ok(small.length > 48_000 && small.length < 80 * 1024);
    const before = await settledEventCount();
    await attachFile(alice, { name: "small.bmp", mimeType: "image/bmp", buffer: small });
    await image(alice, "small.bmp").waitFor(); // the local echo
    const received = image(bob, "small.bmp");
    await received.waitFor({ timeout: 30_000 });
    assert.equal((await decodedSize(received))[0], 128);
    assert.ok((await attachmentHashes(bob)).includes(sha256(small)));
    await statusOf(imageBubble(alice, "small.bmp"), "delivered");
    // k = 2 pieces; with two relays each carries k (either alone rebuilds it): n = 4, one
    // piece event each, + the pointer on each relay + bob's receipt on each.
    assert.equal((await settledEventCount()) - before, 4 + 2 + 2);
  });

  test("a file bob's browser had no room to assemble is named in the banner, and assembled once there is room", async () => {
    // In pieces (k = 2), as the 50 KB image above.
    const picture = bmp(128, 136);
    await bob.page.evaluate(() => {
      const put = IDBObjectStore.prototype.put;
      window.diskFull = true;
      IDBObjectStore.prototype.put = function (value, ...rest) {
        if (window.diskFull && this.name === "attachments") throw new DOMException("The disk is full.", "QuotaExceededError");
        return put.call(this, value, ...rest);
      };
    });
    await attachFile(alice, { name: "kept-later.bmp", mimeType: "image/bmp", buffer: picture });
    const banner = bob.page.getByTestId("unstored");
    await banner.getByText("this device's storage is full", { exact: false }).waitFor({ timeout: 30_000 });
    assert.equal(await image(bob, "kept-later.bmp").count(), 0);
    // Every piece is kept and its event handled: nothing that arrives now would assemble it.
    await bob.page.evaluate(() => (window.diskFull = false));
    await banner.getByRole("button", { name: "Fetch again" }).click();
    await image(bob, "kept-later.bmp").waitFor({ timeout: 30_000 });
    assert.ok((await attachmentHashes(bob)).includes(sha256(picture)));
    await banner.waitFor({ state: "detached" });
    await statusOf(imageBubble(alice, "kept-later.bmp"), "delivered");
  });

  test("a 500 KB image arrives byte-identical", async () => {
    const medium = bmp(300, 560);
    assert.ok(medium.length > 500_000 && medium.length < 510_000);
    await attachFile(alice, { name: "medium.bmp", mimeType: "image/bmp", buffer: medium });
    const received = image(bob, "medium.bmp");
    await received.waitFor({ timeout: 60_000 });
    assert.equal((await decodedSize(received))[0], 300);
    assert.ok((await attachmentHashes(bob)).includes(sha256(medium)));
    await statusOf(imageBubble(alice, "medium.bmp"), "delivered");
  });

  test("a 5 MB image arrives byte-identical and renders", async () => {
    const big = bmp(1280, 1365);
    assert.ok(big.length > 5_000_000);
    const { seconds, width } = await sendImageAndTime(alice, bob, big, "big.bmp");
    assert.equal(width, 1280);
    assert.ok((await attachmentHashes(bob)).includes(sha256(big)));
    await statusOf(imageBubble(alice, "big.bmp"), "delivered");
    await alice.screenshot("7-chat-sent");
    await bob.screenshot("8-chat-received");
    const plan = planFor(big.length);
    console.log(
      `# 5 MB image over a 64 KiB and a 256 KiB relay (${big.length} bytes in pieces of ${plan.pieceBytes} bytes, k = ${plan.k}, n = ${plan.n}, ` +
        `${plan.n / 2} pieces + 1 pointer per relay at 5 events/s): end to end ${seconds.toFixed(2)} s (alice's app has the file -> bob's page shows it)`,
    );
  });

  test("a 10 MB file arrives byte-identical and shows as a download", async () => {
    const file = Buffer.concat([Buffer.from("%PDF-1.4\n"), randomBytes(10 * 1024 * 1024 - 9)]);
    await attachFile(alice, { name: "ten.pdf", mimeType: "application/pdf", buffer: file });
    const link = bob.page.getByRole("link", { name: "⬇ ten.pdf" });
    await link.waitFor({ timeout: 120_000 });
    assert.ok((await attachmentHashes(bob)).includes(sha256(file)));
    await statusOf(alice.page.getByTestId("bubble").filter({ hasText: "ten.pdf" }), "delivered");
  });

  test("a 120 KB non-image file travels in pieces and shows as a download", async () => {
    const pdf = Buffer.concat([Buffer.from("%PDF-1.4\n"), randomBytes(120 * 1024)]);
    await attachFile(alice, { name: "notes.pdf", mimeType: "application/pdf", buffer: pdf });
    const link = bob.page.getByRole("link", { name: "⬇ notes.pdf" });
    await link.waitFor({ timeout: 30_000 });
    assert.equal(await link.getAttribute("download"), "notes.pdf");
    await bob.page.getByText("120.0 KB").first().waitFor();
    assert.ok((await attachmentHashes(bob)).includes(sha256(pdf)));
    await statusOf(alice.page.getByTestId("bubble").filter({ hasText: "notes.pdf" }), "delivered");
  });

  test("an 11 MB file is refused with a friendly message, and nothing is published", async () => {
    const before = await settledEventCount();
    await attachFile(alice, { name: "huge.bin", mimeType: "application/octet-stream", buffer: Buffer.alloc(11 * 1024 * 1024, 7) });
    await alice.page.getByTestId("send-error").getByText("“huge.bin” is 11.0 MB. Files up to 10 MB can be sent; try a smaller one.").waitFor();
    assert.equal(await settledEventCount(), before);
    assert.equal(await bubbleWith(alice, "huge.bin").count(), 0);
  });

  test("a text too long for one event is refused, kept in the input, and nothing is published", async () => {
    const before = await settledEventCount();
    const input = alice.page.getByLabel("Message", { exact: true });
    const long = "x".repeat(70_000);
    await input.fill(long);
    await input.press("Enter");
    await alice.page.getByTestId("send-error").getByText("This message is too long for one message. Send it as a file instead.").waitFor();
    assert.equal((await input.inputValue()).length, long.length);
    // 60,000 bytes is within the app's limit but not within one 64 KiB event of the tighter relay.
    await input.fill("y".repeat(60_000));
    await input.press("Enter");
    await alice.page.getByTestId("send-error").getByText(/This message is too long for your relays \(\d+ KB at most\)\. Send it as a file instead\./).waitFor();
    await input.fill("");
    assert.equal(await settledEventCount(), before);
  });

  test("bob is offline while alice sends; online again, he receives everything", async () => {
    await bob.page.close();
    await sendText(alice, "are you there, bob?");
    const small = bmp(64, 64);
    await attachFile(alice, { name: "while-away.bmp", mimeType: "image/bmp", buffer: small });
    await statusOf(bubbleWith(alice, "are you there, bob?"), "sent");
    await statusOf(imageBubble(alice, "while-away.bmp"), "sent");

    await bob.reopen();
    await bob.page.goto(worker.url);
    await openChat(bob, "alice@localhost");
    await bubbleWith(bob, "are you there, bob?").waitFor({ timeout: 30_000 });
    await image(bob, "while-away.bmp").waitFor({ timeout: 30_000 });
    assert.ok((await attachmentHashes(bob)).includes(sha256(small)));
    await statusOf(bubbleWith(alice, "are you there, bob?"), "delivered");
    // Messages from before stay, once each.
    assert.equal(await bubbleWith(bob, "hello bob, this is alice").count(), 1);
  });

  test("a text whose relays' answers were lost is Not sent; Retry sends it again under its id, and bob shows it once", async () => {
    const text = "stored, though its answers were lost";
    // bob has caught up with each relay before: once each records a catch-up since he is back,
    // his app has handled everything they hold, both copies included.
    const inbox = proto.inboxTag(proto.parsePrimary(people.bob));
    const catchUps = (await readStore(bob, "settings")).filter((s) => typeof s.key === "string" && s.key.startsWith("caught-up ") && s.key.endsWith(` ${inbox}`)).map((s) => s.key);
    assert.ok(catchUps.length > 0);
    await bob.page.close();
    const before = new Set(storedEvents().map((e) => e.id));
    // The relays store alice's events, but her page hears a final refusal in place of each answer.
    await alice.page.evaluate(() => {
      const send = WebSocket.prototype.send;
      window.loseAnswers = true;
      WebSocket.prototype.send = function (data) {
        send.call(this, data);
        if (window.loseAnswers && typeof data === "string" && data.startsWith('["EVENT"')) {
          const id = JSON.parse(data)[1].id;
          queueMicrotask(() => this.onmessage?.({ data: JSON.stringify(["OK", id, false, "blocked: this test lost the relay's answer"]) }));
        }
      };
    });
    await sendText(alice, text);
    const mine = bubbleWith(alice, text);
    await statusOf(mine, "failed");
    await alice.page.evaluate(() => (window.loseAnswers = false));
    await mine.getByRole("button", { name: "Retry" }).click();
    await statusOf(mine, "sent");
    const stored = () => [...new Set(storedEvents().filter((e) => !before.has(e.id)).map((e) => e.id))];
    for (let i = 0; stored().length < 2; i++) {
      if (i > 300) throw new Error("the relays never stored both copies");
      await new Promise((r) => setTimeout(r, 100));
    }
    await settledEventCount();
    const copies = stored();
    assert.equal(copies.length, 2, "the first copy and the one Retry sent, and nothing else");

    const back = Date.now();
    await bob.reopen();
    await bob.page.goto(worker.url);
    await openChat(bob, "alice@localhost");
    await bubbleWith(bob, text).waitFor({ timeout: 30_000 });
    for (let i = 0; ; i++) {
      const settings = new Map((await readStore(bob, "settings")).map((s) => [s.key, s.value]));
      if (catchUps.every((key) => settings.get(key) >= back)) break;
      if (i > 300) throw new Error("bob's app never caught up with every relay");
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(await bubbleWith(bob, text).count(), 1, "two copies of one message are one message");
    // The copy that added nothing is not remembered: anyone can wrap a box again without end.
    const seen = new Set((await readStore(bob, "seen")).map(({ key }) => key));
    assert.equal(copies.filter((id) => seen.has(id)).length, 1, "one copy taken and remembered");
    await statusOf(mine, "delivered");
  });

  test("a flood of newer events on a relay that caps what one request returns does not hide an older message", async () => {
    // strfry answers a request with at most its 500 newest events; this relay with 10.
    const capped = await startRelay({ maxEventSize: TIGHT, maxLimit: 10 });
    otherRelays.push(capped);
    const inbox = proto.inboxTag(proto.parsePrimary(people.bob));
    const caughtUpKey = `caught-up ${capped.url} ${inbox}`;
    try {
      await useRelays(alice, [capped.url]);
      await useRelays(bob, [capped.url]);
      // Bob has read the relay once: later he asks only for what came since.
      for (;;) {
        const settings = await readStore(bob, "settings");
        if (settings.some((s) => s.key === caughtUpKey)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      await bob.page.close();
      await sendText(alice, "sent before the flood");
      await statusOf(bubbleWith(alice, "sent before the flood"), "sent");
      // Four requests' worth of newer events for his inbox (boxes nobody can open).
      const flood = Array.from({ length: 40 }, () => proto.wrap(randomBytes(120), proto.parsePrimary(people.bob), Date.now() + 2_000));
      await publishAll(capped.url, flood);
      await bob.reopen();
      await bob.page.goto(worker.url);
      await openChat(bob, "alice@localhost");
      await bubbleWith(bob, "sent before the flood").waitFor({ timeout: 30_000 });
      await statusOf(bubbleWith(alice, "sent before the flood"), "delivered");
    } finally {
      await useRelays(alice, relays.map((r) => r.url));
      await useRelays(bob, relays.map((r) => r.url));
      await capped.close();
    }
  });

  test("bob reloads in the middle of a 5 MB transfer and it resumes from what he kept", async () => {
    const big = bmp(1280, 1365);
    await attachFile(alice, { name: "resume.bmp", mimeType: "image/bmp", buffer: big });
    await bob.page.getByText(/Receiving ([4-9]|\d\d)\/\d+…/).waitFor({ timeout: 30_000 });
    // Both relays down: after the reload, nothing can come from them, so what bob shows is
    // what his browser kept.
    for (const r of relays) await r.stop();
    const [, had, total] = /Receiving (\d+)\/(\d+)/.exec(await bob.page.getByText(/Receiving \d+\/\d+…/).textContent());
    await bob.page.reload();
    await openChat(bob, "alice@localhost");
    const kept = Number(/Receiving (\d+)/.exec(await bob.page.getByText(/Receiving \d+\/\d+…/).textContent())[1]);
    assert.ok(kept >= Number(had), `after the reload bob had ${kept}/${total}, before ${had}/${total}`);
    for (const r of relays) await r.restart();
    await image(bob, "resume.bmp").waitFor({ timeout: 60_000 });
    assert.ok((await attachmentHashes(bob)).includes(sha256(big)));
    await statusOf(imageBubble(alice, "resume.bmp"), "delivered");
    console.log(`# reload mid-transfer with the relays down: ${had}/${total} pieces before the reload, ${kept}/${total} kept after it`);
  });

  test("v1 events from an older client still render: a pointer first, then chunks out of order", async () => {
    const picture = bmp(400, 400); // 480,054 bytes: 3 chunks
    const { chunks, pointer } = carolFile(picture, "pointer-first.bmp");
    assert.equal(chunks.length, 3);
    await carolSends([pointer, chunks[2], chunks[0], chunks[1]]);
    await bob.page.getByRole("button", { name: "Open chat with carol@localhost" }).waitFor({ timeout: 30_000 });
    await openChat(bob, "carol@localhost");
    await image(bob, "pointer-first.bmp").waitFor({ timeout: 30_000 });
    assert.ok((await attachmentHashes(bob)).includes(sha256(picture)));
  });

  test("a v1 file that does not match its SHA-256 is marked failed, with a red chip", async () => {
    const picture = bmp(300, 300);
    const { chunks, pointer } = carolFile(picture, "tampered.bmp", { claimedSha256: sha256(Buffer.from("something else")) });
    await carolSends([...chunks, pointer]);
    const chip = bob.page.locator(".chip-failed").filter({ hasText: "tampered.bmp" });
    await chip.waitFor({ timeout: 30_000 });
    assert.match(await chip.textContent(), /The file arrived damaged \(its SHA-256 does not match\)/);
    assert.equal(await image(bob, "tampered.bmp").count(), 0);
  });

  test("bad v2 input from a second client is dropped, and the file still arrives right", async () => {
    await openChat(bob, "carol@localhost");
    const errorsBefore = bob.errors.length;
    const picture = bmp(300, 400); // 360,054 bytes: k = 8 pieces of the 64 KiB size
    const f = await carolPieces(picture, "checked.bmp");
    const other = await carolPieces(bmp(200, 200), "other.bmp");
    // A pointer whose counts do not match its size is refused whole: no bubble ever shows it.
    const lying = await carolPieces(bmp(150, 150), "lying.bmp");
    const junk = (length) => new Uint8Array(length).fill(0xa5);
    const events = [
      lying.pointer({ k: lying.k + 1 }),
      f.pointer(),
      f.piece(0, {}, junk(f.pieceBytes + 2)), // the wrong size for this file's pointer
      f.piece(1, { k: other.k, n: other.n }, other.data[1]), // a piece of another file's shape
      f.piece(f.n, { n: f.n + 1 }), // more pieces than the pointer says
      f.piece(2), // a good one ...
      f.piece(2, {}, junk(f.pieceBytes)), // ... and a different piece under its index: a duplicate
      // The rest: enough good pieces (source 3..k-1 and recovery pieces for 0 and 1).
      ...Array.from({ length: f.k - 3 }, (_, j) => f.piece(3 + j)),
      f.piece(f.k),
      f.piece(f.k + 1),
    ];
    for (const e of events) nodeEvents.add(e.id);
    await Promise.all(relays.map((r) => publishAll(r.url, events)));
    await image(bob, "checked.bmp").waitFor({ timeout: 30_000 });
    assert.equal((await decodedSize(image(bob, "checked.bmp")))[0], 300);
    assert.ok((await attachmentHashes(bob)).includes(sha256(picture)));
    assert.equal(await bob.page.getByText("lying.bmp").count(), 0);
    assert.equal(await bob.page.locator(".chip-failed").filter({ hasText: "checked.bmp" }).count(), 0);
    assert.deepEqual(bob.errors.slice(errorsBefore), []);
  });

  test("a v2 file that does not match its SHA-256 stays failed as damaged when more of its pieces come", async () => {
    // bob's chat with carol is open (the test above).
    const picture = bmp(200, 210);
    const f = await carolPieces(picture, "wrong-v2.bmp");
    await carolSends([f.pointer({ sha256: sha256(Buffer.from("something else")) }), ...Array.from({ length: f.k }, (_, i) => f.piece(i))]);
    const chip = bob.page.locator(".chip-failed").filter({ hasText: "wrong-v2.bmp" });
    await chip.waitFor({ timeout: 30_000 });
    assert.match(await chip.textContent(), /The file arrived damaged \(its SHA-256 does not match\)/);
    // The redundancy keeps coming (no receipt stops it); once the text after it shows, it was handled.
    await carolSends([f.piece(f.k), carolEvent({ type: "text", text: "after the damaged file's last piece" })]);
    await bubbleWith(bob, "after the damaged file's last piece").waitFor({ timeout: 30_000 });
    assert.equal(await chip.count(), 1, "still failed");
    assert.match(await chip.textContent(), /arrived damaged/);
    assert.equal(await image(bob, "wrong-v2.bmp").count(), 0);
  });

  test("with one relay stopped, delivery still succeeds through the other; it catches up after", async () => {
    await openChat(bob, "alice@localhost");
    // Texts, receipts and pointers go to every relay (file pieces are striped, so each relay
    // has only its share of those): the small events relay one gets while two is down must
    // reach two once it is back.
    const small = (r) => new Set(r.events().filter((e) => e.content.length < 10_000).map((e) => e.id));
    const before = small(relays[0]);
    await relays[1].stop();
    try {
      await sendText(alice, "only one relay is up");
      await bubbleWith(bob, "only one relay is up").waitFor({ timeout: 30_000 });
      await statusOf(bubbleWith(alice, "only one relay is up"), "delivered");
      await sendText(bob, "got it through relay one");
      await bubbleWith(alice, "got it through relay one").waitFor({ timeout: 30_000 });
    } finally {
      await relays[1].restart();
    }
    const deadline = Date.now() + 30_000;
    let missing;
    do {
      await new Promise((r) => setTimeout(r, 500));
      const two = new Set(relays[1].events().map((e) => e.id));
      missing = [...small(relays[0])].filter((id) => !before.has(id) && !two.has(id));
    } while (missing.length > 0 && Date.now() < deadline);
    assert.deepEqual(missing, [], "relay two got every event it missed");
  });

  test("a sender the directory does not know is shown only by the key's fingerprint", async () => {
    const mallory = await openProfile("mallory");
    try {
      await mallory.page.goto(worker.url);
      await mallory.page.getByRole("button", { name: "Create a new identity" }).click();
      const fingerprint = await mallory.page.getByTestId("fingerprint").textContent();
      await mallory.page.getByRole("button", { name: "Continue without a handle" }).click();
      await mallory.page.getByTestId("me").getByText("No handle yet").waitFor();
      await saveContact(mallory, "bob");
      await openChat(mallory, "bob@localhost");
      await sendText(mallory, "trust me, I am alice");
      await openRequest(bob, `Unverified key ${fingerprint}`);
      await bubbleWith(bob, "trust me, I am alice").waitFor();
      await bob.page.getByTestId("request").waitFor();
    } finally {
      await mallory.close();
    }
  });

  test("the relay list comes from the server and can be edited", async () => {
    const { page } = alice;
    await showView(alice, "Settings");
    await page.getByRole("button", { name: "Edit relays" }).click();
    const field = page.getByLabel("Relays, one per line");
    assert.equal(await field.inputValue(), relays.map((r) => r.url).join("\n"));
    await field.fill("https://not-a-relay.example");
    await page.getByRole("button", { name: "Save relays" }).click();
    await page.getByText("“https://not-a-relay.example” is not a relay address (wss://…; plain ws:// only on this machine).").waitFor();
    await field.fill(relays[0].url);
    await page.getByRole("button", { name: "Save relays" }).click();
    await page.getByTestId("relays").locator("li").nth(1).waitFor({ state: "detached" });
    await page.reload();
    await page.getByTestId("relays").getByText(relays[0].url).waitFor();
    assert.equal(await page.getByTestId("relays").locator("li").count(), 1);
    await page.getByRole("button", { name: "Edit relays" }).click();
    await page.getByRole("button", { name: "Use the server's (2)" }).click();
    await page.getByTestId("relays").locator("li").nth(1).waitFor();
  });

  test("no client ever sent more than 5 events per second to a relay", () => {
    for (const p of [alice, bob]) {
      // Per connection: a reload opens new ones, with a new page and limiter. (Reconnects within
      // a page keep their limiter; counting them apart only makes this check less strict.)
      // Times are when the app called send(), on its own clock: what its limiter governs.
      const byConnection = Map.groupBy(p.eventSends, (s) => `${s.url} (${s.connection})`);
      assert.ok(byConnection.size >= 1, `${p.name} sent events`);
      for (const [connection, sends] of byConnection) {
        const at = sends.map((s) => s.at).sort((a, b) => a - b);
        const tightest = Math.min(...at.slice(5).map((t, i) => t - at[i]));
        // Any six consecutive events span at least a second.
        assert.ok(at.length < 6 || tightest >= 1000, `${p.name} -> ${connection}: 6 events within ${tightest.toFixed(1)} ms`);
        console.log(`# ${p.name} -> ${connection}: ${at.length} events, six in a row never within less than ${at.length < 6 ? "-" : (tightest / 1000).toFixed(3)} s`);
      }
    }
  });

  test("a request's file with all its redundant pieces leaves the quota room for the message after it", async () => {
    await openRequest(bob, `Unverified key ${proto.fingerprint(frank.publicKey)}`);
    await imageBubble(bob, "from-frank.bmp").waitFor({ timeout: 60_000 });
    await bubbleWith(bob, FRANKS_TEXT).waitFor({ timeout: 60_000 });
    // Kept: the k pieces that made the file whole, and the text; the rest dropped uncounted.
    const held = (await readStore(bob, "peers")).find((p) => p.key === frank.primary).value.held;
    assert.equal(held.bytes, franksFile.k * franksFile.pieceBytes + Buffer.byteLength(FRANKS_TEXT));
  });

  test("a transfer that stalls is marked failed, and completes when the rest comes after all", async () => {
    // Sent before the first test: its second chunk does not come (STALL_MS = 60 s).
    await openChat(bob, "carol@localhost");
    const chip = bob.page.locator(".chip-failed").filter({ hasText: "stalls-then-completes.bmp" });
    await chip.waitFor({ timeout: 90_000 });
    assert.match(await chip.textContent(), /The transfer stalled\. It goes on if the rest arrives\./);
    // carol was offline: the first chunk, whose event counts as handled, was kept for this.
    await carolSends([stalled.chunks[1]]);
    await image(bob, "stalls-then-completes.bmp").waitFor({ timeout: 30_000 });
    assert.equal(await chip.count(), 0);
    // dave's: whichever of his files came second past the quota failed, saying why.
    await openRequest(bob, `Unverified key ${proto.fingerprint(dave.publicKey)}`);
    const failed = bob.page.locator(".chip-failed").filter({ hasText: /(first|second)-of-two\.bmp/ });
    await failed.waitFor({ timeout: 90_000 });
    assert.equal(await failed.count(), 1);
    assert.match(await failed.textContent(), /Too large to take from someone you have not accepted: with what they sent before, it is more than the 1 MB a request keeps/);
    await openChat(bob, "carol@localhost");
  });

  test("the relays never saw plaintext, names or keys, and no author twice", () => {
    const events = storedEvents();
    assert.ok(events.length > 60, `${events.length} events`);
    const everything = JSON.stringify(events);
    // (Short strings such as "bob" occur in any long base64 text by chance: check long ones.)
    for (const secret of [...plaintexts, "alice@localhost", "bob@localhost", people.alice.slice(8), people.bob.slice(8), "small.bmp", "while-away.bmp"]) {
      assert.ok(!everything.includes(secret), `a relay saw ${JSON.stringify(secret)}`);
      // Base64 of the secret at each of the three byte alignments (for strings long enough
      // that the encoded middle cannot turn up in megabytes of ciphertext by chance).
      for (const pad of secret.length >= 16 ? ["", "x", "xx"] : []) {
        const encoded = Buffer.from(pad + secret).toString("base64").slice(4, -4);
        assert.ok(!everything.includes(encoded), `a relay saw base64 of ${secret}`);
      }
    }
    const unique = new Map(relays[0].events().map((e) => [e.pubkey, e.id]));
    assert.equal(unique.size, relays[0].events().length, "every event of a relay has its own author key");
    for (const e of events) {
      assert.equal(e.kind, KIND);
      assert.ok(e.content.length <= 256_000, `content of ${e.content.length} characters`);
      assert.deepEqual(e.tags.map((t) => t[0]), ["p"]);
    }
  });

  test("every EVENT the apps sent fits the tighter relay's 64 KiB, whole message counted", () => {
    for (const p of [alice, bob]) {
      const events = p.framesSent.filter((f) => f.data.startsWith('["EVENT"'));
      const largest = Math.max(...events.map((f) => f.bytes));
      assert.ok(largest <= TIGHT, `${p.name} sent an EVENT message of ${largest} bytes`);
      console.log(`# ${p.name}: ${events.length} EVENT messages, the largest ${largest} bytes (limit ${TIGHT})`);
    }
    for (const e of relays[1].events().filter((e) => !nodeEvents.has(e.id))) {
      assert.ok(JSON.stringify(["EVENT", e]).length <= TIGHT);
    }
  });

  test("no page error, and no connection but the home server and the relays the tests gave", () => {
    // The relays' origins over WebSocket, and over http for their NIP-11 documents.
    const allowed = new Set([new URL(worker.url).origin, ...[...relays, ...otherRelays].flatMap((r) => [new URL(r.url).origin, r.url.replace(/^ws/, "http")])]);
    for (const p of [alice, bob]) {
      assert.deepEqual(p.errors, [], `${p.name}: page errors`);
      assert.deepEqual(p.requests.filter((u) => !allowed.has(new URL(u).origin) && !u.startsWith("blob:")), []);
    }
  });
});
