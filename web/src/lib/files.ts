// Sending a file in v2 pieces (docs/PROTOCOL.md §9): the file is cut into k source pieces
// sized for the tightest relay, n - k recovery pieces are added by the erasure code, and each
// relay gets a different share, so the relays' rate limits add up and any k pieces arriving
// rebuild the file. A relay that refuses a piece for good loses its share to the others; a
// relay that stays silent is covered by the redundancy.
import { encodeRecovery } from "./erasure";
import { type Body, MAX_PIECE_RELAYS, MIN_PIECE_BYTES } from "./message";
import type { NostrEvent } from "./nostr";
import { type Relay, RelayRefusal } from "./relay";
import { type RelayLimits, maxPaddedFor, pieceBytesFor, pieceCounts, stripe, takesPieces } from "./transfer";

export class FileSendError extends Error {}

/**
 * Pieces sealed ahead of what a relay has sent: enough for its burst of 5, no more, so that
 * sealing (about 15 ms a piece) keeps pace with the relays instead of holding the page's main
 * thread (and with it the sockets' buffers, timers and OKs) for seconds.
 */
const SEALED_AHEAD = 6;

/** A transfer that no relay has taken a piece of for this long has failed (relays down or silent). */
const STALLED_MS = 120_000;

/** Lets timers and sockets run between pieces (a plain task: no priority over them). */
const yieldToEventLoop = () => new Promise<void>((r) => setTimeout(r, 0));

/** What the sender needs from the messenger: sealing and signing an event for the recipient. */
export interface PieceSink {
  /** A sealed, signed event carrying `body` and `data`, padded to at most `maxPadded`. */
  event(body: Body, data: Uint8Array, maxPadded: number): NostrEvent;
  /** Called with pieces accepted so far (distinct) over k, as they are accepted. */
  progress(accepted: number, k: number): void;
}

/** A file's pieces on their way. */
export interface PieceTransfer {
  /** Resolves once k distinct pieces were accepted; rejects (FileSendError) if that cannot happen. */
  enough: Promise<void>;
  /** Takes back every piece still queued: the recipient has the file, nobody needs them. */
  withdraw(): void;
  /** Resolves when no piece is on its way any more. */
  done: Promise<void>;
}

export interface PiecePlan {
  k: number;
  n: number;
  pieceBytes: number;
  maxPadded: number;
  /** Relay URL → the piece indices it carries. */
  shares: Map<string, number[]>;
}

/**
 * Cuts `size` bytes for these relays (URL → limits): pieces sized for the tightest relay that
 * takes pieces, of the first MAX_PIECE_RELAYS (receivers refuse the counts more would make);
 * striped (each relay its own share) or, for the benchmark baseline, every piece to every
 * relay with no redundancy.
 */
export function planPieces(size: number, relays: Map<string, RelayLimits>, striped: boolean): PiecePlan {
  const targets = [...relays].filter(([, l]) => takesPieces(l)).slice(0, MAX_PIECE_RELAYS);
  if (targets.length === 0) throw new FileSendError("None of your relays takes files: add one under Relays.");
  const maxPadded = maxPaddedFor(targets.map(([, l]) => l));
  const pieceBytes = pieceBytesFor(maxPadded);
  if (pieceBytes < MIN_PIECE_BYTES) throw new FileSendError("Your relays take only very small events: add a relay for files.");
  const urls = targets.map(([url]) => url);
  if (!striped) {
    const { k } = pieceCounts(size, pieceBytes, 1);
    const all = Array.from({ length: k }, (_, i) => i);
    return { k, n: k, pieceBytes, maxPadded, shares: new Map(urls.map((u) => [u, all])) };
  }
  const { k, n } = pieceCounts(size, pieceBytes, urls.length);
  return { k, n, pieceBytes, maxPadded, shares: stripe(n, urls) };
}

/** The n pieces of `bytes`: k source pieces (the last one zero-filled), then the recovery pieces. */
export async function makePieces(bytes: Uint8Array, plan: PiecePlan): Promise<Uint8Array[]> {
  const source = new Uint8Array(plan.k * plan.pieceBytes);
  source.set(bytes);
  const recovery = await encodeRecovery(plan.k, plan.n, plan.pieceBytes, source);
  return [...Array.from({ length: plan.k }, (_, i) => source.subarray(i * plan.pieceBytes, (i + 1) * plan.pieceBytes)), ...recovery];
}

/**
 * Publishes every piece to the relays of its share and resolves once k distinct pieces were
 * accepted somewhere (the rest keep going in the background). A relay that refuses a piece for
 * good (`invalid:`, `blocked:`, `restricted:`, `pow:`) gets no more pieces: its unsent share
 * moves to the other relays. If everything settled short of k, the pieces no relay took go once
 * more to the relays that took some; then it fails, and takes back what is still queued (as
 * `withdraw`): a retry's pieces must not wait behind a failed transfer's, nor the recipient
 * get the file twice.
 */
