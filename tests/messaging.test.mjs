// End-to-end encrypted messages and files over nostr relays: two local relays (PyPI
// nostr-relay), the worker in workerd, and two headless Chromium profiles, alice and bob.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import path from "node:path";
import { mkdirSync } from "node:fs";
import { ARTIFACTS, openProfile } from "./support/browser.mjs";
import { freshEnvelope, identity as nodeIdentity, postRegister } from "./support/kez.mjs";
import { loadProtocol, publishAll } from "./support/protocol.mjs";
import { startRelay } from "./support/relay.mjs";
import { startWorker } from "./support/worker.mjs";

const KIND = 4260;
let worker;
let relays = [];
let alice;
let bob;
const people = {};
const plaintexts = [];
/** The app's protocol code, for carol: a second client driven from Node. */
let proto;
let carol;

/** Events carrying `bytes` from carol to bob as chunks + pointer (`claimedSha256` may lie). */
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

const carolSends = (events) => Promise.all(relays.map((r) => publishAll(r.url, events)));

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

/** An uncompressed 24-bit BMP of random pixels: a real image of a chosen size. */
function bmp(width, height) {
  const row = Math.ceil((width * 3) / 4) * 4;
  const header = Buffer.alloc(54);
  header.write("BM", 0);
  header.writeUInt32LE(54 + row * height, 2);
  header.writeUInt32LE(54, 10);
  header.writeUInt32LE(40, 14);
  header.writeInt32LE(width, 18);
  header.writeInt32LE(height, 22);
  header.writeUInt16LE(1, 26);
  header.writeUInt16LE(24, 28);
  header.writeUInt32LE(row * height, 34);
  return Buffer.concat([header, randomBytes(row * height)]);
}

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

async function setUp(name) {
  const p = await openProfile(name);
  await p.page.goto(worker.url);
  await p.page.getByRole("button", { name: "Create a new identity" }).click();
  const primary = await p.page.getByTestId("primary").textContent();
  const input = p.page.getByLabel("Handle", { exact: true });
  await input.fill(name);
  await input.press("Enter");
  await p.page.getByTestId("registered").waitFor();
  return { p, primary };
}

async function saveContact(p, handle) {
  await p.page.getByLabel("Handle, handle@domain or key").fill(handle);
  await p.page.getByRole("button", { name: "Look up" }).click();
  await p.page.getByTestId("lookup-result").getByRole("button", { name: "Save contact" }).click();
  await p.page.getByTestId("contacts").getByText(`${handle}@localhost`).waitFor();
}

async function openChat(p, name) {
  await p.page.getByRole("button", { name: `Open chat with ${name}` }).click();
  await p.page.locator("#chat-title").getByText(name, { exact: true }).waitFor();
}

async function sendText(p, text) {
  plaintexts.push(text);
  const input = p.page.getByLabel("Message", { exact: true });
  await input.fill(text);
  await input.press("Enter");
}

/** The chat's bubble holding `text`, or the image named `name`. */
const bubbleWith = (p, text) => p.page.getByTestId("bubble").filter({ hasText: text });
const imageBubble = (p, name) => p.page.getByTestId("bubble").filter({ has: p.page.getByAltText(name, { exact: true }) });
const image = (p, name) => p.page.getByAltText(name, { exact: true });

async function statusOf(bubble, status) {
  await bubble.and(bubble.page().locator(`[data-status=${status}]`)).waitFor({ timeout: 30_000 });
}

/** SHA-256 of every attachment stored in the page's IndexedDB. */
function attachmentHashes(p) {
  return p.page.evaluate(
    () =>
      new Promise((resolve, reject) => {
        const request = indexedDB.open("kez-chat");
        request.onerror = () => reject(request.error);
        request.onsuccess = () => {
          const all = request.result.transaction("attachments").objectStore("attachments").getAll();
          all.onsuccess = async () => {
            const hashes = [];
            for (const blob of all.result) {
              const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
              hashes.push([...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join(""));
            }
            request.result.close();
            resolve(hashes);
          };
        };
      }),
  );
}

async function attachFile(p, file) {
  await p.page.getByTestId("file-input").setInputFiles(file);
}

function storedEvents() {
  return relays.flatMap((r) => r.events());
}

before(async () => {
  relays = [await startRelay(), await startRelay()];
  worker = await startWorker(["--var", `NOSTR_RELAYS:${relays.map((r) => r.url).join(",")}`]);
  ({ p: alice, primary: people.alice } = await setUp("alice"));
  ({ p: bob, primary: people.bob } = await setUp("bob"));
  proto = await loadProtocol();
  const seed = nodeIdentity();
  carol = proto.identityFromSeed(Buffer.from(seed.seedHex, "hex"));
  assert.equal((await postRegister(worker.url, freshEnvelope("localhost", { handle: "carol", id: seed }).envelope)).status, 201);
  // Started now, checked by the last test: a transfer that never completes (one of two chunks).
  const stalled = carolFile(bmp(256, 300), "never-complete.bmp");
  await carolSends([stalled.pointer, stalled.chunks[0]]);
  // Only alice saves a contact: bob learns who wrote to him from the directory.
  await saveContact(alice, "bob");
  await openChat(alice, "bob@localhost");
});

after(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  for (const p of [alice, bob]) await p?.page.screenshot({ path: path.join(ARTIFACTS, `messaging-${p.name}.png`), fullPage: true });
  await alice?.close();
  await bob?.close();
  await worker?.stop();
  for (const r of relays) await r.close();
});

