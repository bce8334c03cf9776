// Sending and receiving kez-chat messages over nostr relays (docs/PROTOCOL.md). Texts,
// receipts and file pointers go to every relay; file pieces are striped across the relays
// (files.ts). A message is "sent" once some relay accepted it (for a file: its pointer and k
// pieces) and "delivered" when the recipient's receipt comes back. Incoming files are rebuilt
// from pieces (v2) or chunks (v1) kept in IndexedDB, so a reload mid-transfer resumes.
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, concatBytes } from "@noble/hashes/utils.js";
import { lookupPrimary } from "./api";
import { find, parseQuery, verifyLogged } from "./directory";
import { type Identity, parsePrimary } from "./identity";
import { CATCH_UP_PAGE, type FetchPage, StoredEvents, pageBack } from "./catch-up";
import { decodeSource, preloadErasure } from "./erasure";
import { FileSendError, makePieces, planPieces, publishPieces } from "./files";
import { Backlog, withinBounds } from "./intake";
import { heardCheckpoint, newestCheckpoint } from "./logwatch";
import { type Body, FILE_MAX, type Header, type Message, PIECE_SCHEME, decodeMessage, encodeMessage, newId, sendableMime, sendableName } from "./message";
import { KIND, type NostrEvent, hasValidId, inboxTag, unwrap, wrap } from "./nostr";
import { NotPublished, Relay, type RelayState, publishToAny } from "./relay";
import { relayLimits } from "./relay-info";
import { open as openSealed, SealError, seal } from "./seal";
import { notice } from "./pins";
import * as store from "./store";
import { type Arrival, type Decision, decide, held, stallReason } from "./trust";
import { ASSUMED_LIMITS, type RelayLimits, maxPaddedForAll } from "./transfer";

/** Until a relay's NIP-11 document is read (or if reading it fails): the assumed limits. */
const relayLimitsFallback = ASSUMED_LIMITS;

/** UTF-8 bytes of one text message: it must fit one event, next to its header. */
const TEXT_MAX = 64 * 1024;

/** A message no relay accepted by then is shown as failed (a receipt can still mark it delivered). */
const PUBLISH_DEADLINE_MS = 120_000;

/** An incoming file with no new chunk for this long is marked failed. */
const STALL_MS = 60_000;

/** Subscriptions reach back this far before the last catch-up, for clocks that disagree. */
const CATCH_UP_MARGIN_S = 3600;

/** Listeners hear of changes at most this often (the first at once, the last never lost). */
const CHANGE_INTERVAL_MS = 100;

/** A key the directory did not name is asked about again after this long, not on every event. */
const UNNAMED_RECHECK_MS = 10 * 60_000;

/** The first subscription to a relay (no `since`) asks for at most this many stored events. */
const FIRST_SUBSCRIPTION_LIMIT = 1_000;

/** What one REQ of the inbox subscription asked for, and the stored events it handed over before EOSE. */
interface Batch {
  /** When the REQ went out (ms): the relay is caught up to this once its stored events are handled. */
  at: number;
  /** Its `since` (Unix seconds), if any. */
  since: number | undefined;
  /** What it and its pages handed over. */
  seen: StoredEvents;
  /** Its EOSE came. */
  complete: boolean;
  /** How many events had failed to be handled when it began (`Messenger.failures`). */
  failuresBefore: number;
  /** Its `limit`, and how many events came before its EOSE. */
  limit: number;
  received: number;
}

/**
 * Where an event came from: its relay; when that relay had last handed over all it stored
 * (null: never, on this device; for an event it pushed live, once it had handed over what it
 * stored, the event's arrival); and whether it answers a request of ours within the request's
 * limit (taken whatever the backlog holds: what a request brings is bounded by its limit).
 */
interface Source {
  relay: string;
  askedAt: number | null;
  requested: boolean;
}

/** Receipts wait this long to go out together (up to RECEIPT_IDS_MAX ids in one receipt). */
const RECEIPT_BATCH_MS = 200;
const RECEIPT_IDS_MAX = 100;

/** How long after start-up old event ids are pruned. */
const PRUNE_DELAY_MS = 30_000;

/** Event ids remembered in memory before the memo starts over (IndexedDB keeps them all). */
const SEEN_MEMO_MAX = 10_000;
/** The pause before relays are asked again for what a full backlog refused. */
const REFETCH_AFTER_DRAIN_MS = 30_000;

/** Handled event ids are remembered this long (a replay after that is deduplicated by message id). */
const SEEN_KEEP_MS = 30 * 24 * 3600_000;

/** The arrival of a message kept already (a file's entry made by an earlier piece), else `arrived`. */
const arrivedFirst = (m: store.StoredMessage | undefined, arrived: store.Arrived): store.Arrived => (m ? { at: m.at, relayAskedAt: m.relayAskedAt } : arrived);

/**
 * Received files shown inline: raster images only. Anything else (SVG, HTML, ...) is offered
 * as a download of plain bytes, whatever type the sender claimed.
 */
export const INLINE_IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"]);

export class SendError extends Error {}

/** SHA-256 of a whole file, hex: WebCrypto's native digest where there is one (megabytes). */
async function digestHex(bytes: Uint8Array): Promise<string> {
  if (globalThis.crypto?.subtle) return bytesToHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>)));
  return bytesToHex(sha256(bytes));
}

/** The friendly refusal for a file over the limit; nothing is sent. */
function checkFileSize(size: number, name: string): void {
  if (size > FILE_MAX) {
    const mb = (size / (1024 * 1024)).toFixed(1);
    throw new SendError(`“${name}” is ${mb} MB. Files up to 10 MB can be sent; try a smaller one.`);
  }
}

const fileKey = (sender: string, fileId: string) => `${sender}/${fileId}`;
/** The local id of an incoming chunked file's bubble (made before the pointer, whose id it learns later). */
const incomingFileId = (key: string) => `in:${key}`;
/** The type a file is kept under: its own only if it is a raster image shown inline, otherwise plain bytes. */
const keptType = (mime: string) => (INLINE_IMAGE_TYPES.has(mime) ? mime : "application/octet-stream");
const receivedBlob = (bytes: Uint8Array, mime: string) => new Blob([bytes.slice()], { type: keptType(mime) });
/** Marks a promise as handled now (it is awaited later), so an early rejection is not "unhandled". */
const settledLater = <T>(p: Promise<T>): Promise<T> => (p.catch(() => {}), p);

