import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { exclusively } from "../src/lib/exclusive";

/** A promise and the function that settles it. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

describe("exclusively (the in-page turns, where the browser has no Web Locks)", () => {
  // A navigator without Web Locks, whatever this Node offers.
  beforeEach(() => vi.stubGlobal("navigator", {}));
  afterEach(() => vi.unstubAllGlobals());

  it("keeps two read-check-writes of one record from overwriting each other", async () => {
    let stored = 0;
    const first = gate();
    // The first reads, then waits (for a network answer, say) until the second has started.
    const increment = (wait: Promise<void>) =>
      exclusively("counter", async () => {
        const read = stored;
        await wait;
        stored = read + 1;
      });
    const a = increment(first.opened);
    const b = increment(Promise.resolve());
    first.open();
    await Promise.all([a, b]);
    expect(stored).toBe(2);
  });

  it("starts the next update once one fails, and hands the failure to its own caller", async () => {
    const failing = exclusively("failing", async () => {
      throw new Error("tile refused");
    });
    const next = exclusively("failing", async () => "ran");
    await expect(failing).rejects.toThrow("tile refused");
    await expect(next).resolves.toBe("ran");
  });

  it("lets updates of other records run while one waits", async () => {
    const held = gate();
    const order: string[] = [];
    const slow = exclusively("log a.example", async () => {
      await held.opened;
      order.push("a");
    });
    await exclusively("log b.example", async () => {
      order.push("b");
    });
    held.open();
    await slow;
    expect(order).toEqual(["b", "a"]);
  });
});
