// Catching up with what a relay stored (docs/PROTOCOL.md §8, "Catching up"). Relays cap what
// one request returns, newest first (strfry at 500 by default), so a flood of newer events
// must not hide older messages: after a subscription's stored events, the client pages back
// with `until`. Pure: the messenger asks the relay for each page.

/** Stored events asked for at a time, by the subscription and by each page. */
export const CATCH_UP_PAGE = 250;

/**
 * The most stored events, and pages, one catch-up goes through on one relay. Past either (a
 * flood, or a relay that ignores `until`), the relay is not counted as caught up: the next
 * subscription starts from the same time again.
 */
export const CATCH_UP_MAX_EVENTS = 10_000;
export const CATCH_UP_MAX_PAGES = 100;

const EVENT_ID = /^[0-9a-f]{64}$/;

/**
 * The stored events a relay handed over so far: their ids, and the oldest `created_at`. At
 * most CATCH_UP_MAX_EVENTS (then the catch-up stops short), so a relay that never ends its
 * stored events cannot grow the page's memory.
 */
export class StoredEvents {
  readonly ids = new Set<string>();
  oldest = Infinity;

  /** Counts one (an event without an event id, 64 hex digits, or a time counts for nothing). */
  note(raw: unknown): void {
    const { id, created_at: at } = (raw ?? {}) as { id?: unknown; created_at?: unknown };
    if (typeof id !== "string" || !EVENT_ID.test(id) || typeof at !== "number" || !Number.isSafeInteger(at)) return;
    if (this.ids.size >= CATCH_UP_MAX_EVENTS) return;
    this.ids.add(id);
    this.oldest = Math.min(this.oldest, at);
  }
}

/**
 * Asks a relay for the stored events created from `since` to `until` (Unix seconds), at most
 * CATCH_UP_PAGE of them, newest first; each goes to `onevent`; resolves once the relay has
 * sent them all.
 */
export type FetchPage = (until: number, onevent: (event: unknown) => void) => Promise<void>;

/**
 * Pages back from the oldest of `seen` (what the subscription handed over) to `since`, one
 * page after another, until a page is empty. True once through; false when it stopped at
 * CATCH_UP_MAX_EVENTS or CATCH_UP_MAX_PAGES. A page that fails rejects.
 */
export async function pageBack(since: number, seen: StoredEvents, fetchPage: FetchPage): Promise<boolean> {
  let until = seen.oldest;
  for (let pages = 0; Number.isFinite(until) && until >= since; pages++) {
    if (seen.ids.size >= CATCH_UP_MAX_EVENTS || pages === CATCH_UP_MAX_PAGES) return false;
    const before = seen.ids.size;
    const page = new StoredEvents();
    let count = 0;
    await fetchPage(until, (e) => {
      count++;
      page.note(e);
      seen.note(e);
    });
    if (count === 0) break;
    // Some relays take `until` as "before", others as "at or before": the events of the
    // oldest second come again from the second kind. A page of nothing new moves past it.
    const next = Math.min(until, page.oldest);
    until = seen.ids.size > before ? next : next - 1;
  }
  return true;
}