describe("messages over nostr relays, in headless Chromium", () => {
  test("both relays are used", async () => {
    for (const p of [alice, bob]) {
      for (const r of relays) await p.page.getByTestId("relays").getByText(r.url).waitFor();
      await p.page.getByTestId("relays").locator(".dot.open").nth(1).waitFor();
    }
  });

  test("text both ways, each delivered with a receipt", async () => {
    await sendText(alice, "hello bob, this is alice");
    const mine = bubbleWith(alice, "hello bob, this is alice");
    await mine.waitFor(); // local echo
    // bob has not saved alice: her name appears once the directory's signed binding checks out.
    await bob.page.getByRole("button", { name: "Open chat with alice@localhost" }).waitFor({ timeout: 30_000 });
    await openChat(bob, "alice@localhost");
    await bubbleWith(bob, "hello bob, this is alice").waitFor({ timeout: 30_000 });
    await statusOf(mine, "delivered");
    assert.equal(await mine.getByTestId("status").textContent(), "Delivered");

    await sendText(bob, "hi alice! ✓ 😀");
    await bubbleWith(alice, "hi alice! ✓ 😀").waitFor({ timeout: 30_000 });
    await statusOf(bubbleWith(bob, "hi alice! ✓ 😀"), "delivered");
  });

  test("a 50 KB image travels inline in one event and renders", async () => {
    const small = bmp(128, 128);
    assert.ok(small.length > 48_000 && small.length < 80 * 1024);
    const before = await settledEventCount();
    await attachFile(alice, { name: "small.bmp", mimeType: "image/bmp", buffer: small });
    await image(alice, "small.bmp").waitFor(); // the local echo
    const received = image(bob, "small.bmp");
    await received.waitFor({ timeout: 30_000 });
    assert.equal(await received.evaluate(async (img) => (await img.decode(), img.naturalWidth)), 128);
    assert.ok((await attachmentHashes(bob)).includes(sha256(small)));
    await statusOf(imageBubble(alice, "small.bmp"), "delivered");
    // One event for the file on each relay, plus bob's receipt on each.
    assert.equal((await settledEventCount()) - before, 2 * 2);
  });

  test("a 5 MB image is chunked, arrives byte-identical and renders", async () => {
    const big = bmp(1280, 1365);
    assert.ok(big.length > 5_000_000);
    // End to end = from the moment alice's app has the picked file (the input's change event)
    // to the moment bob's page has decoded the image; both clocks are this machine's.
    await alice.page.getByTestId("file-input").evaluate((input) => input.addEventListener("change", () => (window.kezPickedAt = Date.now()), { once: true }));
    const started = performance.now();
    await attachFile(alice, { name: "big.bmp", mimeType: "image/bmp", buffer: big });
    const pickedAt = await alice.page.evaluate(() => window.kezPickedAt);
    await image(alice, "big.bmp").waitFor();
    const echoedAt = await alice.page.evaluate(() => Date.now());
    const received = image(bob, "big.bmp");
    await received.waitFor({ timeout: 60_000 });
    const [width, renderedAt] = await received.evaluate(async (img) => (await img.decode(), [img.naturalWidth, Date.now()]));
    const wall = (performance.now() - started) / 1000;
    assert.equal(width, 1280);
    assert.ok((await attachmentHashes(bob)).includes(sha256(big)));
    await statusOf(imageBubble(alice, "big.bmp"), "delivered");
    await alice.screenshot("7-chat-sent");
    await bob.screenshot("8-chat-received");
    const chunks = Math.ceil(big.length / 191_400);
    console.log(
      `# 5 MB image (${big.length} bytes, ${chunks} chunks + 1 pointer, 5 events/s per relay): ` +
        `end to end ${((renderedAt - pickedAt) / 1000).toFixed(2)} s (alice's app has the file -> bob's page shows it); ` +
        `local echo after ${((echoedAt - pickedAt) / 1000).toFixed(2)} s; ${wall.toFixed(2)} s including the test feeding the file into the page`,
    );
  });

  test("a 120 KB non-image file travels as one chunk and a pointer, and shows as a download", async () => {
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
    console.log(`# reload mid-transfer with the relays down: ${had}/${total} chunks before the reload, ${kept}/${total} kept after it`);
  });

  test("a file whose pointer comes first and chunks out of order still arrives", async () => {
    const picture = bmp(400, 400); // 480,054 bytes: 3 chunks
    const { chunks, pointer } = carolFile(picture, "pointer-first.bmp");
    assert.equal(chunks.length, 3);
    await carolSends([pointer, chunks[2], chunks[0], chunks[1]]);
    await bob.page.getByRole("button", { name: "Open chat with carol@localhost" }).waitFor({ timeout: 30_000 });
    await openChat(bob, "carol@localhost");
    await image(bob, "pointer-first.bmp").waitFor({ timeout: 30_000 });
    assert.ok((await attachmentHashes(bob)).includes(sha256(picture)));
  });

  test("a file that does not match its SHA-256 is marked failed, with a red chip", async () => {
    const picture = bmp(300, 300);
    const { chunks, pointer } = carolFile(picture, "tampered.bmp", { claimedSha256: sha256(Buffer.from("something else")) });
    await carolSends([...chunks, pointer]);
    const chip = bob.page.locator(".chip-failed").filter({ hasText: "tampered.bmp" });
    await chip.waitFor({ timeout: 30_000 });
    assert.match(await chip.textContent(), /The file arrived damaged \(its SHA-256 does not match\)/);
    assert.equal(await image(bob, "tampered.bmp").count(), 0);
  });

  test("with one relay stopped, delivery still succeeds through the other; it catches up after", async () => {
    await openChat(bob, "alice@localhost");
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
    // The events relay two missed were kept and sent again once it was back.
    const ids = (r) => new Set(r.events().map((e) => e.id));
    const deadline = Date.now() + 30_000;
    let missing;
    do {
      await new Promise((r) => setTimeout(r, 500));
      const two = ids(relays[1]);
      missing = [...ids(relays[0])].filter((id) => !two.has(id));
    } while (missing.length > 0 && Date.now() < deadline);
    assert.deepEqual(missing, [], "relay two got every event it missed");
  });

  test("a sender the directory does not know is shown only by the key's fingerprint", async () => {
    const mallory = await openProfile("mallory");
    try {
      await mallory.page.goto(worker.url);
      await mallory.page.getByRole("button", { name: "Create a new identity" }).click();
      const fingerprint = await mallory.page.getByTestId("fingerprint").textContent();
      await saveContact(mallory, "bob");
      await openChat(mallory, "bob@localhost");
      await sendText(mallory, "trust me, I am alice");
      await bob.page.getByRole("button", { name: `Open chat with Unverified key ${fingerprint}` }).waitFor({ timeout: 30_000 });
      await openChat(bob, `Unverified key ${fingerprint}`);
      await bubbleWith(bob, "trust me, I am alice").waitFor();
    } finally {
      await mallory.close();
    }
  });

  test("the relay list comes from the server and can be edited", async () => {
    const { page } = alice;
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
      const byRelay = Map.groupBy(p.framesSent.filter((f) => f.data.startsWith('["EVENT"')), (f) => `${f.url} (${f.connection})`);
      assert.ok(byRelay.size >= 1, `${p.name} sent events`);
      for (const [url, frames] of byRelay) {
        const at = frames.map((f) => f.at).sort((a, b) => a - b);
        const tightest = Math.min(...at.slice(5).map((t, i) => t - at[i]));
        // Any six consecutive events span at least a second (1 ms of clock rounding allowed).
        assert.ok(at.length < 6 || tightest >= 0.999, `${p.name} -> ${url}: 6 events within ${tightest.toFixed(3)} s`);
        console.log(`# ${p.name} -> ${url}: ${at.length} events, six in a row never within less than ${at.length < 6 ? "-" : tightest.toFixed(3)} s`);
      }
    }
  });

  test("a transfer that stalls is marked failed", async () => {
    // Sent before the first test: one of its two chunks never comes (STALL_MS = 60 s).
    await openChat(bob, "carol@localhost");
    const chip = bob.page.locator(".chip-failed").filter({ hasText: "never-complete.bmp" });
    await chip.waitFor({ timeout: 90_000 });
    assert.match(await chip.textContent(), /The transfer stalled/);
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

  test("no page error, and no connection but the home server and the two relays", () => {
    const allowed = new Set([new URL(worker.url).origin, ...relays.map((r) => new URL(r.url).origin)]);
    for (const p of [alice, bob]) {
      assert.deepEqual(p.errors, [], `${p.name}: page errors`);
      assert.deepEqual(p.requests.filter((u) => !allowed.has(new URL(u).origin) && !u.startsWith("blob:")), []);
    }
  });
});