export class Messenger {
  /** Relay URL → connection state, for the settings screen. */
  relayStates = new Map<string, RelayState>();
  /** Relay URL → its limits (NIP-11, or assumed), once known, for the settings screen. */
  relayLimits = new Map<string, RelayLimits>();
  /** Relay URL → its last NOTICE or CLOSED reason. */
  relayNotices = new Map<string, string>();
  private limitsLoading = new Map<string, Promise<RelayLimits>>();
  private relays = new Map<string, Relay>();
  private seen = new Set<string>();
  /** Files being assembled, and those asked to be looked at again meanwhile. */
  private finalizing = new Set<string>();
  private finalizeAgain = new Set<string>();
  private naming = new Set<string>();
  private listeners = new Set<() => void>();
  private stallTimer: ReturnType<typeof setInterval>;
  private readonly subscription = `kez-${newId().slice(0, 8)}`;
  /** Catch-up pages asked for so far (each request gets an id of its own). */
  private pages = 0;
  /** When each incoming file last got a chunk (since this page loaded). */
  private progressAt = new Map<string, number>();
  /** Files whose pieces are on their way, by message id: withdrawn when the receipt comes. */
  private sendingPieces = new Map<string, () => void>();
  private readonly startedAt = Date.now();
  /** Receipts waiting to go out together, by recipient. */
  private pendingReceipts = new Map<string, string[]>();
  private receiptTimer: ReturnType<typeof setTimeout> | undefined;
  /** The checkpoint last gossiped to each contact since this page loaded. */
  private gossiped = new Map<string, string>();
  /** All requests held now (trust.ts), read from the store when first needed. */
  private requestTotals: Promise<{ senders: number; bytes: number }> | undefined;

  constructor(
    private readonly me: Identity,
    private readonly home: string,
    relayUrls: string[],
  ) {
    this.setRelays(relayUrls);
    this.stallTimer = setInterval(() => void this.markStalled().catch(report), 5_000);
    preloadErasure();
    void this.failInterrupted().catch(report);
    // Pruning scans the whole store: not while the first events come in.
    this.pruneTimer = setTimeout(() => {
      const before = Date.now() - SEEN_KEEP_MS;
      void store.pruneSeen(before).then(() => store.pruneStalledPieces(before)).catch(report);
    }, PRUNE_DELAY_MS);
    store.contactEvents.addEventListener("change", this.contactsChanged);
  }

  /** A contact saved or moved (a request may have become a contact): totals are read afresh. */
  private readonly contactsChanged = () => {
    this.requestTotals = undefined;
  };
  private pruneTimer: ReturnType<typeof setTimeout>;

  /** Calls `listener` after anything stored changes; returns the unsubscribe. */
  onchange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Tells the listeners, at most once per CHANGE_INTERVAL_MS: a file in pieces changes the
   * store once per piece, and each notice makes the open chat read its messages again.
   */
  private changed() {
    if (this.changeTimer !== undefined) {
      this.changePending = true;
      return;
    }
    for (const l of this.listeners) l();
    this.changeTimer = setTimeout(() => {
      this.changeTimer = undefined;
      if (this.changePending) {
        this.changePending = false;
        this.changed();
      }
    }, CHANGE_INTERVAL_MS);
  }

  private changeTimer: ReturnType<typeof setTimeout> | undefined;
  private changePending = false;

  setRelays(urls: string[]): void {
    for (const [url, relay] of this.relays) {
      if (!urls.includes(url)) {
        relay.close();
        this.relays.delete(url);
        this.relayStates.delete(url);
        this.relayLimits.delete(url);
        this.relayNotices.delete(url);
        this.limitsLoading.delete(url);
      }
    }
    for (const url of urls) {
      if (this.relays.has(url)) continue;
      const relay = new Relay(url);
      relay.onstate = (state) => {
        if (this.relays.get(url) !== relay) return; // removed meanwhile
        this.relayStates.set(url, state);
        if (relay.notice) this.relayNotices.set(url, relay.notice);
        this.changed();
      };
      this.relayStates.set(url, relay.state);
      this.relays.set(url, relay);
      const limits = relayLimits(url).catch(() => relayLimitsFallback);
      this.limitsLoading.set(url, limits);
      void limits.then((l) => {
        if (this.relays.get(url) !== relay) return;
        this.relayLimits.set(url, l);
        this.changed();
      });
      void this.subscribe(url, relay).catch(report);
    }
    this.changed();
  }

  /**
   * Subscribes to our inbox on a relay: the newest events it stored the first time, then only
   * what was created since an hour before the last time it handed over all it stored (the hour
   * covers clocks that disagree), paging back through them (`catchUp`), so a reload does not
   * fetch every old file again. After a reconnect, the REQ asks from the newest such time.
   */
  private async subscribe(url: string, relay: Relay) {
    const inbox = inboxTag(this.me.publicKey);
    let caughtUp = await store.caughtUpAt(url, inbox);
    this.relayAskedAt.set(url, caughtUp ?? null);
    let batch: Batch | undefined;
    relay.subscribe(
      this.subscription,
      () => {
        const since = caughtUp === undefined ? undefined : Math.floor(caughtUp / 1000) - CATCH_UP_MARGIN_S;
        // The first time, everything stored could be a flood: the newest events only.
        const limit = since === undefined ? FIRST_SUBSCRIPTION_LIMIT : CATCH_UP_PAGE;
        batch = { at: Date.now(), since, seen: new StoredEvents(), complete: false, failuresBefore: this.failures, limit, received: 0 };
        return { kinds: [KIND], "#p": [inbox], ...(since === undefined ? { limit } : { since, limit }) };
      },
      (e) => {
        const stored = batch !== undefined && !batch.complete;
        if (stored) batch!.seen.note(e);
        // Pushed live once the relay has handed over what it stored: it was being asked all along.
        const askedAt = stored ? (this.relayAskedAt.get(url) ?? null) : Date.now();
        void this.receive(e, { relay: url, askedAt, requested: stored && batch!.received++ < batch!.limit }).catch(report);
      },
      () => {
        const current = batch;
        if (!current || current.complete) return;
        current.complete = true;
        this.catchingUp++;
        void this.catchUp(url, relay, inbox, current)
          .then((through) => {
            if (through && (caughtUp ?? 0) < current.at) {
              caughtUp = current.at;
              this.relayAskedAt.set(url, caughtUp);
            }
          })
          .catch(report)
          .finally(() => {
            this.catchingUp--;
            this.drained();
          });
      },
    );
  }

