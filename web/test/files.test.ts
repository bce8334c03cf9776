// Publishing a file's pieces (files.ts) over relays whose answers the test decides: striping,
// a relay that refuses pieces for good losing its share to the others, silent relays covered
// by the redundancy, the top-up when too few pieces got through, and withdrawing on delivery.
import { describe, expect, it, vi } from "vitest";
import { type PiecePlan, publishPieces } from "../src/lib/files";
import type { Body } from "../src/lib/message";
import type { NostrEvent } from "../src/lib/nostr";
import { type Relay, RelayRefusal } from "../src/lib/relay";
import { stripe } from "../src/lib/transfer";

type Behaviour = "accept" | "refuse" | "silent";

/** A relay that answers every event as told, and records the piece indices it was given. */
class FakeRelay {
  got: number[] = [];
  withdrawn = 0;
  private waiting = new Map<string, (e: RelayRefusal) => void>();
  constructor(
    readonly url: string,
    public behaviour: Behaviour,
  ) {}
  publish(event: NostrEvent): Promise<void> {
    this.got.push(JSON.parse(event.content).i);
    if (this.behaviour === "accept") return Promise.resolve();
    if (this.behaviour === "refuse") return Promise.reject(new RelayRefusal(this.url, "refused", "invalid: too big"));
    return new Promise((_, reject) => this.waiting.set(event.id, reject));
  }
  /** No queue of its own: always room. */
  roomFor(): Promise<void> {
    return Promise.resolve();
  }
  withdraw(ids: Set<string>) {
    for (const id of ids) {
      const reject = this.waiting.get(id);
      if (!reject) continue;
      this.waiting.delete(id);
      this.withdrawn += 1;
      reject(new RelayRefusal(this.url, "withdrawn", "moved"));
    }
  }
  /** A silent relay finally gives up on everything it holds. */
  giveUp() {
    for (const [id, reject] of this.waiting) {
      this.waiting.delete(id);
      reject(new RelayRefusal(this.url, "unanswered", "no answer"));
    }
  }
}

let nextId = 0;
/** Events whose content is the body itself, so the fake relays can read the piece index. */
const sink = {
  event: (body: Body): NostrEvent => ({ id: String(nextId++), pubkey: "", created_at: 0, kind: 4260, tags: [], content: JSON.stringify(body), sig: "" }),
  progress: () => {},
};

/** Waits (real time, briefly) until `done()` holds. */
async function until(done: () => boolean) {
  for (let i = 0; i < 500 && !done(); i++) await new Promise((r) => setTimeout(r, 2));
  expect(done()).toBe(true);
}

function setUp(behaviours: Behaviour[], k: number) {
  const fakes = behaviours.map((b, r) => new FakeRelay(`wss://r${r}`, b));
  const urls = fakes.map((f) => f.url);
  const perRelay = Math.ceil(k / Math.max(1, behaviours.length - 2));
  const n = perRelay * behaviours.length;
  const plan: PiecePlan = { k, n, pieceBytes: 2, maxPadded: 512, shares: stripe(n, urls) };
  const pieces = Array.from({ length: n }, () => new Uint8Array(2));
  const relays = new Map(fakes.map((f) => [f.url, f as unknown as Relay]));
  return { fakes, plan, transfer: publishPieces("f".repeat(32), pieces, plan, relays, sink) };
}

