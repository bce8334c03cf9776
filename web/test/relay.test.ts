// The relay connection's answers to relays (relay.ts), with a scripted WebSocket and fake
// timers: rate-limited: waits and sends again, final refusals reject at once, auth-required:
// is answered with a NIP-42 AUTH by a throwaway key and the event sent again, CLOSED and
// NOTICE reach the person; at most 5 events go out in any second, as send() sees them;
// publishToAny takes back what still waits once its deadline passed.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { AUTH_KIND, type NostrEvent } from "../src/lib/nostr";
import { NotPublished, Relay, RelayRefusal, publishToAny } from "../src/lib/relay";

/** A WebSocket whose server side is the test: it records what the client sent. */
class ScriptedSocket {
  static last: ScriptedSocket;
  /** Every socket made since the test began. */
  static all: ScriptedSocket[] = [];
  /** While set, every connection closes before it opens, as with no network. */
  static offline = false;
  sent: unknown[] = [];
  bufferedAmount = 0;
  onopen: (() => void) | null = null;
  onmessage: ((m: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(readonly url: string) {
    ScriptedSocket.last = this;
    ScriptedSocket.all.push(this);
    setTimeout(() => (ScriptedSocket.offline ? this.onclose?.() : this.onopen?.()), 0);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.onclose?.();
  }
  /** The relay says something. */
  say(...message: unknown[]) {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  events(): NostrEvent[] {
    return this.sent.filter((m): m is ["EVENT", NostrEvent] => Array.isArray(m) && m[0] === "EVENT").map((m) => m[1]);
  }
}

const URL = "wss://relay.example";
let n = 0;
const event = (): NostrEvent => ({ id: (++n).toString(16).padStart(64, "0"), pubkey: "0".repeat(64), created_at: 1, kind: 4260, tags: [], content: "", sig: "0".repeat(128) });

/** Publishes and records how it settles. */
function publish(relay: Relay, e: NostrEvent) {
  const outcome: { value?: "accepted" | RelayRefusal } = {};
  relay.publish(e).then(
    () => (outcome.value = "accepted"),
    (err: RelayRefusal) => (outcome.value = err),
  );
  return outcome;
}

beforeEach(() => {
  ScriptedSocket.all = [];
  vi.useFakeTimers();
  vi.stubGlobal("WebSocket", ScriptedSocket);
});
afterEach(() => {
  ScriptedSocket.offline = false;
  vi.restoreAllMocks();
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

describe("relay answers", () => {
  it("rate-limited: pauses, sends the same event again, and it is accepted", async () => {
    const relay = new Relay(URL);
    await vi.advanceTimersByTimeAsync(1);
    const socket = ScriptedSocket.last;
    const e = event();
    const outcome = publish(relay, e);
    await vi.advanceTimersByTimeAsync(1);
    expect(socket.events()).toHaveLength(1);
    socket.say("OK", e.id, false, "rate-limited: slow down");
    // During the pause nothing goes to this relay, not even a new event.
    const later = event();
    const laterOutcome = publish(relay, later);
    await vi.advanceTimersByTimeAsync(500);
    expect(socket.events()).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(600);
    // Then the rate-limited event goes first, the new one after it.
    expect(socket.events().map((x) => x.id)).toEqual([e.id, e.id, later.id]);
    socket.say("OK", e.id, true, "");
    socket.say("OK", later.id, true, "");
    await vi.advanceTimersByTimeAsync(1);
    expect(outcome.value).toBe("accepted");
    expect(laterOutcome.value).toBe("accepted");
    relay.close();
  });

  it("invalid:, blocked:, restricted:, pow: are final: no retry, a refusal naming the reason", async () => {
    const relay = new Relay(URL);
    await vi.advanceTimersByTimeAsync(1);
    const socket = ScriptedSocket.last;
    for (const reason of ["invalid: too big", "blocked: no", "restricted: members only", "pow: difficulty 20"]) {
      const e = event();
      const outcome = publish(relay, e);
      await vi.advanceTimersByTimeAsync(300);
      socket.say("OK", e.id, false, reason);
      await vi.advanceTimersByTimeAsync(60_000);
      expect(outcome.value).toBeInstanceOf(RelayRefusal);
      expect((outcome.value as RelayRefusal).reason).toBe("refused");
      expect((outcome.value as RelayRefusal).detail).toBe(reason);
      expect(socket.events().filter((x) => x.id === e.id)).toHaveLength(1);
    }
    relay.close();
  });

  it("auth-required: answers the challenge with a kind-22242 event by a throwaway key, then sends the event again", async () => {
    const relay = new Relay(URL);
    await vi.advanceTimersByTimeAsync(1);
    const socket = ScriptedSocket.last;
    socket.say("AUTH", "challenge-123");
    const e = event();
    const outcome = publish(relay, e);
    await vi.advanceTimersByTimeAsync(1);
    socket.say("OK", e.id, false, "auth-required: who are you?");
    await vi.advanceTimersByTimeAsync(1);
    const auth = socket.sent.find((m): m is ["AUTH", NostrEvent] => Array.isArray(m) && m[0] === "AUTH")?.[1];
    expect(auth?.kind).toBe(AUTH_KIND);
    expect(auth?.tags).toEqual([
      ["relay", URL],
      ["challenge", "challenge-123"],
    ]);
    expect(auth?.pubkey).toMatch(/^[0-9a-f]{64}$/);
    expect(socket.events()).toHaveLength(1); // waits for the AUTH to be accepted
    socket.say("OK", auth!.id, true, "");
    await vi.advanceTimersByTimeAsync(1);
    expect(socket.events().map((x) => x.id)).toEqual([e.id, e.id]);
    socket.say("OK", e.id, true, "");
    await vi.advanceTimersByTimeAsync(1);
    expect(outcome.value).toBe("accepted");
    relay.close();
  });

  it("an event the relay still refuses after our AUTH was accepted fails there", async () => {
    const relay = new Relay(URL);
    await vi.advanceTimersByTimeAsync(1);
    const socket = ScriptedSocket.last;
    socket.say("AUTH", "c");
    const e = event();
    const outcome = publish(relay, e);
    await vi.advanceTimersByTimeAsync(1);
    socket.say("OK", e.id, false, "auth-required: members only");
    const auth = (socket.sent.find((m) => Array.isArray(m) && m[0] === "AUTH") as ["AUTH", NostrEvent])[1];
    socket.say("OK", auth.id, true, "");
    await vi.advanceTimersByTimeAsync(1);
    socket.say("OK", e.id, false, "auth-required: members only");
    await vi.advanceTimersByTimeAsync(1);
    expect((outcome.value as RelayRefusal).reason).toBe("refused");
    relay.close();
  });

  it("a CLOSED subscription asking for auth is sent again after AUTH; NOTICE and other CLOSED reasons are kept for people", async () => {
    const relay = new Relay(URL);
    relay.subscribe("sub", () => ({ kinds: [4260], "#p": ["ab"] }), () => {});
    await vi.advanceTimersByTimeAsync(1);
    const socket = ScriptedSocket.last;
    const reqs = () => socket.sent.filter((m) => Array.isArray(m) && m[0] === "REQ").length;
    expect(reqs()).toBe(1);
    socket.say("CLOSED", "sub", "auth-required: log in first");
    socket.say("AUTH", "c2");
    const auth = (socket.sent.find((m) => Array.isArray(m) && m[0] === "AUTH") as ["AUTH", NostrEvent])[1];
    socket.say("OK", auth.id, true, "");
    expect(reqs()).toBe(2);
    socket.say("NOTICE", "slow down a bit");
    expect(relay.notice).toBe("slow down a bit");
    socket.say("CLOSED", "sub", "error: shutting down");
    expect(relay.notice).toBe("subscription closed: error: shutting down");
    // Authenticated, and still refused: said, not waited on for ever.
    socket.say("CLOSED", "sub", "auth-required: members only");
    expect(relay.notice).toBe("subscription closed: auth-required: members only");
    expect(socket.sent.filter((m) => Array.isArray(m) && m[0] === "AUTH")).toHaveLength(1);
    relay.close();
  });

  it("a relay that never answers costs the event its attempts, then it fails as unanswered", async () => {
    const relay = new Relay(URL);
    await vi.advanceTimersByTimeAsync(1);
    const e = event();
    const outcome = publish(relay, e);
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect((outcome.value as RelayRefusal).reason).toBe("unanswered");
    expect(ScriptedSocket.last.events()).toHaveLength(6);
    relay.close();
  });

  it("withdraws queued events, which reject as withdrawn", async () => {
    const relay = new Relay(URL);
    await vi.advanceTimersByTimeAsync(1);
    const events = Array.from({ length: 8 }, event);
    const outcomes = events.map((e) => publish(relay, e));
    await vi.advanceTimersByTimeAsync(1); // a burst of 5 goes out; 3 wait
    relay.withdraw(new Set(events.slice(5).map((e) => e.id)));
    await vi.advanceTimersByTimeAsync(1);
    expect(outcomes.slice(5).map((o) => (o.value as RelayRefusal).reason)).toEqual(["withdrawn", "withdrawn", "withdrawn"]);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(ScriptedSocket.last.events()).toHaveLength(5);
    relay.close();
  });

  it("publishToAny: past its deadline, an event still waiting is taken back, and never goes out when the network returns", async () => {
    ScriptedSocket.offline = true; // no network: every connection fails
    const relays = [new Relay(URL), new Relay(`${URL}/2`)];
    const e = event();
    let outcome: unknown;
    publishToAny(relays, e, false, 120_000).then(
      () => (outcome = "accepted"),
      (err: unknown) => (outcome = err),
    );
    // Published straight to the first relay, with no deadline: it waits for the network.
    const waiting = event();
    void relays[0].publish(waiting).catch(() => {});
    await vi.advanceTimersByTimeAsync(120_000);
    expect(outcome).toBeInstanceOf(NotPublished);
    expect((outcome as NotPublished).pastDeadline).toBe(true);
    ScriptedSocket.offline = false;
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    // (Sent again and again: the scripted relay never answers it.)
    const sent = new Set(ScriptedSocket.all.flatMap((socket) => socket.events().map((x) => x.id)));
    expect([...sent]).toEqual([waiting.id]);
    for (const r of relays) r.close();
  });

  it("publishToAny: past its deadline, an event sent but never answered is not sent again", async () => {
    const relay = new Relay(URL);
    await vi.advanceTimersByTimeAsync(1);
    const e = event();
    let outcome: unknown;
    publishToAny([relay], e, false, 20_000).then(
      () => (outcome = "accepted"),
      (err: unknown) => (outcome = err),
    );
    await vi.advanceTimersByTimeAsync(20_000);
    expect(outcome).toBeInstanceOf(NotPublished);
    // Sent at once, and again once its answer was 15 s late; then never more.
    const sentByDeadline = ScriptedSocket.last.events().length;
    expect(sentByDeadline).toBe(2);
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(ScriptedSocket.last.events()).toHaveLength(sentByDeadline);
    // Its answer, should it come after all, changes nothing.
    ScriptedSocket.last.say("OK", e.id, true, "");
    expect((outcome as NotPublished).pastDeadline).toBe(true);
    relay.close();
  });

  it("publishToAny: accepted by one relay is enough; refused by all rejects at once, not at the deadline", async () => {
    const relay = new Relay(URL);
    await vi.advanceTimersByTimeAsync(1);
    const socket = ScriptedSocket.last;
    const good = event();
    let first: unknown;
    publishToAny([relay], good, false, 120_000).then(() => (first = "accepted"));
    await vi.advanceTimersByTimeAsync(1);
    socket.say("OK", good.id, true, "");
    await vi.advanceTimersByTimeAsync(1);
    expect(first).toBe("accepted");
    const bad = event();
    let second: unknown;
    publishToAny([relay], bad, false, 120_000).catch((err: unknown) => (second = err));
    await vi.advanceTimersByTimeAsync(1_000);
    socket.say("OK", bad.id, false, "blocked: no");
    await vi.advanceTimersByTimeAsync(1);
    expect(second).toBeInstanceOf(NotPublished);
    expect((second as NotPublished).pastDeadline).toBe(false);
    relay.close();
  });

  it("events published `later` (receipts) wait behind every other event, however late those come", async () => {
    const relay = new Relay(URL);
    await vi.advanceTimersByTimeAsync(1);
    const burst = Array.from({ length: 5 }, event);
    for (const e of burst) void relay.publish(e).catch(() => {});
    await vi.advanceTimersByTimeAsync(1); // the burst fills the window: the rest wait
    const receipts = Array.from({ length: 3 }, event);
    for (const e of receipts) void relay.publish(e, true).catch(() => {});
    const own = Array.from({ length: 2 }, event);
    for (const e of own) void relay.publish(e).catch(() => {});
    await vi.advanceTimersByTimeAsync(3_000);
    expect(ScriptedSocket.last.events().map((e) => e.id)).toEqual([...burst, ...own, ...receipts].map((e) => e.id));
    relay.close();
  });

  it("any six events span a second as send() sees them, even when a pause comes between the check and the send", async () => {
    // A GC while an event is serialized: the page's clock jumps before send() is reached.
    const clock = performance.now.bind(performance);
    let stalled = 0;
    vi.spyOn(performance, "now").mockImplementation(() => clock() + stalled);
    const sentAt: number[] = [];
    class StallingSocket extends ScriptedSocket {
      send(data: string) {
        if (sentAt.length === 0) stalled += 200;
        sentAt.push(performance.now());
        super.send(data);
      }
    }
    vi.stubGlobal("WebSocket", StallingSocket);
    const relay = new Relay(URL);
    await vi.advanceTimersByTimeAsync(1);
    for (let i = 0; i < 16; i++) void relay.publish(event()).catch(() => {});
    await vi.advanceTimersByTimeAsync(10_000);
    expect(sentAt).toHaveLength(16);
    const spans = sentAt.slice(5).map((t, i) => t - sentAt[i]);
    expect(Math.min(...spans)).toBeGreaterThanOrEqual(1_000);
    relay.close();
  });

  it("roomFor lets a producer wait until the queue is short again", async () => {
    const relay = new Relay(URL);
    await vi.advanceTimersByTimeAsync(1);
    for (let i = 0; i < 9; i++) void relay.publish(event()).catch(() => {});
    // 5 went out at once (the burst); 4 wait in the queue.
    let room = false;
    void relay.roomFor(3).then(() => (room = true));
    await vi.advanceTimersByTimeAsync(1);
    expect(room).toBe(false);
    await vi.advanceTimersByTimeAsync(1_100); // the window lets 2 more go: 2 left
    expect(room).toBe(true);
    relay.close();
  });
});

describe("reading what a relay stored", () => {
  it("a subscription's filter is asked for at every REQ: after a reconnect it can ask from later on", async () => {
    const relay = new Relay(URL);
    let since = 100;
    relay.subscribe("sub", () => ({ kinds: [4260], "#p": ["ab"], since }), () => {});
    await vi.advanceTimersByTimeAsync(1);
    expect(ScriptedSocket.last.sent).toEqual([["REQ", "sub", { kinds: [4260], "#p": ["ab"], since: 100 }]]);
    since = 500;
    ScriptedSocket.last.close();
    await vi.advanceTimersByTimeAsync(300);
    expect(ScriptedSocket.last.sent).toEqual([["REQ", "sub", { kinds: [4260], "#p": ["ab"], since: 500 }]]);
  });

  it("fetchStored hands over the events, resolves at EOSE and closes the request; it is never sent again", async () => {
    const relay = new Relay(URL);
    await vi.advanceTimersByTimeAsync(1);
    const socket = ScriptedSocket.last;
    const got: unknown[] = [];
    let done = false;
    const filter = { kinds: [4260], "#p": ["ab"], since: 10, until: 20, limit: 2 };
    void relay.fetchStored("page-1", filter, (e) => got.push(e)).then(() => (done = true));
    expect(socket.sent).toEqual([["REQ", "page-1", filter]]);
    const [a, b] = [event(), event()];
    socket.say("EVENT", "page-1", a);
    socket.say("EVENT", "other", b); // another subscription's: not this request's
    socket.say("EVENT", "page-1", b);
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toBe(false);
    socket.say("EOSE", "page-1");
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toBe(true);
    expect(got).toEqual([a, b]);
    expect(socket.sent.at(-1)).toEqual(["CLOSE", "page-1"]);
    // Anything the relay still sends for it is dropped, and a reconnect does not ask again.
    socket.say("EVENT", "page-1", event());
    expect(got).toHaveLength(2);
    socket.close();
    await vi.advanceTimersByTimeAsync(300);
    expect(ScriptedSocket.last).not.toBe(socket);
    expect(ScriptedSocket.last.sent).toEqual([]);
  });

  it("fetchStored rejects when the connection is lost, the relay closes the request, or it is not connected", async () => {
    const relay = new Relay(URL);
    await expect(relay.fetchStored("early", { kinds: [4260], "#p": ["ab"] }, () => {})).rejects.toThrow("not connected");
    await vi.advanceTimersByTimeAsync(1);
    const lost = relay.fetchStored("lost", { kinds: [4260], "#p": ["ab"] }, () => {});
    const lostCheck = expect(lost).rejects.toThrow("connection lost");
    ScriptedSocket.last.close();
    await lostCheck;
    await vi.advanceTimersByTimeAsync(300);
    const closed = relay.fetchStored("closed", { kinds: [4260], "#p": ["ab"] }, () => {});
    const closedCheck = expect(closed).rejects.toThrow("closed: error: too many subscriptions");
    ScriptedSocket.last.say("CLOSED", "closed", "error: too many subscriptions");
    await closedCheck;
  });
});