  /**
   * Pages back through what a relay stored since `batch.since` (`pageBack`), each page once the
   * last is handled (what waits to be handled stays one page). True once through: the relay is
   * then remembered as caught up to when the REQ went out. False when it stopped short (the
   * connection lost, the relay closed a page, `pageBack`'s bounds, or an event that could not
   * be kept): the next REQ starts from the same time.
   */
  private async catchUp(url: string, relay: Relay, inbox: string, batch: Batch): Promise<boolean> {
    const since = batch.since;
    if (since !== undefined) {
      const fetchPage: FetchPage = async (until, onevent) => {
        await this.receiving;
        const filter = { kinds: [KIND], "#p": [inbox], since, until, limit: CATCH_UP_PAGE };
        const askedAt = this.relayAskedAt.get(url) ?? null;
        let received = 0;
        await relay.fetchStored(`${this.subscription}-${++this.pages}`, filter, (e) => {
          onevent(e);
          void this.receive(e, { relay: url, askedAt, requested: received++ < CATCH_UP_PAGE }).catch(report);
        });
      };
      if (!(await pageBack(since, batch.seen, fetchPage).catch(() => false))) return false;
    }
    await this.receiving;
    // An event it handed over could not be kept: the next catch-up starts from the same time.
    if (this.failures !== batch.failuresBefore) return false;
    await store.setCaughtUpAt(url, inbox, batch.at);
    return true;
  }

  close(): void {
    clearInterval(this.stallTimer);
    clearTimeout(this.changeTimer);
    clearTimeout(this.receiptTimer);
    clearTimeout(this.pruneTimer);
    clearTimeout(this.refetchTimer);
    store.contactEvents.removeEventListener("change", this.contactsChanged);
    for (const relay of this.relays.values()) relay.close();
    this.relays.clear();
  }

  /** Publishes to every relay; resolves when at least one accepted. Receipts go `later`, after our own messages. */
  private publish(event: NostrEvent, later = false): Promise<void> {
    const relays = [...this.relays.values()];
    if (relays.length === 0) return Promise.reject(new SendError("No relays are set: add one under Relays."));
    return publishToAny(relays, event, later, PUBLISH_DEADLINE_MS).catch((e: unknown) => {
      throw new SendError(e instanceof NotPublished && e.pastDeadline ? "No relay accepted it within 2 minutes." : "No relay accepted it.");
    });
  }

  /** Every relay's limits (fetched once per day per relay, see relay-info.ts). */
  private async limitsOfRelays(): Promise<Map<string, RelayLimits>> {
    const urls = [...this.relays.keys()];
    const limits = await Promise.all(urls.map((u) => this.limitsLoading.get(u) ?? relayLimitsFallback));
    return new Map(urls.map((u, i) => [u, limits[i]]));
  }

  /** A sealed event for `to`, padded to a bucket or at most `maxPadded` (what the relays take). */
  private event(to: string, body: Body, data?: Uint8Array, id?: string, maxPadded?: number): NostrEvent {
    const recipient = parsePrimary(to)!;
    return wrap(seal(encodeMessage(this.me, to, body, data, id), recipient, undefined, undefined, maxPadded), recipient);
  }

  /**
   * Sends a text. `id` is the message's, when it is sent again (Retry): the recipient keeps one
   * message per id, so a first copy that a relay stored after all (its answer lost) and this
   * one are one message there, not two.
   */
  async sendText(to: string, text: string, id = newId()): Promise<void> {
    if (new TextEncoder().encode(text).length > TEXT_MAX) {
      throw new SendError("This message is too long for one message. Send it as a file instead.");
    }
    // Limits as known now (a relay whose NIP-11 is still on its way counts as 64 KiB): a text
    // never waits for a relay's web server.
    const maxPadded = maxPaddedForAll([...this.relays.keys()].map((url) => this.relayLimits.get(url) ?? relayLimitsFallback));
    const now = Date.now();
    let event: NostrEvent;
    try {
      event = wrap(seal(encodeMessage(this.me, to, { type: "text", text, ...(await this.gossip(to)) }, undefined, id, now), parsePrimary(to)!, undefined, undefined, maxPadded), parsePrimary(to)!);
    } catch (e) {
      if (!(e instanceof SealError)) throw e;
      throw new SendError(`This message is too long for your relays (${Math.floor(maxPadded / 1024)} KB at most). Send it as a file instead.`);
    }
    await this.wroteTo(to);
    await store.putMessage({ id, peer: to, direction: "out", text, status: "sending", sentAt: now, at: now });
    this.changed();
    await this.track(id, () => this.publish(event));
  }

  /**
   * Sends a file (protocol v2): the local copy shows at once. It goes inline when its one event
   * fits every relay that sizes events (`maxPaddedForAll`); otherwise the pointer goes to every
   * relay first, then the pieces, striped.
   */
  async sendFile(to: string, file: File): Promise<void> {
    checkFileSize(file.size, file.name);
    const fileId = newId();
    const name = sendableName(file.name);
    const mime = sendableMime(file.type);
    const id = newId();
    const now = Date.now();
    // The local echo first: the picked file itself is the attachment (no copy, no hashing yet),
    // typed as plain bytes unless it is a raster image: a sent HTML or SVG file must not
    // become a same-origin page when its blob: URL is opened.
    await this.wroteTo(to);
    await store.putAttachment(fileKey(this.me.primary, fileId), file.slice(0, file.size, keptType(mime)));
    await store.putMessage({ id, peer: to, direction: "out", file: { fileId, name, mime, size: file.size, sha256: "" }, status: "sending", sentAt: now, at: now });
    this.changed();
    await this.track(id, async () => {
      const bytes = new Uint8Array(await file.arrayBuffer());
      const digest = await digestHex(bytes);
      const common = { file_id: fileId, name, mime, size: bytes.length, sha256: digest };
      const limits = await this.limitsOfRelays();
      if (limits.size === 0) throw new SendError("No relays are set: add one under Relays.");
      const maxPaddedAll = maxPaddedForAll([...limits.values()]);
      // Inline when the one event fits every relay that sizes events (signing a file that cannot fit is skipped).
      const inline = bytes.length < maxPaddedAll ? encodeMessage(this.me, to, { type: "kez-file-v2", mode: "inline", ...common }, bytes, id) : null;
      if (inline && 4 + inline.length <= maxPaddedAll) {
        await store.updateMessage(id, (m) => ({ ...m, file: { ...m.file!, sha256: digest } }));
        const recipient = parsePrimary(to)!;
        return this.publish(wrap(seal(inline, recipient, undefined, undefined, maxPaddedAll), recipient));
      }
      let plan;
      try {
        // A relay that is down right now would only hold its share back: plan over the others.
        const reachable = new Map([...limits].filter(([url]) => this.relays.get(url)?.state !== "closed"));
        plan = planPieces(bytes.length, reachable.size > 0 ? reachable : limits, await store.striping());
      } catch (e) {
        throw e instanceof FileSendError ? new SendError(e.message) : e;
      }
      const pieces = { k: plan.k, n: plan.n, pieceBytes: plan.pieceBytes };
      await store.updateMessage(id, (m) => ({ ...m, file: { ...m.file!, sha256: digest, pieces }, received: 0 }));
      this.changed();
      const pointer = this.publish(
        this.event(to, { type: "kez-file-v2", mode: "pieces", ...common, scheme: PIECE_SCHEME, piece_bytes: plan.pieceBytes, k: plan.k, n: plan.n }, undefined, id, maxPaddedAll),
      );
      settledLater(pointer);
      let shown = 0;
      const transfer = publishPieces(fileId, await makePieces(bytes, plan), plan, this.relays, {
        event: (body, data, maxPadded) => this.event(to, body, data, undefined, maxPadded),
        progress: (accepted) => {
          // A few updates per transfer, not one per piece.
          if (accepted - shown < Math.max(1, plan.k / 20) && accepted < plan.k) return;
          shown = accepted;
          void store
            .updateMessage(id, (m) => ({ ...m, received: accepted }))
            .then(() => this.changed())
            .catch(report);
        },
      });
      this.sendingPieces.set(id, () => transfer.withdraw());
      void transfer.done.then(() => this.sendingPieces.delete(id));
      const sent = transfer.enough.catch((e) => {
        throw e instanceof FileSendError ? new SendError(e.message) : e;
      });
      await Promise.all([pointer, sent]);
    });
  }

