// A nostr relay connection (NIP-01) that keeps itself connected, never sends more than
// 5 events per second, re-subscribes after every reconnect, and speaks the relay's answers:
// NIP-01 `OK false` prefixes (rate-limited: waits; invalid:, blocked:, restricted:, pow: are
// final refusals; others are retried), NIP-42 AUTH (by a throwaway key) for auth-required:,
// CLOSED and NOTICE.
import { type NostrEvent, authEvent } from "./nostr";

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
/** After `rate-limited:`, sending pauses this long, doubling while it repeats (up to the max). */
const RATE_LIMITED_PAUSE_MS = 1_000;
const MAX_RATE_LIMITED_PAUSE_MS = 16_000;
/** Rate-limited answers to one event before it is given up on this relay. */
const MAX_RATE_LIMITED = 20;
/** `OK false` prefixes that will not change by sending the same event again. */
const FINAL_REFUSALS = ["invalid:", "blocked:", "restricted:", "pow:"];

export type RelayState = "connecting" | "open" | "closed";

/** Why a relay did not take an event: it said no for good, never answered, or it was withdrawn. */
export class RelayRefusal extends Error {
  constructor(
    readonly url: string,
    readonly reason: "refused" | "unanswered" | "withdrawn",
    readonly detail: string,
  ) {
    super(`${url}: ${detail}`);
  }
}

export interface Filter {
  kinds: number[];
  "#p": string[];
  /** Only events created at or after this (Unix seconds). */
  since?: number;
  /** Only events created at or before this (Unix seconds; some relays take it as "before"). */
  until?: number;
  /** At most this many stored events (the newest). */
  limit?: number;
}

interface Subscription {
  /** Asked for at every REQ (the first and after each reconnect), so it can move on. */
  filter: () => Filter;
  onevent: (event: unknown) => void;
  /** The relay has sent everything it had stored (EOSE). */
  oneose: () => void;
}

/** A one-off request for stored events (`fetchStored`). */
interface Query {
  onevent: (event: unknown) => void;
  resolve: () => void;
  reject: (e: Error) => void;
}

interface Pending {
  event: NostrEvent;
  /** Goes after every event that is not (receipts wait for our own messages). */
  later: boolean;
  attempts: number;
  rateLimited: number;
  resolve: () => void;
  reject: (e: Error) => void;
  /** The OK timeout while in flight, or the retry delay while waiting to go again. */
  timer?: ReturnType<typeof setTimeout>;
}

export class Relay {
  state: RelayState = "connecting";
  /** The relay's last NOTICE or CLOSED reason, for people. */
  notice = "";
  /** Called whenever `state` (or `notice`) changes. */
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
  private queries = new Map<string, Query>();
  private closedForGood = false;
  /** No event goes out before this (performance.now()), after a rate-limited answer. */
  private pausedUntil = 0;
  private ratePause = RATE_LIMITED_PAUSE_MS;
  /** The relay's NIP-42 challenge on this connection, and whether we answered it. */
  private challenge: string | null = null;
  private authSent = false;
  /** Events and subscriptions waiting for our AUTH to be accepted. */
  private awaitingAuth: Pending[] = [];
  private subscriptionsAwaitingAuth = new Set<string>();
  /** The id of our AUTH event awaiting its OK. */
  private authId: string | null = null;
  /** Producers waiting for the queue to shrink below a size (see roomFor). */
  private roomWaiters: { below: number; resolve: () => void }[] = [];

  constructor(readonly url: string) {
    this.connect();
  }

  /**
   * Resolves once the relay accepted the event (or already had it); rejects with a
   * RelayRefusal on a final refusal, after MAX_ATTEMPTS unanswered sends, or when withdrawn.
   */
  publish(event: NostrEvent, later = false): Promise<void> {
    return new Promise((resolve, reject) => {
      this.enqueue({ event, later, attempts: 0, rateLimited: 0, resolve, reject });
      this.pump();
    });
  }

