import { describe, expect, it } from "vitest";
import { DELAYED_MS, delayNote } from "../src/lib/time";

const HOUR = 3_600_000;
const now = Date.UTC(2026, 11, 5, 12);
const received = (sentAt: number, relayAskedAt: number | null | undefined) => ({ direction: "in" as const, sentAt, at: now, relayAskedAt });

describe("delayNote", () => {
  it("flags a message its relay held back: signed days before, though the relay was caught up with since", () => {
    expect(delayNote(received(now - 48 * HOUR, now - HOUR))).toMatch(/the relay held it back or replayed it, or its sender dated it early/);
  });

  it("does not blame a relay for a device that was away, or had never asked it", () => {
    // Caught up last three days ago, back now: a message of two days ago only waited.
    expect(delayNote(received(now - 48 * HOUR, now - 72 * HOUR))).toBeNull();
    // Caught up less than a day after it was signed: not held back by more than a day.
    expect(delayNote(received(now - 48 * HOUR, now - 48 * HOUR + DELAYED_MS))).toBeNull();
    // Never asked that relay (a restored identity, a new relay).
    expect(delayNote(received(now - 48 * HOUR, null))).toBeNull();
  });

  it("flags a time signed more than a day ahead, whatever the relay", () => {
    expect(delayNote(received(now + 25 * HOUR, null))).toMatch(/after it arrived/);
    expect(delayNote(received(now + 23 * HOUR, null))).toBeNull();
  });

  it("weighs a message stored before relays' times were kept against its arrival alone", () => {
    expect(delayNote(received(now - 25 * HOUR, undefined))).toMatch(/a relay may have held it back/);
    expect(delayNote(received(now - 23 * HOUR, undefined))).toBeNull();
  });

  it("never flags what this device sent", () => {
    expect(delayNote({ direction: "out", sentAt: now - 48 * HOUR, at: now, relayAskedAt: now })).toBeNull();
  });
});