  /**
   * Sends a failed message again (the failed one comes back if it cannot even start). A text
   * keeps its id (see `sendText`). A file goes as a new message: its first pieces may have been
   * planned for other relay limits than its second's, and pieces of one file id must fit one
   * plan; a first copy that arrived after all then shows as a second file.
   */
  async retry(id: string): Promise<void> {
    const failed = await store.getMessage(id);
    if (!failed || failed.direction !== "out" || failed.status !== "failed") return;
    const key = failed.file && fileKey(this.me.primary, failed.file.fileId);
    const blob = key ? await store.getAttachment(key) : undefined;
    if (failed.text === undefined && !blob) return;
    // Its pieces may still be going (it failed on its pointer): they stop, and what is queued
    // is taken back, before the new message's go.
    this.sendingPieces.get(id)?.();
    this.sendingPieces.delete(id);
    if (failed.text === undefined) await store.deleteMessage(id);
    this.changed();
    try {
      if (failed.text !== undefined) await this.sendText(failed.peer, failed.text, id);
      else await this.sendFile(failed.peer, new File([blob!], failed.file!.name, { type: failed.file!.mime }));
    } catch (e) {
      await store.putMessage(failed);
      this.changed();
      throw e;
    }
    if (key) await store.deleteAttachment(key);
  }

  /** Builds and publishes a message's events; its status follows: sent, or failed with why. */
  private async track(id: string, send: () => Promise<void>) {
    try {
      await send();
      await store.updateMessage(id, (m) => (m.status === "sending" || m.status === "failed" ? { ...m, status: "sent", error: undefined } : m));
    } catch (e) {
      const error = e instanceof SendError ? e.message : "It could not be sealed or sent.";
      await store.updateMessage(id, (m) => (m.status === "sending" ? { ...m, status: "failed", error } : m));
    }
    this.changed();
  }

  /** Messages still "sending" from before this page loaded will not be sent: say so. */
  private async failInterrupted() {
    for (const m of await store.unfinishedOutgoing(this.startedAt)) {
      await store.updateMessage(m.id, (x) => (x.status === "sending" ? { ...x, status: "failed", error: "The page closed before it was sent." } : x));
    }
    this.changed();
  }

  /** Handles events one after another, in arrival order (EOSE bookkeeping waits on this). */
  private receiving: Promise<void> = Promise.resolve();

  /**
   * Queues an event to be handled. The same event comes from every relay: a copy of one
   * already waiting is not queued again (five relays' first answers, full of pieces, would
   * otherwise wait in memory five times over), only counted, so that it is tried once more if
   * handling the first fails, as it would have been. An event the backlog has no room for (one
   * pushed live, or past a request's limit) is counted as failed, so no catch-up under way moves
   * past it, and its relay is asked again once the backlog has drained.
   */
  private receive(raw: unknown, source: Source): Promise<void> {
    const event = raw as Partial<NostrEvent> | null;
    if (!event || typeof event.id !== "string" || this.backlog.copyOf(event.id)) return this.receiving;
    // Only an id that is the hash of the event may stand for it: otherwise one relay could
    // suppress a real event by sending garbage under its id.
    if (this.seen.has(event.id) || !withinBounds(event) || !hasValidId(event)) return this.receiving;
    if (!this.backlog.add(event.id, event.content!.length, source.requested)) {
      this.failures++;
      this.refusedFrom.add(source.relay);
      return this.receiving;
    }
    this.receiving = this.receiving.then(() => this.handleEvent(event as NostrEvent, source)).catch(report);
    return this.receiving;
  }

  /**
   * When each relay last handed over all it stored (null: never, on this device). An event it
   * hands over later that was signed well before then was held back by it (or dated early by
   * its sender); one signed before this device ever asked may only have waited for the device.
   */
  private relayAskedAt = new Map<string, number | null>();

  /** Events waiting to be handled (or being handled). */
  private backlog = new Backlog();
  /** Relays whose events the backlog refused for want of room: each is asked again once it drains. */
  private refusedFrom = new Set<string>();
  /** Catch-ups under way: a relay is asked again only once none is (one pages back as it goes). */
  private catchingUp = 0;
  private refetchTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Once the backlog has drained after a refusal, and no catch-up is under way, asks the relays
   * it refused events from again, after a pause that paces a relay that floods.
   */
  private drained() {
    if (this.backlog.size > 0 || this.catchingUp > 0 || this.refusedFrom.size === 0 || this.refetchTimer !== undefined) return;
    this.refetchTimer = setTimeout(() => {
      this.refetchTimer = undefined;
      for (const url of this.refusedFrom) this.relays.get(url)?.resubscribe(this.subscription);
      this.refusedFrom.clear();
    }, REFETCH_AFTER_DRAIN_MS);
  }

  private async handleEvent(event: NostrEvent, source: Source) {
    // A memo in front of the "seen" store, kept small: a flood must not grow the page's memory
    // without bound.
    if (this.seen.size >= SEEN_MEMO_MAX) this.seen.clear();
    this.seen.add(event.id);
    try {
      await this.handleNew(event, source.askedAt);
    } catch (e) {
      // Storage failed (full, say): the event may come again, from a copy that came meanwhile,
      // this relay's next catch-up (`catchUp` does not move past it), another relay or
      // `fetchUnstoredAgain`.
      this.seen.delete(event.id);
      this.failures++;
      if (this.unstored.size < SEEN_MEMO_MAX) this.unstored.add(event.id);
      this.unstoredReason = storageFailure(e);
      this.changed();
      if (this.backlog.done(event.id) > 0) void this.receive(event, source);
      this.drained();
      throw e;
    }
    this.backlog.done(event.id);
    this.drained();
    if (this.unstored.delete(event.id)) this.changed();
  }