  /** Queues an event at the end, but ahead of the first `later` event waiting unless it is one. */
  private enqueue(p: Pending) {
    const at = p.later ? -1 : this.queue.findIndex((q) => q.later);
    if (at < 0) this.queue.push(p);
    else this.queue.splice(at, 0, p);
  }

  /**
   * Resolves once fewer than `below` events wait in the queue (at once if so now, or if the
   * relay is closed for good): producers make events only as fast as the relay takes them,
   * which keeps the page's main thread free for the sockets and timers.
   */
  roomFor(below: number): Promise<void> {
    if (this.closedForGood || this.queue.length < below) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push({ below, resolve }));
  }

  private wakeRoomWaiters() {
    this.roomWaiters = this.roomWaiters.filter((w) => {
      if (!this.closedForGood && this.queue.length >= w.below) return true;
      w.resolve();
      return false;
    });
  }

  /**
   * Takes back events no answer accepted yet (queued, waiting to retry, or sent and awaiting an
   * answer): none goes out (again); they reject as "withdrawn". One sent may still have been
   * stored, its answer lost.
   */
  withdraw(ids: Set<string>): void {
    const taken = [...this.queue, ...this.delayed, ...this.awaitingAuth, ...this.inflight.values()].filter((p) => ids.has(p.event.id));
    this.queue = this.queue.filter((p) => !ids.has(p.event.id));
    this.awaitingAuth = this.awaitingAuth.filter((p) => !ids.has(p.event.id));
    for (const p of taken) {
      this.delayed.delete(p);
      this.inflight.delete(p.event.id);
      clearTimeout(p.timer);
      p.reject(new RelayRefusal(this.url, "withdrawn", "taken back by the sender"));
    }
    this.wakeRoomWaiters();
  }

  /** `filter` is asked for at every REQ: the first, and again after each reconnect. */
  subscribe(id: string, filter: () => Filter, onevent: Subscription["onevent"], oneose: Subscription["oneose"] = () => {}): void {
    this.subscriptions.set(id, { filter, onevent, oneose });
    if (this.state === "open") this.request(id);
  }

  /** Sends a subscription's REQ again, with its filter asked afresh (NIP-01: it replaces the one open). */
  resubscribe(id: string): void {
    if (this.state === "open") this.request(id);
  }

  /**
   * The events the relay has stored for `filter`, each handed to `onevent`; resolves once it
   * has sent them all (EOSE, and the subscription is closed), rejects if the connection is lost
   * or the relay closes the subscription first. Unlike `subscribe`, never sent again.
   */
  fetchStored(id: string, filter: Filter, onevent: Query["onevent"]): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.state !== "open") return reject(new Error(`${this.url}: not connected`));
      this.queries.set(id, { onevent, resolve, reject });
      this.ws!.send(JSON.stringify(["REQ", id, filter]));
    });
  }

  private request(id: string) {
    const s = this.subscriptions.get(id);
    if (s) this.ws?.send(JSON.stringify(["REQ", id, s.filter()]));
  }

  /** Every query in flight fails (the connection is gone). */
  private failQueries(why: string) {
    for (const q of this.queries.values()) q.reject(new Error(`${this.url}: ${why}`));
    this.queries.clear();
  }

  close(): void {
    this.closedForGood = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.pumpTimer);
    this.ws?.close();
    for (const p of [...this.queue, ...this.inflight.values(), ...this.delayed, ...this.awaitingAuth]) {
      clearTimeout(p.timer);
      p.reject(new RelayRefusal(this.url, "withdrawn", "relay removed"));
    }
    this.queue = [];
    this.inflight.clear();
    this.delayed.clear();
    this.awaitingAuth = [];
    this.failQueries("relay removed");
    this.wakeRoomWaiters();
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
      this.challenge = null;
      this.authSent = false;
      this.setState("open");
      for (const id of this.subscriptions.keys()) this.request(id);
      this.pump();
    };
    ws.onmessage = (m) => this.receive(m.data);
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.failQueries("connection lost");
      clearTimeout(this.pumpTimer);
      this.pumpTimer = undefined;
      // What was awaiting an answer goes out again first after reconnecting, unless it has
      // used its attempts (an event that makes the relay drop us must not block it forever).
      const unanswered = [...this.inflight.values()];
      this.inflight.clear();
      for (const p of unanswered) clearTimeout(p.timer);
      for (const p of unanswered.filter((p) => p.attempts >= MAX_ATTEMPTS)) p.reject(new RelayRefusal(this.url, "unanswered", "connection lost"));
      // Events waiting for authentication go again too: the next connection gets a new challenge.
      this.queue.unshift(...this.awaitingAuth, ...unanswered.filter((p) => p.attempts < MAX_ATTEMPTS));
      this.awaitingAuth = [];
      this.subscriptionsAwaitingAuth.clear();
      this.authId = null;
      if (this.closedForGood) return;
      this.setState("closed");
      this.reconnectTimer = setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
    };
  }

  private pump() {
    if (this.state !== "open" || this.queue.length === 0 || this.pumpTimer !== undefined) return;
    const now = performance.now();
    let wait = Math.max(this.ws!.bufferedAmount > 0 ? BUFFER_POLL_MS : 0, this.pausedUntil - now);
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
    this.wakeRoomWaiters();
    p.attempts += 1;
    this.inflight.set(p.event.id, p);
    p.timer = setTimeout(() => this.retry(p, "no answer"), OK_TIMEOUT_MS);
    this.ws!.send(JSON.stringify(["EVENT", p.event]));
    // Stamped once send() has returned, not when the check above ran: a pause in between
    // (a GC while a 64 KiB event is serialized) would otherwise shorten the window.
    this.recentSends.push(performance.now());
    this.pump();
  }

  private retry(p: Pending, why: string) {
    clearTimeout(p.timer);
    this.inflight.delete(p.event.id);
    if (p.attempts >= MAX_ATTEMPTS) {
      p.reject(new RelayRefusal(this.url, "unanswered", why));
      return;
    }
    this.delayed.add(p);
    p.timer = setTimeout(() => {
      this.delayed.delete(p);
      this.enqueue(p);
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
      (this.subscriptions.get(a) ?? this.queries.get(a))?.onevent(b);
    } else if (type === "EOSE" && typeof a === "string") {
      const q = this.queries.get(a);
      if (q) {
        this.queries.delete(a);
        this.ws?.send(JSON.stringify(["CLOSE", a]));
        q.resolve();
      }
      this.subscriptions.get(a)?.oneose();
    } else if (type === "OK" && typeof a === "string") {
      this.answer(a, b === true, typeof c === "string" ? c : "");
    } else if (type === "AUTH" && typeof a === "string") {
      this.challenge = a;
      this.authSent = false;
      if (this.awaitingAuth.length > 0 || this.subscriptionsAwaitingAuth.size > 0) this.authenticate();
    } else if (type === "CLOSED" && typeof a === "string") {
      const q = this.queries.get(a);
      if (q) {
        this.queries.delete(a);
        q.reject(new Error(`${this.url}: closed: ${typeof b === "string" ? b : ""}`));
        return;
      }
      const s = this.subscriptions.get(a);
      if (!s) return;
      const why = typeof b === "string" ? b : "";
      if (why.startsWith("auth-required:") && this.authSent && this.authId === null) {
        // We did authenticate on this connection and it still wants it (a throwaway key may
        // not read here): nothing more to try, and people are told.
        this.setNotice(`subscription closed: ${why}`);
      } else if (why.startsWith("auth-required:")) {
        this.subscriptionsAwaitingAuth.add(a);
        this.authenticate();
      } else {
        this.setNotice(`subscription closed: ${why || "no reason given"}`);
      }
    } else if (type === "NOTICE" && typeof a === "string") {
      this.setNotice(a);
    }
  }

  private setNotice(text: string) {
    this.notice = text.slice(0, 300);
    this.onstate(this.state);
  }

  /** The relay's OK for one of our events (or our AUTH). */
  private answer(id: string, accepted: boolean, why: string) {
    if (id === this.authId) {
      this.authId = null;
      const waiting = this.awaitingAuth;
      this.awaitingAuth = [];
      if (accepted) {
        for (const sub of this.subscriptionsAwaitingAuth) this.request(sub);
        this.queue.unshift(...waiting);
        this.pump();
      } else {
        this.setNotice(`authentication refused: ${why}`);
        for (const p of waiting) p.reject(new RelayRefusal(this.url, "refused", `auth-required: our authentication was refused (${why})`));
      }
      this.subscriptionsAwaitingAuth.clear();
      return;
    }
    const p = this.inflight.get(id);
    if (!p) return;
    clearTimeout(p.timer);
    this.inflight.delete(id);
    if (accepted || why.startsWith("duplicate:")) {
      this.ratePause = RATE_LIMITED_PAUSE_MS;
      p.resolve();
    } else if (why.startsWith("rate-limited:")) {
      // Not the event's fault: it goes first once the pause is over, and the attempt does not count.
      p.attempts -= 1;
      p.rateLimited += 1;
      if (p.rateLimited > MAX_RATE_LIMITED) {
        p.reject(new RelayRefusal(this.url, "unanswered", why));
        return;
      }
      this.pausedUntil = performance.now() + this.ratePause;
      this.ratePause = Math.min(this.ratePause * 2, MAX_RATE_LIMITED_PAUSE_MS);
      this.queue.unshift(p);
      this.pump();
    } else if (why.startsWith("auth-required:")) {
      p.attempts -= 1;
      if (this.authSent && this.authId === null) {
        // We did authenticate on this connection and it still wants it: nothing more to try.
        p.reject(new RelayRefusal(this.url, "refused", why));
        return;
      }
      this.awaitingAuth.push(p);
      this.authenticate();
    } else if (FINAL_REFUSALS.some((prefix) => why.startsWith(prefix))) {
      p.reject(new RelayRefusal(this.url, "refused", why));
    } else {
      this.retry(p, why || "rejected");
    }
  }

  /** Answers the relay's NIP-42 challenge once per connection (the challenge comes first). */
  private authenticate() {
    if (!this.challenge || this.authSent || this.state !== "open") return;
    this.authSent = true;
    const auth = authEvent(this.url, this.challenge);
    this.authId = auth.id;
    this.ws!.send(JSON.stringify(["AUTH", auth]));
  }
}

/** Why `publishToAny` gave up: every relay refused, or none accepted before the deadline. */
export class NotPublished extends Error {
  constructor(readonly pastDeadline: boolean) {
    super(pastDeadline ? "no relay accepted it in time" : "no relay accepted it");
  }
}

/**
 * Publishes `event` to every relay: resolves once one accepted it, rejects with NotPublished
 * when all refused, or when none accepted within `deadlineMs`. Then what no relay has answered
 * (waiting in a queue, the socket down, say, or sent with no answer yet) is taken back: the
 * event is reported not sent, so it must not go out later, when a retry has sent its replacement.
 */
export function publishToAny(relays: Relay[], event: NostrEvent, later: boolean, deadlineMs: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new NotPublished(true)), deadlineMs);
  });
  const accepted = Promise.any(relays.map((r) => r.publish(event, later))).catch(() => {
    throw new NotPublished(false);
  });
  // It may settle after the deadline: never an unhandled rejection.
  accepted.catch(() => {});
  return Promise.race([accepted, deadline])
    .finally(() => clearTimeout(timer))
    .catch((e: unknown) => {
      for (const relay of relays) relay.withdraw(new Set([event.id]));
      throw e;
    });
}
