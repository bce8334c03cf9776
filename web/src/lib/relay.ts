// A nostr relay connection (NIP-01) that keeps itself connected, never sends more than
// 5 events per second, retries rejected or unanswered events, and re-subscribes after
// every reconnect.
import type { NostrEvent } from "./nostr";

/**
 * At most EVENTS_PER_WINDOW events in any RATE_WINDOW_MS: 5 per second, as a sliding
 * window (a burst of 5, then one more whenever the oldest of the last 5 is a second old),
 * with 50 ms to spare for timer and network jitter.
 */
const EVENTS_PER_WINDOW = 5;
const RATE_WINDOW_MS = 1_050;
const OK_TIMEOUT_MS = 15_000;
/** Sends, disconnects during a send included, before an event is given up on this relay. */
const MAX_ATTEMPTS = 6;
/**
 * No new event while the last one is still waiting in the socket's buffer: the rate limit
 * then holds for events as they leave, not just as they are queued (a slow uplink would
 * otherwise bunch them up), and a slow uplink paces us.
 */
const BUFFER_POLL_MS = 20;
const MAX_BACKOFF_MS = 8_000;

export type RelayState = "connecting" | "open" | "closed";

export interface Filter {
  kinds: number[];
  "#p": string[];
  /** Only events created at or after this (Unix seconds). */
  since?: number;
}

interface Subscription {
  filter: Filter;
  onevent: (event: unknown) => void;
  /** The relay has sent everything it had stored (EOSE). */
  oneose: () => void;
}

interface Pending {
  event: NostrEvent;
  attempts: number;
  resolve: () => void;
  reject: (e: Error) => void;
  /** The OK timeout while in flight, or the retry delay while waiting to go again. */
  timer?: ReturnType<typeof setTimeout>;
}

export class Relay {
  state: RelayState = "connecting";
  /** Called whenever `state` changes. */
  onstate: (state: RelayState) => void = () => {};
  private ws: WebSocket | null = null;
  private queue: Pending[] = [];
  private inflight = new Map<string, Pending>();
  /** Waiting out a retry delay. */
  private delayed = new Set<Pending>();
  /** When the last EVENTS_PER_WINDOW events went out (performance.now()), oldest first. */
  private recentSends: number[] = [];
  private pumpTimer: ReturnType<typeof setTimeout> | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private backoff = 250;
  private subscriptions = new Map<string, Subscription>();
  private closedForGood = false;

  constructor(readonly url: string) {
    this.connect();
  }

  /** Resolves once the relay accepted the event (or already had it); rejects after MAX_ATTEMPTS. */
  publish(event: NostrEvent): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ event, attempts: 0, resolve, reject });
      this.pump();
    });
  }

  subscribe(id: string, filter: Filter, onevent: Subscription["onevent"], oneose: Subscription["oneose"] = () => {}): void {
    this.subscriptions.set(id, { filter, onevent, oneose });
    if (this.state === "open") this.ws!.send(JSON.stringify(["REQ", id, filter]));
  }

  close(): void {
    this.closedForGood = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.pumpTimer);
    this.ws?.close();
    for (const p of [...this.queue, ...this.inflight.values(), ...this.delayed]) {
      clearTimeout(p.timer);
      p.reject(new Error("relay removed"));
    }
    this.queue = [];
    this.inflight.clear();
    this.delayed.clear();
  }

  private setState(state: RelayState) {
    this.state = state;
    this.onstate(state);
  }

  private connect() {
    this.setState("connecting");
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.setState("closed");
      return; // a malformed URL never connects
    }
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = 250;
      this.setState("open");
      for (const [id, s] of this.subscriptions) ws.send(JSON.stringify(["REQ", id, s.filter]));
      this.pump();
    };
    ws.onmessage = (m) => this.receive(m.data);
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearTimeout(this.pumpTimer);
      this.pumpTimer = undefined;
      // What was awaiting an answer goes out again first after reconnecting, unless it has
      // used its attempts (an event that makes the relay drop us must not block it forever).
      const unanswered = [...this.inflight.values()];
      this.inflight.clear();
      for (const p of unanswered) clearTimeout(p.timer);
      for (const p of unanswered.filter((p) => p.attempts >= MAX_ATTEMPTS)) p.reject(new Error(`${this.url}: connection lost`));
      this.queue.unshift(...unanswered.filter((p) => p.attempts < MAX_ATTEMPTS));
      if (this.closedForGood) return;
      this.setState("closed");
      this.reconnectTimer = setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
    };
  }

  private pump() {
    if (this.state !== "open" || this.queue.length === 0 || this.pumpTimer !== undefined) return;
    const now = performance.now();
    let wait = this.ws!.bufferedAmount > 0 ? BUFFER_POLL_MS : 0;
    if (this.recentSends.length === EVENTS_PER_WINDOW) wait = Math.max(wait, this.recentSends[0] + RATE_WINDOW_MS - now);
    if (wait > 0) {
      this.pumpTimer = setTimeout(() => {
        this.pumpTimer = undefined;
        this.pump();
      }, Math.ceil(wait));
      return;
    }
    if (this.recentSends.length === EVENTS_PER_WINDOW) this.recentSends.shift();
    const p = this.queue.shift()!;
    p.attempts += 1;
    this.recentSends.push(now);
    this.inflight.set(p.event.id, p);
    p.timer = setTimeout(() => this.retry(p, "no answer"), OK_TIMEOUT_MS);
    this.ws!.send(JSON.stringify(["EVENT", p.event]));
    this.pump();
  }

  private retry(p: Pending, why: string) {
    clearTimeout(p.timer);
    this.inflight.delete(p.event.id);
    if (p.attempts >= MAX_ATTEMPTS) {
      p.reject(new Error(`${this.url}: ${why}`));
      return;
    }
    this.delayed.add(p);
    p.timer = setTimeout(() => {
      this.delayed.delete(p);
      this.queue.push(p);
      this.pump();
    }, 500 * 2 ** p.attempts);
  }

  private receive(data: unknown) {
    let message: unknown;
    try {
      message = JSON.parse(String(data));
    } catch {
      return;
    }
    if (!Array.isArray(message)) return;
    const [type, a, b, c] = message;
    if (type === "EVENT" && typeof a === "string") {
      this.subscriptions.get(a)?.onevent(b);
    } else if (type === "EOSE" && typeof a === "string") {
      this.subscriptions.get(a)?.oneose();
    } else if (type === "OK" && typeof a === "string") {
      const p = this.inflight.get(a);
      if (!p) return;
      clearTimeout(p.timer);
      this.inflight.delete(a);
      if (b === true || String(c).startsWith("duplicate:")) p.resolve();
      else this.retry(p, String(c || "rejected"));
    }
  }
}
