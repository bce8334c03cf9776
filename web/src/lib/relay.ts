// A nostr relay connection (NIP-01) that keeps itself connected, never sends more than
// 5 events per second, retries rejected or unanswered events, and re-subscribes after
// every reconnect.
import type { NostrEvent } from "./nostr";

/**
 * At most EVENTS_PER_WINDOW events in any RATE_WINDOW_MS: 5 per second, as a sliding
 * window (a burst of 5, then one more whenever the oldest of the last 5 is a second old),
 * with 50 ms to spare for timer and network jitter.
 */
export const EVENTS_PER_WINDOW = 5;
export const RATE_WINDOW_MS = 1_050;
export const OK_TIMEOUT_MS = 15_000;
export const MAX_ATTEMPTS = 6;
const MAX_BACKOFF_MS = 8_000;

export type RelayState = "connecting" | "open" | "closed";

export interface Filter {
  kinds: number[];
  "#p": string[];
  since?: number;
}

interface Pending {
  event: NostrEvent;
  attempts: number;
  resolve: () => void;
  reject: (e: Error) => void;
  timer?: ReturnType<typeof setTimeout>;
}

interface Subscription {
  filter: Filter;
  onevent: (event: unknown, relay: string) => void;
}

export class Relay {
  state: RelayState = "connecting";
  /** Called whenever `state` changes. */
  onstate: (state: RelayState) => void = () => {};
  private ws: WebSocket | null = null;
  private queue: Pending[] = [];
  private inflight = new Map<string, Pending>();
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

  subscribe(id: string, filter: Filter, onevent: Subscription["onevent"]): void {
    this.subscriptions.set(id, { filter, onevent });
    if (this.state === "open") this.ws!.send(JSON.stringify(["REQ", id, filter]));
  }

  close(): void {
    this.closedForGood = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.pumpTimer);
    this.ws?.close();
    for (const p of [...this.queue, ...this.inflight.values()]) {
      clearTimeout(p.timer);
      p.reject(new Error("relay removed"));
    }
    this.queue = [];
    this.inflight.clear();
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
      this.setState("closed");
      // Whatever was awaiting an answer goes out again after reconnecting.
      for (const p of this.inflight.values()) clearTimeout(p.timer);
      this.queue.unshift(...this.inflight.values());
      this.inflight.clear();
      if (!this.closedForGood) {
        this.reconnectTimer = setTimeout(() => this.connect(), this.backoff);
        this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
      }
    };
  }

  private pump() {
    if (this.state !== "open" || this.queue.length === 0 || this.pumpTimer !== undefined) return;
    const now = performance.now();
    if (this.recentSends.length === EVENTS_PER_WINDOW) {
      const wait = this.recentSends[0] + RATE_WINDOW_MS - now;
      if (wait > 0) {
        this.pumpTimer = setTimeout(() => {
          this.pumpTimer = undefined;
          this.pump();
        }, Math.ceil(wait));
        return;
      }
      this.recentSends.shift();
    }
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
    setTimeout(() => {
      if (this.closedForGood) return;
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
      this.subscriptions.get(a)?.onevent(b, this.url);
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