export function publishPieces(fileId: string, pieces: Uint8Array[], plan: PiecePlan, relays: Map<string, Relay>, sink: PieceSink): PieceTransfer {
  const { k, n } = plan;
  const accepted = new Set<number>();
  const tookSome = new Set<string>();
  const refusing = new Set<string>();
  /** Event ids given to each relay and not settled yet, by piece index: to withdraw a share. */
  const outstanding = new Map<string, Map<string, number>>();
  const running: Promise<void>[] = [];
  /** Withdrawn (the recipient has the file) or failed: nothing more goes out. */
  let stopped = false;
  let enough: () => void = () => {};
  const enoughAccepted = new Promise<void>((resolve) => (enough = resolve));
  let lastAcceptedAt = Date.now();

  const send = (url: string, i: number) => {
    const relay = relays.get(url);
    if (!relay || stopped) return;
    const event = sink.event({ type: "kez-file-piece-v2", file_id: fileId, i, k, n }, pieces[i], plan.maxPadded);
    const mine = outstanding.get(url) ?? new Map<string, number>();
    outstanding.set(url, mine);
    mine.set(event.id, i);
    running.push(
      relay.publish(event).then(
        () => {
          mine.delete(event.id);
          tookSome.add(url);
          accepted.add(i);
          lastAcceptedAt = Date.now();
          sink.progress(Math.min(accepted.size, k), k);
          if (accepted.size >= k) enough();
        },
        (e: unknown) => {
          mine.delete(event.id);
          if (e instanceof RelayRefusal && e.reason === "refused") moveShare(url, i);
        },
      ),
    );
  };

  /** The relays still taking pieces, taken in turn for pieces moved off a refusing relay. */
  let turn = 0;
  const anotherRelay = (): string | undefined => {
    const others = [...plan.shares.keys()].filter((u) => !refusing.has(u));
    return others.length > 0 ? others[turn++ % others.length] : undefined;
  };

  /** The refusing relay's unsent pieces (and the refused one) go to the others, round-robin. */
  const moveShare = (url: string, refused: number) => {
    if (refusing.has(url)) return;
    refusing.add(url);
    const unsent = outstanding.get(url) ?? new Map<string, number>();
    const indices = [refused, ...unsent.values()];
    relays.get(url)?.withdraw(new Set(unsent.keys()));
    for (const i of indices) {
      const other = anotherRelay();
      if (other && !accepted.has(i)) send(other, i);
    }
  };

  const settled = async () => {
    // Settling can start more sends (moved shares): wait until none is left.
    for (let seen = 0; seen < running.length; ) {
      const batch = running.slice(seen);
      seen = running.length;
      await Promise.allSettled(batch);
    }
  };
  /** Seals and queues one relay's share as fast as that relay sends, in index order. */
  const feed = async (url: string, share: number[]) => {
    const relay = relays.get(url);
    for (const i of share) {
      if (!refusing.has(url)) await relay?.roomFor(SEALED_AHEAD);
      if (stopped) return;
      // A piece of a relay that refused one meanwhile goes to another relay.
      const target = refusing.has(url) ? anotherRelay() : url;
      if (target) send(target, i);
      await yieldToEventLoop();
    }
  };
  // Every relay's feeder at once: a relay that is slow or down holds back only its own share.
  const feeding = Promise.all([...plan.shares].map(([url, share]) => feed(url, share)));

  /** Rejects once no piece has been accepted for STALLED_MS (relays that never answer or connect). */
  let finished = false;
  const stalled = new Promise<never>((_, reject) => {
    const check = () => {
      if (finished) return;
      if (Date.now() - lastAcceptedAt > STALLED_MS) reject(new FileSendError(`No relay took a piece for ${STALLED_MS / 60_000} minutes.`));
      else setTimeout(check, 5_000);
    };
    setTimeout(check, 5_000);
  });
  stalled.catch(() => {}); // raced below; never an unhandled rejection

  const run = async () => {
    const outcome = await Promise.race([enoughAccepted.then(() => "enough" as const), feeding.then(settled).then(() => "settled" as const), stalled]);
    if (outcome === "enough") return;
    // Short of k: what no relay took goes once more to the relays that did take pieces.
    const helpers = [...tookSome].filter((u) => !refusing.has(u));
    const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !accepted.has(i));
    missing.slice(0, (k - accepted.size) * 2).forEach((i, j) => {
      if (helpers.length > 0) send(helpers[j % helpers.length], i);
    });
    await Promise.race([enoughAccepted, settled(), stalled]);
    if (accepted.size < k) throw new FileSendError(`Only ${accepted.size} of the ${k} pieces needed reached a relay.`);
  };
  const withdraw = () => {
    stopped = true;
    for (const [url, mine] of outstanding) relays.get(url)?.withdraw(new Set(mine.keys()));
  };
  const enoughPieces = run()
    .catch((e: unknown) => {
      withdraw();
      throw e;
    })
    .finally(() => (finished = true));
  return {
    enough: enoughPieces,
    withdraw,
    done: enoughPieces
      .catch(() => {})
      .then(() => feeding)
      .then(settled),
  };
}