describe("publishing pieces", () => {
  it("stripes: each relay gets its own share, and k accepted pieces are enough", async () => {
    const { fakes, plan, transfer } = setUp(["accept", "accept", "accept", "accept", "accept"], 9);
    await transfer.enough;
    await transfer.done;
    expect(fakes.map((f) => f.got)).toEqual([...plan.shares.values()]);
    expect(new Set(fakes.flatMap((f) => f.got)).size).toBe(plan.n);
  });

  it("two silent relays of five: enough without them", async () => {
    const { fakes, transfer } = setUp(["accept", "silent", "accept", "silent", "accept"], 9);
    await transfer.enough;
    for (const f of fakes) f.giveUp();
    await transfer.done;
  });

  it("a relay that refuses a piece for good gets no more, and its share goes to the others", async () => {
    const { fakes, plan, transfer } = setUp(["accept", "accept", "refuse", "accept", "accept"], 9);
    await transfer.enough;
    await transfer.done;
    // The refusing relay was tried once; every piece of its share reached another relay.
    expect(fakes[2].got).toHaveLength(1);
    const elsewhere = new Set([0, 1, 3, 4].flatMap((r) => fakes[r].got));
    for (const i of plan.shares.get("wss://r2")!) expect(elsewhere.has(i)).toBe(true);
  });

  it("short of k after everything settled: what no relay took goes to the relays that took some", async () => {
    // Three of five silent: their shares (3/5 of n) are missing, more than the redundancy covers.
    const { fakes, plan, transfer } = setUp(["accept", "silent", "silent", "silent", "accept"], 9);
    await until(() => fakes.reduce((sum, f) => sum + f.got.length, 0) === plan.n);
    const before = fakes[0].got.length + fakes[4].got.length;
    for (const f of fakes.slice(1, 4)) f.giveUp();
    await transfer.enough;
    expect(fakes[0].got.length + fakes[4].got.length).toBeGreaterThan(before);
    expect(new Set([...fakes[0].got, ...fakes[4].got]).size).toBeGreaterThanOrEqual(plan.k);
  });

  it("fails, saying how far it got, when no relay takes enough", async () => {
    const { fakes, plan, transfer } = setUp(["refuse", "refuse", "refuse"], 4);
    await expect(transfer.enough).rejects.toThrow(/Only 0 of the 4 pieces needed reached a relay/);
    // Each relay was tried with its first piece and at most the pieces moved to it before its
    // own refusal came back: never its whole share.
    for (const f of fakes) expect(f.got.length).toBeLessThan(plan.shares.get(f.url)!.length + 1);
    expect(fakes.reduce((sum, f) => sum + f.got.length, 0)).toBeLessThan(plan.n);
  });

  it("withdraws what is still queued once the recipient has the file", async () => {
    const { fakes, transfer } = setUp(["silent", "silent", "silent"], 30);
    await until(() => fakes.every((f) => f.got.length > 0));
    transfer.withdraw();
    const given = fakes.reduce((sum, f) => sum + f.got.length, 0);
    expect(fakes.reduce((sum, f) => sum + f.withdrawn, 0)).toBe(given);
    await new Promise((r) => setTimeout(r, 20));
    // Nothing more is given out after the withdrawal.
    expect(fakes.reduce((sum, f) => sum + f.got.length, 0)).toBe(given);
    await expect(transfer.enough).rejects.toThrow();
    await transfer.done;
  });

  it("fails when no relay takes a piece for two minutes (relays that never answer), and takes back what is still queued", async () => {
    vi.useFakeTimers();
    try {
      const { fakes, transfer } = setUp(["silent", "silent", "silent"], 4);
      let result = "";
      const outcome = transfer.enough.then(
        () => (result = "sent"),
        (e: Error) => (result = e.message),
      );
      await vi.advanceTimersByTimeAsync(115_000);
      expect(result).toBe(""); // still waiting
      await vi.advanceTimersByTimeAsync(15_000);
      await outcome;
      expect(result).toBe("No relay took a piece for 2 minutes.");
      // Every piece still waiting on a relay is withdrawn, and nothing more goes out.
      const given = fakes.reduce((sum, f) => sum + f.got.length, 0);
      expect(given).toBeGreaterThan(0);
      expect(fakes.reduce((sum, f) => sum + f.withdrawn, 0)).toBe(given);
      await vi.advanceTimersByTimeAsync(60_000);
      expect(fakes.reduce((sum, f) => sum + f.got.length, 0)).toBe(given);
    } finally {
      vi.useRealTimers();
    }
  });
});