  /** Events whose handling failed since this page loaded (`catchUp` does not move past one). */
  private failures = 0;
  /** Events whose handling failed and that were not handled since: the page says so. */
  private unstored = new Set<string>();
  /** Files whose assembly failed and has not succeeded since (`finalize`), by key: their sender and file id. */
  private unassembled = new Map<string, [string, string]>();
  /** Why the last of them failed, in words. */
  unstoredReason = "";

  /** How many events and files this page could not store and has not stored since. */
  get unstoredCount(): number {
    return this.unstored.size + this.unassembled.size;
  }

  /**
   * Asks every relay again for what it stored since it was last caught up, and assembles again
   * the files that could not be (the person freed space, say).
   */
  fetchUnstoredAgain(): void {
    for (const relay of this.relays.values()) relay.resubscribe(this.subscription);
    for (const [sender, fileId] of this.unassembled.values()) void this.finalize(sender, fileId).catch(report);
  }

  private async handleNew(event: NostrEvent, relayAskedAt: number | null) {
    if (await store.wasSeen(event.id)) return;
    const sealed = unwrap(event);
    let message: Message | null = null;
    if (sealed) {
      try {
        message = decodeMessage(openSealed(sealed, this.me.seed), this.me.primary);
      } catch {
        message = null; // not for us, altered, or forged: dropped
      }
    }
    if (!message) return;
    const arrival = await this.arrivalOf(message);
    // Only what was taken is remembered as handled (for SEEN_KEEP_MS): anyone can make events
    // with valid ids, and remembering each one they send would grow this browser's storage
    // for a month, outside every quota. The rest is dropped again if a relay sends it again.
    // What adds nothing is not taken, from a contact either: anyone who saw an event can wrap
    // its box again in new ones, without end.
    if (arrival.redundant) return;
    const { decision, known } = await this.decide(message.header.from, arrival);
    if (decision === "drop") return;
    await this.handle(message, decision === "accept", relayAskedAt);
    if (decision === "request") await this.hold(message.header.from, arrival, !known);
    await store.markSeen(event.id);
  }

  /**
   * A decoded message as trust.ts weighs it: what kind, how many bytes it would keep here, and
   * whether it is a version 1 file body. A piece or chunk that would start a new file entry
   * counts as a message, so a request cannot make endless entries from one-byte pieces. One of
   * a file already whole, or one already kept, is `redundant`; so is a message already kept
   * (anyone who saw its event can send it again in new ones).
   */
  private async arrivalOf({ header: h, data }: Message): Promise<Arrival> {
    const legacy = h.type === "kez-file-v1" || h.type === "kez-file-chunk-v1";
    // Kept as received from this sender (not, say, our own message under the id it chose), or
    // deleted here: a deleted request must not come back in new events wrapping its boxes.
    const kept = async () => {
      const message = await store.getMessage(h.id);
      return (message?.direction === "in" && message.peer === h.from) || (await store.wasDeleted(h.from, { messageId: h.id }));
    };
    switch (h.type) {
      case "receipt":
        return { kind: "receipt", bytes: 0, legacy };
      case "text":
        return { kind: "message", bytes: new TextEncoder().encode(h.text).length, legacy, redundant: await kept() };
      case "kez-file-chunk-v1":
      case "kez-file-piece-v2": {
        const key = fileKey(h.from, h.file_id);
        const entry = await store.getMessage(incomingFileId(key));
        const redundant =
          entry?.status === "ready" || entry?.damaged === true || (await store.hasChunk(key, h.i)) || (!entry && (await store.wasDeleted(h.from, { fileId: h.file_id })));
        return { kind: entry ? "piece" : "message", bytes: data.length, legacy, redundant };
      }
      default: {
        // A file: inline (kept under its message id), or a pointer (named by its transfer entry).
        const pointed = async () => (await store.getMessage(incomingFileId(fileKey(h.from, h.file_id))))?.messageId === h.id;
        const deleted = () => store.wasDeleted(h.from, { fileId: h.file_id });
        return { kind: "message", bytes: data.length, legacy, redundant: (await kept()) || (await pointed()) || (await deleted()) };
      }
    }
  }

  /** Whether a message from `from` is taken, held as a request, or dropped (trust.ts). */
  private async decide(from: string, arrival: Arrival): Promise<{ decision: Decision; known: boolean }> {
    const [contact, peer] = await Promise.all([store.getContact(from), store.getPeer(from)]);
    const requests = await this.requestsNow();
    const decision = decide(arrival, { contact: contact !== undefined, standing: peer?.standing, held: peer?.held ?? { messages: 0, bytes: 0 }, requests });
    return { decision, known: peer !== undefined };
  }

  /** Counts what a request keeps against its quota and all requests' totals. */
  private async hold(from: string, arrival: Arrival, newSender: boolean) {
    await store.updatePeer(from, (p) => ({ ...p, held: held(p.held, arrival) }));
    // Reset meanwhile (a request accepted, blocked or deleted): it is read afresh next time.
    const loaded = this.requestTotals;
    if (!loaded) return;
    const totals = await loaded;
    totals.bytes += arrival.bytes;
    if (newSender) totals.senders += 1;
  }

  /** We wrote to this key: it is accepted (a blocked key stays blocked). */
  private async wroteTo(primary: string) {
    const before = await store.getPeer(primary);
    if (before?.standing === "accepted" || before?.standing === "blocked") return;
    await store.updatePeer(primary, (p) => ({ ...p, standing: p.standing === "blocked" ? "blocked" : "accepted" }));
    this.requestTotals = undefined;
  }

