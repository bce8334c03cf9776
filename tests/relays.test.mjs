// Files over relays as people meet them: five relays of which two accept the connection and
// then deliver nothing, a relay that answers `rate-limited:`, and nostr-rs-relay (software
// nobody here wrote) with its shipped configuration. The worker in workerd, two headless
// Chromium profiles.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  attachmentHashes,
  bmp,
  bubbleWith,
  imageBubble,
  openChat,
  showView,
  saveContact,
  sendImageAndTime,
  setUp,
  sha256,
  useRelays,
  statusOf,
  typeAndSend,
} from "./support/chat.mjs";
import { startNostrRsRelay, startRelay, startSilentRelay } from "./support/relay.mjs";
import { startWorker } from "./support/worker.mjs";

let worker;
/** Three working relays limited like strfry's default (64 KiB), then two that deliver nothing. */
let five = [];
let alice;
let bob;

/** EVENT messages a profile sent to `url` so far (frames carry the normalised URL, with its "/"). */
const eventFrames = (p, url) => p.framesSent.filter((f) => new URL(f.url).href === new URL(url).href && f.data.startsWith('["EVENT"'));
const eventsSentTo = (p, url) => eventFrames(p, url).length;

before(async () => {
  five = [
    await startRelay({ maxEventSize: 65_536 }),
    await startRelay({ maxEventSize: 65_536 }),
    await startRelay({ maxEventSize: 65_536 }),
    await startSilentRelay(),
    await startSilentRelay(),
  ];
  worker = await startWorker(["--var", `NOSTR_RELAYS:${five.map((r) => r.url).join(",")}`]);
  ({ p: alice } = await setUp(worker.url, "alice"));
  ({ p: bob } = await setUp(worker.url, "bob"));
  await saveContact(alice, "bob");
  await saveContact(bob, "alice");
  await openChat(alice, "bob@localhost");
  await openChat(bob, "alice@localhost");
});

after(async () => {
  await alice?.close();
  await bob?.close();
  await worker?.stop();
  for (const r of five) await r.close();
});

describe("files over relays as people meet them, in headless Chromium", () => {
  test("two of five relays deliver nothing: a 5 MB image still arrives, byte-identical", async () => {
    const big = bmp(1280, 1365);
    const { seconds, width } = await sendImageAndTime(alice, bob, big, "two-dead.bmp");
    assert.equal(width, 1280);
    assert.ok((await attachmentHashes(bob)).includes(sha256(big)));
    await statusOf(imageBubble(alice, "two-dead.bmp"), "delivered");
    // The silent relays were sent their share (striping), and stored nothing.
    const silent = five.slice(3);
    for (const r of silent) assert.ok(r.eventsReceived() > 0, `${r.url} was sent pieces`);
    const working = five.slice(0, 3).map((r) => r.events().length);
    const frames = five.flatMap((r) => eventFrames(alice, r.url)).map((f) => f.at);
    const span = Math.max(...frames) - Math.min(...frames);
    console.log(
      `# 5 MB image, 5 relays (64 KiB events, 5 events/s) of which 2 deliver nothing: end to end ${seconds.toFixed(2)} s; ` +
        `alice sent ${frames.length} EVENT messages in all, the first to the last ${span.toFixed(2)} s apart; the working relays stored ${working.join(", ")} events`,
    );
  });

  test("a relay that answers rate-limited: slows the transfer down, and it completes", async () => {
    const limited = await startRelay({ maxEventSize: 65_536, eventsPerSecond: 2 });
    try {
      await useRelays(alice, [limited.url]);
      await useRelays(bob, [limited.url]);
      const picture = bmp(200, 330); // ~200 KB: 5 pieces and a pointer, more than 2 per second
      const { seconds } = await sendImageAndTime(alice, bob, picture, "rate-limited.bmp");
      assert.ok((await attachmentHashes(bob)).includes(sha256(picture)));
      const sent = eventsSentTo(alice, limited.url);
      const stored = limited.events().length;
      assert.ok(limited.rateLimitedAnswers() > 0, "the relay did answer rate-limited:");
      // Every rate-limited event was sent again: more EVENT messages than events stored.
      assert.ok(sent > stored, `${sent} EVENT messages for ${stored} stored events`);
      console.log(`# rate-limited relay (2 events/s): 200 KB image in ${seconds.toFixed(2)} s; ${limited.rateLimitedAnswers()} rate-limited answers, ${sent} EVENT messages for ${stored} stored events`);
    } finally {
      await limited.close();
    }
  });

  test("nostr-rs-relay with its shipped configuration: text and a 5 MB image arrive", async () => {
    const rs = await startNostrRsRelay();
    try {
      await useRelays(alice, [rs.url]);
      await useRelays(bob, [rs.url]);
      // Its NIP-11 document states no size (only payment_required): 64 KiB is assumed, below its 128 KiB.
      await showView(alice, "Settings");
      const limit = alice.page.getByTestId("relay").filter({ hasText: rs.url }).getByTestId("relay-limit");
      await limit.getByText("takes 64 KB events (assumed: no limits published)").waitFor();
      await openChat(alice, "bob@localhost");
      await typeAndSend(alice, "hello over nostr-rs-relay");
      await bubbleWith(bob, "hello over nostr-rs-relay").waitFor({ timeout: 30_000 });
      const big = bmp(1280, 1365);
      const { seconds } = await sendImageAndTime(alice, bob, big, "rs-relay.bmp");
      assert.ok((await attachmentHashes(bob)).includes(sha256(big)));
      await statusOf(imageBubble(alice, "rs-relay.bmp"), "delivered");
      console.log(`# 5 MB image over nostr-rs-relay alone: end to end ${seconds.toFixed(2)} s`);
    } finally {
      await rs.close();
    }
  });

  test("no page error", () => {
    for (const p of [alice, bob]) assert.deepEqual(p.errors, [], `${p.name}: page errors`);
  });
});
