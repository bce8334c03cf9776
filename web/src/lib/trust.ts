// Who may write to us, decided in one place. Every key is public in the directory, so anyone
// can write to anyone's inbox: a key that is not a contact lands in Requests, with no receipt
// and no directory lookup until the person opens it, and only up to a quota; a blocked key is
// dropped on arrival. Pure: the messenger gathers the facts and acts on the decision.
import type { Held, Standing } from "./store";

/** What one key not accepted yet may keep here (docs/PROTOCOL.md §10.5). */
export const REQUEST_QUOTA: Held = { messages: 50, bytes: 1_000_000 };

/** What all requests together may keep: a flood from fresh keys stops here. */
export const REQUESTS_MAX = { senders: 1_000, bytes: 50_000_000 };

/** accept: stored and handled; request: stored as a request, nothing sent back; drop: forgotten. */
export type Decision = "accept" | "request" | "drop";

/** What arrived, as far as trust is concerned. */
export interface Arrival {
  /** A receipt only touches our own messages to that key; a piece adds bytes but no message. */
  kind: "message" | "piece" | "receipt";
  /** Bytes it would keep here (text in UTF-8, file data). */
  bytes: number;
  /** A version 1 file body: no current client sends one, so only accepted senders may. */
  legacy?: boolean;
  /**
   * A piece or chunk of a file already whole, or one already kept: it adds nothing. A request
   * gets every redundant piece (no receipt stops them); counted, they would use up the quota
   * its next message needs, and remembered, they would grow storage outside it.
   */
  redundant?: boolean;
}

export interface SenderFacts {
  /** A saved contact (a pinned handle). */
  contact: boolean;
  /** Undefined for a key never seen before. */
  standing: Standing | undefined;
  /** What the key already keeps here as a request. */
  held: Held;
  /** All requests now: how many keys, how many bytes. */
  requests: { senders: number; bytes: number };
}

export function decide(arrival: Arrival, facts: SenderFacts): Decision {
  if (facts.standing === "blocked") return "drop";
  if (facts.contact || facts.standing === "accepted") return "accept";
  // We never wrote to this key: a receipt from it has nothing to confirm; a redundant piece adds nothing.
  if (arrival.kind === "receipt" || arrival.legacy || arrival.redundant) return "drop";
  if (facts.standing === undefined && facts.requests.senders >= REQUESTS_MAX.senders) return "drop";
  const messages = facts.held.messages + (arrival.kind === "message" ? 1 : 0);
  const bytes = facts.held.bytes + arrival.bytes;
  if (messages > REQUEST_QUOTA.messages || bytes > REQUEST_QUOTA.bytes) return "drop";
  if (facts.requests.bytes + arrival.bytes > REQUESTS_MAX.bytes) return "drop";
  return "request";
}

/** A request's quota after keeping `arrival`. */
export function held(before: Held, arrival: Arrival): Held {
  return { messages: before.messages + (arrival.kind === "message" ? 1 : 0), bytes: before.bytes + arrival.bytes };
}

/** An incoming file that stopped arriving, as far as the quotas are concerned. */
export interface StalledFile {
  /** Its size, as its pointer states it. */
  size: number;
  /** The bytes of its pieces kept here when it stopped. */
  kept: number;
}

/**
 * Why an incoming file that stopped arriving failed. A request's quota, and the quota of all
 * requests together, drop the pieces past them, so a request's file the quota could not hold
 * never completes: that is said, and what to do, rather than "stalled". `sender.held` is
 * what the sender keeps here (this file's pieces included), `requests` what all requests keep.
 */
export function stallReason(file: StalledFile, sender: { standing: Standing; held: Held } | undefined, requests: { bytes: number }): string {
  if (sender?.standing !== "request") return STALLED;
  const { held } = sender;
  const needed = Math.max(0, file.size - file.kept);
  if (file.size > REQUEST_QUOTA.bytes) {
    return `Too large to take from someone you have not accepted (a request keeps at most ${megabytes(REQUEST_QUOTA.bytes)} MB): accept the request and ask them to send it again.`;
  }
  if (held.bytes + needed > REQUEST_QUOTA.bytes) {
    return `Too large to take from someone you have not accepted: with what they sent before, it is more than the ${megabytes(REQUEST_QUOTA.bytes)} MB a request keeps. Accept the request and ask them to send it again.`;
  }
  if (requests.bytes + needed > REQUESTS_MAX.bytes) {
    return `Requests from people you have not accepted already keep ${megabytes(REQUESTS_MAX.bytes)} MB, all they may together: accept or delete some, then ask them to send it again.`;
  }
  return STALLED;
}

const STALLED = "The transfer stalled. It goes on if the rest arrives.";

const megabytes = (bytes: number) => bytes / 1_000_000;