  /**
   * `accepted`: a known sender, acknowledged and named; otherwise a request: kept, nothing sent
   * or asked. `relayAskedAt`: as `Source.askedAt` (kept with the message, see `delayNote`).
   */
  private async handle({ header: h, data }: Message, accepted: boolean, relayAskedAt: number | null) {
    const now = Date.now();
    const arrived: store.Arrived = { at: now, relayAskedAt };
    const acknowledge = (id: string) => accepted && this.receipt(h.from, id);
    // Only from accepted senders: a stranger's flood must not become tile reads.
    if (accepted) this.heard(h);
    // A transfer (pointer, chunk or piece) under a file id an inline file already took is
    // dropped: it must not become a second bubble or, once assembled, replace those bytes.
    if ("file_id" in h && !("mode" in h && h.mode === "inline") && (await store.takenByInlineFile(fileKey(h.from, h.file_id)))) return;
    switch (h.type) {
      case "text":
        // A copy of one kept already (Retry's, or an old one anyone can wrap again) gets no
        // second receipt: otherwise anyone could ask, at any time, whether this app is online.
        if (await store.putMessageIfNew({ id: h.id, peer: h.from, direction: "in", text: h.text, status: "received", sentAt: h.sent_at, ...arrived })) acknowledge(h.id);
        break;
      case "kez-file-v1": {
        const file = { fileId: h.file_id, name: h.name, mime: h.mime, size: h.size, sha256: h.sha256 };
        if (h.mode === "inline") {
          // A file id already used by this sender, or a message id already seen, changes nothing.
          const message: store.StoredMessage = { id: h.id, peer: h.from, direction: "in", file, status: "ready", sentAt: h.sent_at, ...arrived };
          if (await store.putInlineFileIfNew(message, fileKey(h.from, h.file_id), receivedBlob(data, h.mime))) acknowledge(h.id);
        } else {
          // The bubble may already be there, made by the first chunk.
          const key = fileKey(h.from, h.file_id);
          const received = await store.countChunks(key);
          await store.upsertMessage(incomingFileId(key), (m) =>
            m?.messageId
              ? m
              : { id: incomingFileId(key), messageId: h.id, peer: h.from, direction: "in", file: { ...file, chunks: h.chunks }, status: m?.status ?? "pending", received, sentAt: h.sent_at, ...arrivedFirst(m, arrived) },
          );
          await this.finalize(h.from, h.file_id);
        }
        break;
      }
      case "kez-file-v2":
        if (h.mode === "inline") {
          const file = { fileId: h.file_id, name: h.name, mime: h.mime, size: h.size, sha256: h.sha256 };
          // Neither a second message with this id nor one reusing the file id replaces the bytes.
          const message: store.StoredMessage = { id: h.id, peer: h.from, direction: "in", file, status: "ready", sentAt: h.sent_at, ...arrived };
          if (await store.putInlineFileIfNew(message, fileKey(h.from, h.file_id), receivedBlob(data, h.mime))) acknowledge(h.id);
        } else {
          await this.pointerV2(h, arrived);
        }
        break;
      case "kez-file-piece-v2":
        await this.pieceV2(h, data, arrived);
        break;
      case "kez-file-chunk-v1": {
        const key = fileKey(h.from, h.file_id);
        const entry = await store.getMessage(incomingFileId(key));
        if (entry?.status === "ready" || entry?.damaged) break; // a late copy, or one of a file the sender got wrong
        await store.putChunk({ file: key, i: h.i, n: h.n, data: data.slice() });
        this.progressAt.set(key, now);
        const received = await store.countChunks(key);
        // Chunks come first: show "Receiving i/n" from the first one (the signed chunk names its sender).
        await store.upsertMessage(incomingFileId(key), (m) =>
          m
            ? m.status === "ready" ? m : { ...m, received, status: "pending", error: undefined, stalledAt: undefined }
            : { id: incomingFileId(key), peer: h.from, direction: "in", file: { fileId: h.file_id, name: "", mime: "", size: 0, sha256: "", chunks: h.n }, status: "pending", received, sentAt: h.sent_at, ...arrived },
        );
        await this.finalize(h.from, h.file_id);
        break;
      }
      case "receipt":
        for (const id of h.of) {
          let ours = false;
          await store.updateMessage(id, (m) => (m.direction === "out" && m.peer === h.from ? ((ours = true), { ...m, status: "delivered", error: undefined }) : m));
          if (ours) this.sendingPieces.get(id)?.();
        }
        break;
    }
    if (accepted && h.type !== "receipt") this.nameSender(h.from);
    this.changed();
  }

  /**
   * A v2 pointer: the first one for a file fixes its pieces (k, n, size); pieces already kept
   * that do not fit it are dropped.
   */
  private async pointerV2(h: Extract<Header, { type: "kez-file-v2"; mode: "pieces" }>, arrived: store.Arrived) {
    const key = fileKey(h.from, h.file_id);
    const pieces = { k: h.k, n: h.n, pieceBytes: h.piece_bytes };
    let fixed = false;
    await store.upsertMessage(incomingFileId(key), (m) => {
      if (m?.messageId || (m?.file?.chunks !== undefined && m.file.pieces === undefined)) return m!; // known already, or a v1 file
      fixed = true;
      const file = { fileId: h.file_id, name: h.name, mime: h.mime, size: h.size, sha256: h.sha256, pieces };
      return { id: incomingFileId(key), messageId: h.id, peer: h.from, direction: "in", file, status: m?.status ?? "pending", received: 0, sentAt: h.sent_at, ...arrivedFirst(m, arrived) };
    });
    if (!fixed) return;
    await store.deleteChunksUnless(key, (c) => fitsPointer(c, pieces));
    await this.countPieces(key);
    await this.finalize(h.from, h.file_id);
  }

  /** A v2 piece: kept if new and, once the pointer is known, if it fits it; dropped otherwise. */
  private async pieceV2(h: Extract<Header, { type: "kez-file-piece-v2" }>, data: Uint8Array, arrived: store.Arrived) {
    const key = fileKey(h.from, h.file_id);
    const bubble = await store.getMessage(incomingFileId(key));
    if (bubble?.status === "ready" || bubble?.damaged) return; // a late piece, or one of a file the sender got wrong
    if (bubble?.file?.chunks !== undefined && bubble.file.pieces === undefined) return; // a v1 file of that id
    const piece = { file: key, i: h.i, k: h.k, n: h.n, data: data.slice() };
    if (bubble?.messageId && !fitsPointer(piece, bubble.file!.pieces!)) return; // not a piece of this file
    // Pieces may come before the pointer: "Receiving N/k" shows from the first one.
    const received = await store.addPiece(piece, incomingFileId(key), (m, received) =>
      m
        ? m.status === "ready" ? m : { ...m, received, status: "pending", error: undefined, stalledAt: undefined }
        : {
            id: incomingFileId(key),
            peer: h.from,
            direction: "in",
            file: { fileId: h.file_id, name: "", mime: "", size: 0, sha256: "", pieces: { k: h.k, n: h.n, pieceBytes: data.length } },
            status: "pending",
            received,
            sentAt: h.sent_at,
            ...arrived,
          },
    );
    if (received === null) return; // a duplicate
    this.progressAt.set(key, arrived.at);
    if (bubble?.messageId && received >= bubble.file!.pieces!.k) await this.finalize(h.from, h.file_id);
  }

