import { describe, expect, it } from "vitest";
import { Backlog, withinBounds } from "../src/lib/intake";
import { newIdentity } from "../src/lib/identity";
import { wrap } from "../src/lib/nostr";
import { CONTENT_CEILING, MAX_PADDED, seal } from "../src/lib/seal";

describe("withinBounds", () => {
  it("takes our largest event", () => {
    const event = wrap(seal(new Uint8Array(MAX_PADDED - 4), newIdentity().publicKey), newIdentity().publicKey);
    expect(event.content.length).toBeLessThanOrEqual(CONTENT_CEILING);
    expect(withinBounds(event)).toBe(true);
  });

  it("refuses larger content and odd tags", () => {
    const event = wrap(seal(new Uint8Array(10), newIdentity().publicKey), newIdentity().publicKey);
    const refused = [
      { ...event, content: "A".repeat(CONTENT_CEILING + 1) },
      { ...event, content: undefined },
      { ...event, tags: undefined },
      { ...event, tags: Array.from({ length: 17 }, () => ["p", "x"]) },
      { ...event, tags: [["p", "x".repeat(257)]] },
      { ...event, tags: [Array.from({ length: 9 }, () => "x")] },
      { ...event, tags: [["p", 5]] },
      { ...event, tags: ["p"] },
    ];
    for (const e of refused) expect(withinBounds(e as never), JSON.stringify(e).slice(0, 80)).toBe(false);
  });
});

describe("Backlog", () => {
  it("holds at most its events and characters, and frees them when done", () => {
    const backlog = new Backlog(3, 100);
    expect(backlog.add("a", 40)).toBe(true);
    expect(backlog.add("b", 40)).toBe(true);
    expect(backlog.add("c", 30)).toBe(false); // 110 characters
    expect(backlog.add("c", 20)).toBe(true);
    expect(backlog.add("d", 0)).toBe(false); // 4 events
    expect(backlog.size).toBe(3);
    expect(backlog.done("a")).toBe(0);
    expect(backlog.add("d", 40)).toBe(true);
    expect(backlog.add("e", 1)).toBe(false);
    // An answer to a request of ours is taken past the bounds, and counts against them.
    expect(backlog.add("e", 1000, true)).toBe(true);
    expect(backlog.size).toBe(4);
    backlog.done("b");
    backlog.done("c");
    expect(backlog.add("f", 1)).toBe(false); // still 1,080 characters waiting
    backlog.done("e");
    expect(backlog.add("f", 1)).toBe(true);
  });

  it("counts copies of what waits without keeping them, and only while it waits", () => {
    const backlog = new Backlog();
    expect(backlog.copyOf("a")).toBe(false);
    backlog.add("a", 10);
    expect(backlog.copyOf("a")).toBe(true);
    expect(backlog.copyOf("a")).toBe(true);
    expect(backlog.add("a", 10)).toBe(true);
    expect(backlog.size).toBe(1);
    expect(backlog.done("a")).toBe(2);
    expect(backlog.done("a")).toBe(0);
    expect(backlog.copyOf("a")).toBe(false);
    expect(backlog.size).toBe(0);
  });
});
