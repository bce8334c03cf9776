// What arrives from relays before it is handled. Handling an event (its hash, opening the
// box, checking the signature, storage) takes milliseconds; a relay, or strangers through it,
// can send far faster. What waits is bounded, so such a flood cannot grow the page's memory
// without bound; what does not fit is fetched again once the backlog has drained. Answers to
// the app's own requests are taken past the bounds: each is bounded by its request's limit.
import type { NostrEvent } from "./nostr";
import { CONTENT_CEILING } from "./seal";

/** Ours carry one tag (`p`, the inbox); room is left for tags a later version may add. */
const MAX_TAGS = 16;
const MAX_TAG_VALUES = 8;
const MAX_TAG_CHARS = 256;

/**
 * Whether an event is within what one of ours can be, by checks cheaper than hashing it:
 * content no longer than the largest sealed box, and few short tags. Anything larger is
 * dropped before its hash is computed.
 */
export function withinBounds(e: Partial<NostrEvent>): boolean {
  if (typeof e.content !== "string" || e.content.length > CONTENT_CEILING) return false;
  if (!Array.isArray(e.tags) || e.tags.length > MAX_TAGS) return false;
  return e.tags.every((t) => Array.isArray(t) && t.length <= MAX_TAG_VALUES && t.every((v) => typeof v === "string" && v.length <= MAX_TAG_CHARS));
}

/**
 * Events waiting to be handled, by id, with how many copies of each came meanwhile (the same
 * event comes from every relay: a copy is counted, not kept again). Of those not taken
 * `always`, at most `maxEvents` events and `maxChars` characters of content wait at once.
 */
export class Backlog {
  private waiting = new Map<string, { copies: number; chars: number }>();
  private chars = 0;

  /**
   * The defaults hold the largest file a contact can send (10 MiB: over five relays its pieces'
   * content, recovery pieces included, is about 25 M characters of base64) with room to spare;
   * a piece can be as small as 1 KiB, so a file can be many thousand events.
   */
  constructor(
    readonly maxEvents = 40_000,
    readonly maxChars = 48 * 1024 * 1024,
  ) {}

  /** Counts a copy of an event that waits already; false when none does. */
  copyOf(id: string): boolean {
    const entry = this.waiting.get(id);
    if (entry) entry.copies += 1;
    return entry !== undefined;
  }

  /**
   * Takes an event of `chars` characters of content; false when it does not fit. `always`: taken
   * past the bounds (an answer to a request of ours, bounded by the request's limit).
   */
  add(id: string, chars: number, always = false): boolean {
    if (this.waiting.has(id)) return true;
    if (!always && (this.waiting.size >= this.maxEvents || this.chars + chars > this.maxChars)) return false;
    this.waiting.set(id, { copies: 0, chars });
    this.chars += chars;
    return true;
  }

  /** Done with `id` (handled, or failed): how many copies came while it waited. */
  done(id: string): number {
    const entry = this.waiting.get(id);
    if (!entry) return 0;
    this.waiting.delete(id);
    this.chars -= entry.chars;
    return entry.copies;
  }

  /** How many events wait. */
  get size(): number {
    return this.waiting.size;
  }
}
