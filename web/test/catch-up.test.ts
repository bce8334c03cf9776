// Paging back through what a relay stored (catch-up.ts), against relays that answer as real
// ones do: a cap on each request, newest first, and `until` taken as "before" (nostr-relay
// 1.14, measured) or "at or before" (NIP-01, strfry); and against a relay that ignores
// `until`, and a flood past the bounds.
import { describe, expect, it } from "vitest";
import { CATCH_UP_MAX_EVENTS, CATCH_UP_MAX_PAGES, type FetchPage, StoredEvents, pageBack } from "../src/lib/catch-up";

interface Stored {
  id: string;
  created_at: number;
}

let n = 0;
const stored = (created_at: number): Stored => ({ id: (n++).toString(16).padStart(64, "0"), created_at });

/** A relay holding `events` (all at or after `since`), answering each page as `kind` relays do, at most `cap` events. */
function relay(events: Stored[], cap: number, kind: "before" | "at or before" | "ignores until") {
  let pages = 0;
  const fetchPage: FetchPage = async (until, onevent) => {
    pages++;
    const asked = events.filter((e) => kind === "ignores until" || (kind === "before" ? e.created_at < until : e.created_at <= until));
    for (const e of asked.sort((a, b) => b.created_at - a.created_at).slice(0, cap)) onevent(e);
  };
  return { fetchPage, pages: () => pages };
}

/** What a subscription with `cap` hands over before its EOSE: the newest `cap`. */
function subscription(events: Stored[], cap: number): StoredEvents {
  const seen = new StoredEvents();
  for (const e of [...events].sort((a, b) => b.created_at - a.created_at).slice(0, cap)) seen.note(e);
  return seen;
}

describe("pageBack", () => {
  for (const kind of ["before", "at or before"] as const) {
    it(`finds a message under a flood of newer events, on a relay that takes until as "${kind}"`, async () => {
      const message = stored(1_000);
      const flood = Array.from({ length: 40 }, (_, i) => stored(1_010 + i));
      const events = [message, ...flood];
      const seen = subscription(events, 10);
      expect(seen.ids.has(message.id)).toBe(false);
      const { fetchPage, pages } = relay(events, 10, kind);
      expect(await pageBack(900, seen, fetchPage)).toBe(true);
      expect(seen.ids.has(message.id)).toBe(true);
      expect(seen.ids.size).toBe(events.length);
      expect(pages()).toBeLessThan(10);
    });
  }

  it("moves past a second holding more events than a page: the older seconds are all found", async () => {
    const older = Array.from({ length: 15 }, (_, i) => stored(1_000 + i));
    const tie = Array.from({ length: 30 }, () => stored(2_000));
    const events = [...older, ...tie];
    for (const kind of ["before", "at or before"] as const) {
      const seen = subscription(events, 10);
      expect(await pageBack(900, seen, relay(events, 10, kind).fetchPage)).toBe(true);
      for (const e of older) expect(seen.ids.has(e.id), kind).toBe(true);
    }
  });

  it("is through at once when the subscription had everything, or nothing", async () => {
    const events = Array.from({ length: 5 }, (_, i) => stored(1_000 + i));
    const all = relay(events, 10, "at or before");
    expect(await pageBack(900, subscription(events, 10), all.fetchPage)).toBe(true);
    expect(all.pages()).toBe(2); // the events of the oldest second again (nothing new), then nothing
    const none = relay([], 10, "before");
    expect(await pageBack(900, new StoredEvents(), none.fetchPage)).toBe(true);
    expect(none.pages()).toBe(0);
  });

  it("gives up after CATCH_UP_MAX_PAGES on a relay that ignores until", async () => {
    const events = Array.from({ length: 10 }, (_, i) => stored(100_000 + i));
    const ignoring = relay(events, 10, "ignores until");
    expect(await pageBack(0, subscription(events, 10), ignoring.fetchPage)).toBe(false);
    expect(ignoring.pages()).toBe(CATCH_UP_MAX_PAGES);
  });

  it("keeps at most CATCH_UP_MAX_EVENTS ids, and only event ids", () => {
    const seen = new StoredEvents();
    seen.note({ id: "x".repeat(1_000_000), created_at: 1 });
    seen.note({ id: "A".repeat(64), created_at: 1 });
    expect(seen.ids.size).toBe(0);
    expect(seen.oldest).toBe(Infinity);
    for (let i = 0; i < CATCH_UP_MAX_EVENTS + 100; i++) seen.note(stored(2_000));
    expect(seen.ids.size).toBe(CATCH_UP_MAX_EVENTS);
  });

  it("gives up after CATCH_UP_MAX_EVENTS of a flood", async () => {
    const events = Array.from({ length: CATCH_UP_MAX_EVENTS + 500 }, (_, i) => stored(1_000 + i));
    const seen = subscription(events, 250);
    expect(await pageBack(900, seen, relay(events, 250, "before").fetchPage)).toBe(false);
    expect(seen.ids.size).toBe(CATCH_UP_MAX_EVENTS);
  });

  it("counts no event without an id or a time, and a page that fails rejects", async () => {
    const seen = new StoredEvents();
    for (const junk of [null, 7, {}, { id: "x" }, { id: 1, created_at: 5 }, { id: "y", created_at: 1.5 }]) seen.note(junk);
    expect(seen.ids.size).toBe(0);
    seen.note(stored(1_000));
    await expect(pageBack(900, seen, () => Promise.reject(new Error("connection lost")))).rejects.toThrow("connection lost");
  });
});