  /** Stores how many usable pieces of a file are kept, for "Receiving N/k". */
  private async countPieces(key: string) {
    const received = await store.countChunks(key);
    await store.updateMessage(incomingFileId(key), (m) => (m.status === "ready" ? m : { ...m, received }));
  }

  /**
   * Assembles a file once the pointer and every chunk are here (one assembly at a time per
   * file). One that failed (storage full, say) is remembered until one succeeds: its pieces
   * are all kept and their events handled, so nothing arriving would assemble it again.
   */
  private async finalize(sender: string, fileId: string) {
    const key = fileKey(sender, fileId);
    if (this.finalizing.has(key)) {
      this.finalizeAgain.add(key); // the running one looks again when it is done
      return;
    }
    this.finalizing.add(key);
    try {
      do {
        this.finalizeAgain.delete(key);
        await this.assemble(sender, key);
      } while (this.finalizeAgain.has(key));
      this.unassembled.delete(key);
    } catch (e) {
      this.unassembled.set(key, [sender, fileId]);
      this.unstoredReason = storageFailure(e);
      throw e;
    } finally {
      this.finalizing.delete(key);
      this.changed();
    }
  }

  /** Checks size and SHA-256 of the whole; a damaged file is failed and its chunks dropped. */
  private async assemble(sender: string, key: string) {
    const message = await store.getMessage(incomingFileId(key));
    const file = message?.file;
    if (message?.messageId && file?.pieces && message.status !== "ready") return this.assemblePieces(sender, key, message);
    // Without the pointer (messageId) there is no name, size or hash to check against yet.
    if (!message?.messageId || !file?.chunks || message.status === "ready") return;
    const n = file.chunks;
    if ((await store.countChunks(key)) < n) return;
    const ordered = (await store.getChunks(key)).filter((c) => c.n === n).sort((a, b) => a.i - b.i);
    const bytes = concatBytes(...ordered.map((c) => c.data));
    const whole = ordered.length === n && ordered.every((c, i) => c.i === i) && bytes.length === file.size;
    if (!whole || (await digestHex(bytes)) !== file.sha256) {
      await store.updateMessage(message.id, (m) => ({ ...m, status: "failed", error: "The file arrived damaged (its SHA-256 does not match).", damaged: true }));
      await store.deleteChunks(key);
      return;
    }
    await store.putAttachmentIfNew(key, receivedBlob(bytes, file.mime));
    await store.updateMessage(message.id, (m) => ({ ...m, status: "ready", received: n, error: undefined }));
    await store.deleteChunks(key);
    await this.acknowledgeIfAccepted(sender, message.messageId);
  }

  /** A v2 file from any k of its pieces: erasure-decoded, cut to size, checked by SHA-256. */
  private async assemblePieces(sender: string, key: string, message: store.StoredMessage) {
    const file = message.file!;
    const { k, n, pieceBytes } = file.pieces!;
    if ((await store.countChunks(key)) < k) return;
    const kept = (await store.getChunks(key)).filter((c) => fitsPointer(c, file.pieces!));
    let bytes: Uint8Array | null = null;
    try {
      bytes = (await decodeSource(k, n, pieceBytes, new Map(kept.map((c) => [c.i, c.data])))).subarray(0, file.size);
    } catch {
      bytes = null; // not enough usable pieces after all
    }
    if (!bytes) return;
    if ((await digestHex(bytes)) !== file.sha256) {
      await store.updateMessage(message.id, (m) => ({ ...m, status: "failed", error: "The file arrived damaged (its SHA-256 does not match).", damaged: true }));
      await store.deleteChunks(key);
      return;
    }
    await store.putAttachmentIfNew(key, receivedBlob(bytes, file.mime));
    await store.updateMessage(message.id, (m) => ({ ...m, status: "ready", received: k, error: undefined }));
    // Shown and acknowledged first (the receipt also stops the sender's redundant pieces), tidied after.
    this.changed();
    await this.acknowledgeIfAccepted(sender, message.messageId!);
    await store.deleteChunks(key);
  }

  private async markStalled() {
    const now = Date.now();
    for (const m of await store.pendingIncomingFiles()) {
      const last = Math.max(this.progressAt.get(fileKey(m.peer, m.file!.fileId)) ?? 0, m.at, this.startedAt);
      if (now - last > STALL_MS) {
        // Every piece may be here though no assembly went through (the page was closed during
        // one, say): a last try before it is called stalled.
        const key = fileKey(m.peer, m.file!.fileId);
        await this.finalize(m.peer, m.file!.fileId).catch(report);
        // Not stored: the sender need not send it again, this device needs room.
        const error = this.unassembled.has(key)
          ? `This device could not store the file (${this.unstoredReason}). Free some space, then choose Fetch again.`
          : await this.whyStalled(m.peer, m.file!.size, key);
        // Its pieces are kept: their events count as handled, so if the rest comes (the sender
        // or this browser was offline), only the pieces kept here can complete it.
        await store.updateMessage(m.id, (x) => (x.status === "pending" ? { ...x, status: "failed", error, stalledAt: now } : x));
        this.changed();
      }
    }
  }

  /** Why the file `key` from `peer` stopped arriving (trust.ts): a quota, or a stall. */
  private async whyStalled(peer: string, size: number, key: string): Promise<string> {
    const sender = await store.getPeer(peer);
    // Only a request's quota drops pieces: a contact's large file is not read for nothing.
    const kept = sender?.standing === "request" ? (await store.getChunks(key)).reduce((sum, chunk) => sum + chunk.data.length, 0) : 0;
    return stallReason({ size, kept }, sender, await this.requestsNow());
  }

  /** What all requests keep now, read once and then counted as they grow. */
  private requestsNow(): Promise<{ senders: number; bytes: number }> {
    if (!this.requestTotals) {
      const loading = store.peersWithStanding("request").then((ps) => ({ senders: ps.length, bytes: ps.reduce((sum, p) => sum + p.held.bytes, 0) }));
      this.requestTotals = loading;
      // A failed read is not kept: every later event would fail on it.
      loading.catch(() => {
        if (this.requestTotals === loading) this.requestTotals = undefined;
      });
    }
    return this.requestTotals;
  }

  /**
   * Acknowledges a message: receipts to one person wait RECEIPT_BATCH_MS to go out together,
   * after our own messages. A lost receipt only leaves the sender at "sent".
   */
  private receipt(to: string, id: string) {
    this.pendingReceipts.set(to, [...(this.pendingReceipts.get(to) ?? []), id]);
    this.receiptTimer ??= setTimeout(() => this.sendReceipts(), RECEIPT_BATCH_MS);
  }

