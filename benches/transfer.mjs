// The file-transfer benchmark (not a test: it prints figures and asserts only that every file
// arrived byte-identical). Five local relays (PyPI nostr-relay) each limited to 64 KiB events,
// sent at most 5 events/s each by the app's own pacing (nostr-relay's own rate limiter is not
// used: it doubles a connection's delay for good on every rate-limited answer, so one burst of
// scheduling jitter slows that connection for the rest of the run), the worker in workerd,
// two headless Chromium profiles; each file is sent
// striped (the app's default) and the naive way (every piece to every relay, no redundancy),
// in the same run, with all five relays working and with two of them replaced by relays that
// accept the connection and deliver nothing.
//
//   ./scripts/bench-transfer.sh
import assert from "node:assert/strict";
import { attachmentHashes, bmp, openChat, saveContact, sendImageAndTime, setStriping, setUp, sha256, useRelays } from "../tests/support/chat.mjs";
import { startRelay, startSilentRelay } from "../tests/support/relay.mjs";
import { startWorker } from "../tests/support/worker.mjs";

const log = (...a) => console.error("[bench]", ...a);
const LIMIT = { maxEventSize: 65_536 };

const working = [];
for (let i = 0; i < 5; i++) working.push(await startRelay(LIMIT));
const silent = [await startSilentRelay(), await startSilentRelay()];
const worker = await startWorker(["--var", `NOSTR_RELAYS:${working.map((r) => r.url).join(",")}`]);
const { p: alice } = await setUp(worker.url, "alice");
const { p: bob } = await setUp(worker.url, "bob");

const rows = [];
try {
  await saveContact(alice, "bob");
  await saveContact(bob, "alice");
  await openChat(alice, "bob@localhost");
  await openChat(bob, "alice@localhost");
  const setups = [
    { label: "5 relays", relays: working.map((r) => r.url) },
    { label: "5 relays, 2 deliver nothing", relays: [...working.slice(0, 3), ...silent].map((r) => r.url) },
  ];
  const files = [
    { label: "5 MB image", make: () => bmp(1280, 1365) },
    { label: "10 MB image", make: () => bmp(1810, 1930) },
  ];
  let n = 0;
  for (const setup of setups) {
    await useRelays(alice, setup.relays);
    await useRelays(bob, setup.relays);
    for (const file of files) {
      const times = {};
      for (const striped of [true, false]) {
        await setStriping(alice, striped);
        const bytes = file.make();
        const name = `bench-${n++}.bmp`;
        log(`${setup.label}: ${file.label} (${bytes.length} bytes), ${striped ? "striped" : "naive"}`);
        const { seconds } = await sendImageAndTime(alice, bob, bytes, name, 300_000);
        assert.ok((await attachmentHashes(bob)).includes(sha256(bytes)), `${name} arrived byte-identical`);
        times[striped ? "striped" : "naive"] = seconds;
        // Let the redundant pieces drain before the next transfer starts.
        await new Promise((r) => setTimeout(r, 8_000));
      }
      rows.push({ setup: setup.label, file: file.label, ...times });
    }
  }
} finally {
  await alice.close();
  await bob.close();
  await worker.stop();
  for (const r of [...working, ...silent]) await r.close();
}

console.log(`\nFile transfer, end to end (the sender's app has the file -> the recipient's page shows it), ${new Date().toISOString().slice(0, 10)}`);
console.log("relays: PyPI nostr-relay 1.14, max_event_size 65,536 (no NIP-11 limits: 64 KiB events assumed, pieces of 48,156 bytes); the app sends each relay at most 5 events/s");
console.log("| relays | file | striped (s) | naive (s) | naive / striped |");
console.log("|---|---|---:|---:|---:|");
for (const r of rows) console.log(`| ${r.setup} | ${r.file} | ${r.striped.toFixed(2)} | ${r.naive.toFixed(2)} | ${(r.naive / r.striped).toFixed(2)}× |`);