  private sendReceipts() {
    this.receiptTimer = undefined;
    const pending = [...this.pendingReceipts];
    this.pendingReceipts.clear();
    void (async () => {
      for (const [to, ids] of pending) {
        const gossip = await this.gossip(to);
        for (let i = 0; i < ids.length; i += RECEIPT_IDS_MAX) {
          this.publish(this.event(to, { type: "receipt", of: ids.slice(i, i + RECEIPT_IDS_MAX), ...(i === 0 ? gossip : {}) }), true).catch(() => {});
        }
      }
    })().catch(report);
  }

  /**
   * What the next text or receipt to `to` tells of the home server's log: the newest
   * checkpoint checked here, once per contact until it changes (each costs ~200 bytes of a
   * sealed message; a page load sends it again).
   */
  private async gossip(to: string): Promise<{ checkpoint?: string }> {
    const checkpoint = await newestCheckpoint(this.home);
    if (checkpoint === undefined || this.gossiped.get(to) === checkpoint) return {};
    this.gossiped.set(to, checkpoint);
    return { checkpoint };
  }

  /** A contact's gossip, checked against what this app was shown (logwatch.ts); never holds up the message. */
  private heard(h: Header) {
    if ((h.type === "text" || h.type === "receipt") && h.checkpoint !== undefined) {
      void heardCheckpoint(h.checkpoint, this.home, h.from).catch(report);
    }
  }

  private async acknowledgeIfAccepted(sender: string, id: string) {
    if ((await store.getContact(sender)) || (await store.getPeer(sender))?.standing === "accepted") this.receipt(sender, id);
  }

  /**
   * Accepts a request: its messages are acknowledged now, and the directory is asked who the
   * key is (pinning the handle if it is new).
   */
  async accept(primary: string): Promise<void> {
    await this.betweenEvents(async () => {
      await store.updatePeer(primary, (p) => ({ ...p, standing: "accepted", held: { messages: 0, bytes: 0 } }));
      this.requestTotals = undefined;
      for (const m of await store.listMessages(primary)) {
        if (m.direction === "in" && (m.status === "received" || m.status === "ready")) this.receipt(primary, m.messageId ?? m.id);
      }
    });
    this.changed();
    await this.lookUp(primary, true);
  }

  /**
   * Runs a change of standing between two incoming events, never during one: a message
   * decided as a request just before a block must not be stored after the block deleted.
   */
  private betweenEvents(work: () => Promise<void>): Promise<void> {
    const done = this.receiving.then(work);
    this.receiving = done.catch(report);
    return done;
  }

  /** Blocks a key: what it sent goes, and whatever it sends later is dropped on arrival. */
  async block(primary: string): Promise<void> {
    await this.betweenEvents(async () => {
      await store.updatePeer(primary, (p) => ({ ...p, standing: "blocked", held: { messages: 0, bytes: 0 } }));
      await store.deleteConversation(primary);
      this.requestTotals = undefined;
    });
    this.changed();
  }

  /** Unblocks a key: it is a request again (nothing it sent while blocked was kept). */
  async unblock(primary: string): Promise<void> {
    await this.betweenEvents(async () => {
      await store.deletePeer(primary);
      this.requestTotals = undefined;
    });
    this.changed();
  }

  /** Deletes every request at once (after a flood); those keys may write again, as new requests. */
  async deleteAllRequests(): Promise<void> {
    await this.betweenEvents(async () => {
      for (const peer of await store.peersWithStanding("request")) {
        if (await store.getContact(peer.primary)) continue;
        await store.deleteConversation(peer.primary);
        await store.deletePeer(peer.primary);
      }
      this.requestTotals = undefined;
    });
    this.changed();
  }

  /** Deletes a request: its messages and the key's record go (it may write again, as a new request). */
  async deleteRequest(primary: string): Promise<void> {
    await this.betweenEvents(async () => {
      await store.deleteConversation(primary);
      await store.deletePeer(primary);
      this.requestTotals = undefined;
    });
    this.changed();
  }

  /**
   * Asks the directory who a key is, now (a request being opened, or an accepted sender): a
   * binding that checks out names it, unless its handle is pinned to another key, which is then
   * flagged on that contact. An `accepted` key gets its handle pinned when nothing was pinned.
   */
  async lookUp(primary: string, accepted: boolean): Promise<void> {
    let fqhn: string | null = null;
    try {
      const user = await verifyLogged(await lookupPrimary(primary), { server: this.home, primary }, this.home);
      fqhn = user.fqhn;
      await notice(user, accepted);
    } catch {
      // Not registered here, or a binding that does not verify: the key stays unnamed.
    }
    await store.updatePeer(primary, (p) => ({ ...p, fqhn, checkedAt: Date.now() }), accepted ? "accepted" : "request");
    this.changed();
  }

  /**
   * Looks a contact's handle up again: if the directory now gives another key, the contact
   * is flagged (messages still go to the pinned key until the person accepts the new one).
   */
  async recheckContact(primary: string): Promise<void> {
    const contact = await store.getContact(primary);
    if (!contact) return;
    try {
      await notice(await find(parseQuery(contact.fqhn, this.home), this.home), false);
    } catch {
      return; // offline, gone, or a binding that does not verify: nothing to compare
    }
    this.changed();
  }

  /** Safety numbers with this key were compared and matched. */
  async markCompared(primary: string): Promise<void> {
    const initial = (await store.getContact(primary)) ? "accepted" : "request";
    await store.updatePeer(primary, (p) => ({ ...p, comparedAt: new Date().toISOString() }), initial);
    this.changed();
  }

  /** Names a sender only once the directory's signed binding for the key checks out. */
  private nameSender(primary: string) {
    if (this.naming.has(primary)) return;
    this.naming.add(primary);
    void this.lookUpSender(primary)
      .catch(report)
      .finally(() => this.naming.delete(primary));
  }

  private async lookUpSender(primary: string) {
    // A contact's name is its pin; asking by key could only rename it (2.2).
    if (await store.getContact(primary)) return;
    const known = await store.getPeer(primary);
    if (known?.fqhn || (known && Date.now() - known.checkedAt < UNNAMED_RECHECK_MS)) return;
    await this.lookUp(primary, true);
  }
}

/** Whether a kept piece belongs to the file its pointer describes (never checked against a constant). */
function fitsPointer(c: store.StoredChunk, p: { k: number; n: number; pieceBytes: number }): boolean {
  return c.k === p.k && c.n === p.n && c.i < p.n && c.data.length === p.pieceBytes;
}

/** A failure to store something, in words for the person. */
function storageFailure(e: unknown): string {
  return e instanceof DOMException && e.name === "QuotaExceededError" ? "this device's storage is full" : String(e);
}

/** Background work that failed (storage errors): reported, never an unhandled rejection. */
function report(e: unknown) {
  console.warn("kez-chat:", e);
}
