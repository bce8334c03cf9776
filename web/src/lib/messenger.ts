// Sending and receiving kez-chat messages over nostr relays (docs/PROTOCOL.md). Every event
// goes to every relay; a message is "sent" once some relay accepted each of its events and
// "delivered" when the recipient's receipt comes back. Incoming files are assembled from
// chunks kept in IndexedDB, so a reload mid-transfer resumes where it was.
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, concatBytes } from "@noble/hashes/utils.js";
import { lookupPrimary } from "./api";
import { type Identity, parsePrimary } from "./identity";
import { type Body, CHUNK_BYTES, FILE_MAX, INLINE_MAX, type Message, decodeMessage, encodeMessage, newId, sendableMime, sendableName } from "./message";
import { KIND, type NostrEvent, hasValidId, inboxTag, unwrap, wrap } from "./nostr";
import { Relay, type RelayState } from "./relay";
import { open as openSealed, seal } from "./seal";
import { verifyUserBody } from "./registration";
import * as store from "./store";

/** UTF-8 bytes of one text message: it must fit one event, next to its header. */
const TEXT_MAX = 64 * 1024;

/** A message no relay accepted by then is shown as failed (a receipt can still mark it delivered). */
const PUBLISH_DEADLINE_MS = 120_000;

/** An incoming file with no new chunk for this long is marked failed. */
const STALL_MS = 60_000;

/** Subscriptions reach back this far before the last catch-up, for clocks that disagree. */
const CATCH_UP_MARGIN_S = 3600;

/** A key the directory did not name is asked about again after this long, not on every event. */
const UNNAMED_RECHECK_MS = 10 * 60_000;

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
/** A received file as stored: its type only if it is shown inline, otherwise plain bytes. */
const receivedBlob = (bytes: Uint8Array, mime: string) => new Blob([bytes.slice()], { type: INLINE_IMAGE_TYPES.has(mime) ? mime : "application/octet-stream" });
/** Marks a promise as handled now (it is awaited later), so an early rejection is not "unhandled". */
const settledLater = <T>(p: Promise<T>): Promise<T> => (p.catch(() => {}), p);

export class Messenger {
  /** Relay URL → connection state, for the settings screen. */
  relayStates = new Map<string, RelayState>();
  private relays = new Map<string, Relay>();
  private seen = new Set<string>();
  /** Files being assembled, and those asked to be looked at again meanwhile. */
  private finalizing = new Set<string>();
  private finalizeAgain = new Set<string>();
  private naming = new Set<string>();
  private listeners = new Set<() => void>();
  private stallTimer: ReturnType<typeof setInterval>;
  private readonly subscription = `kez-${newId().slice(0, 8)}`;
  /** When each incoming file last got a chunk (since this page loaded). */
  private progressAt = new Map<string, number>();
  private readonly startedAt = Date.now();

  constructor(
    private readonly me: Identity,
    private readonly home: string,
    relayUrls: string[],
  ) {
    this.setRelays(relayUrls);
    this.stallTimer = setInterval(() => void this.markStalled().catch(report), 5_000);
    void this.failInterrupted().catch(report);
  }

  /** Calls `listener` after anything stored changes; returns the unsubscribe. */
  onchange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed() {
    for (const l of this.listeners) l();
  }

  setRelays(urls: string[]): void {
    for (const [url, relay] of this.relays) {
      if (!urls.includes(url)) {
        relay.close();
        this.relays.delete(url);
        this.relayStates.delete(url);
      }
    }
    for (const url of urls) {
      if (this.relays.has(url)) continue;
      const relay = new Relay(url);
      relay.onstate = (state) => {
        if (this.relays.get(url) !== relay) return; // removed meanwhile
        this.relayStates.set(url, state);
        this.changed();
      };
      this.relayStates.set(url, relay.state);
      this.relays.set(url, relay);
      void this.subscribe(url, relay).catch(report);
    }
    this.changed();
  }

  /**
   * Subscribes to our inbox on a relay: everything it stored the first time, then only what
   * was created since an hour before the last time it said it had sent all it stored (the
   * hour covers clocks that disagree), so a reload does not fetch every old file again.
   */
  private async subscribe(url: string, relay: Relay) {
    const inbox = inboxTag(this.me.publicKey);
    const caughtUp = await store.caughtUpAt(url, inbox);
    const since = caughtUp === undefined ? undefined : Math.floor(caughtUp / 1000) - CATCH_UP_MARGIN_S;
    const subscribedAt = Date.now();
    relay.subscribe(
      this.subscription,
      { kinds: [KIND], "#p": [inbox], ...(since === undefined ? {} : { since }) },
      (e) => void this.receive(e).catch(report),
      () => void this.afterStored(url, inbox, subscribedAt).catch(report),
    );
  }

  /** Remembers that a relay's stored events up to `at` were handed over, once they are handled. */
  private async afterStored(url: string, inbox: string, at: number) {
    await this.receiving;
    await store.setCaughtUpAt(url, inbox, at);
  }

  close(): void {
    clearInterval(this.stallTimer);
    for (const relay of this.relays.values()) relay.close();
    this.relays.clear();
  }

  /** Publishes to every relay; resolves when at least one accepted. */
  private publish(event: NostrEvent): Promise<void> {
    const relays = [...this.relays.values()];
    if (relays.length === 0) return Promise.reject(new SendError("No relays are set: add one under Relays."));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new SendError("No relay accepted it within 2 minutes.")), PUBLISH_DEADLINE_MS);
    });
    const accepted = Promise.any(relays.map((r) => r.publish(event))).catch(() => {
      throw new SendError("No relay accepted it.");
    });
    return Promise.race([accepted, deadline]).finally(() => clearTimeout(timer));
  }

  private event(to: string, body: Body, data?: Uint8Array, id?: string): NostrEvent {
    const recipient = parsePrimary(to)!;
    return wrap(seal(encodeMessage(this.me, to, body, data, id), recipient), recipient);
  }

  async sendText(to: string, text: string): Promise<void> {
    if (new TextEncoder().encode(text).length > TEXT_MAX) {
      throw new SendError("This message is too long for one message. Send it as a file instead.");
    }
    const id = newId();
    const now = Date.now();
    await store.putMessage({ id, peer: to, direction: "out", text, status: "sending", sentAt: now, at: now });
    this.changed();
    await this.track(id, () => [this.publish(this.event(to, { type: "text", text }, undefined, id))]);
  }

  /** Sends a file: the local copy shows at once; chunks go first, the pointer last. */
  async sendFile(to: string, file: File): Promise<void> {
    checkFileSize(file.size, file.name);
    const fileId = newId();
    const name = sendableName(file.name);
    const mime = sendableMime(file.type);
    const chunks = file.size > INLINE_MAX ? Math.ceil(file.size / CHUNK_BYTES) : undefined;
    const id = newId();
    const now = Date.now();
    // The local echo first: the picked file itself is the attachment (no copy, no hashing yet).
    await store.putAttachment(fileKey(this.me.primary, fileId), file.slice(0, file.size, mime));
    await store.putMessage({ id, peer: to, direction: "out", file: { fileId, name, mime, size: file.size, sha256: "", chunks }, status: "sending", sentAt: now, at: now });
    this.changed();
    await this.track(id, async () => {
      const bytes = new Uint8Array(await file.arrayBuffer());
      const digest = await digestHex(bytes);
      await store.updateMessage(id, (m) => ({ ...m, file: { ...m.file!, sha256: digest } }));
      const common = { file_id: fileId, name, mime, size: bytes.length, sha256: digest };
      if (chunks === undefined) return [this.publish(this.event(to, { type: "kez-file-v1", mode: "inline", ...common }, bytes, id))];
      const published: Promise<void>[] = [];
      for (let i = 0; i < chunks; i++) {
        const data = bytes.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES);
        published.push(settledLater(this.publish(this.event(to, { type: "kez-file-chunk-v1", file_id: fileId, i, n: chunks }, data))));
        // Let the relays' send loops run while the next chunk is sealed.
        await new Promise((r) => setTimeout(r, 0));
      }
      published.push(this.publish(this.event(to, { type: "kez-file-v1", mode: "pointer", ...common, chunks }, undefined, id)));
      return published;
    });
  }

  /** Builds and publishes a message's events; its status follows: sent, or failed with why. */
  private async track(id: string, build: () => Promise<void>[] | Promise<Promise<void>[]>) {
    try {
      await Promise.all(await build());
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

  private receive(raw: unknown): Promise<void> {
    this.receiving = this.receiving.then(() => this.handleEvent(raw)).catch(report);
    return this.receiving;
  }

  private async handleEvent(raw: unknown) {
    const event = raw as Partial<NostrEvent> | null;
    if (!event || typeof event.id !== "string" || this.seen.has(event.id)) return;
    // Only an id that is the hash of the event may mark it handled: otherwise one relay could
    // suppress a real event by sending garbage under its id.
    if (!hasValidId(event)) return;
    this.seen.add(event.id);
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
    if (message) await this.handle(message);
    await store.markSeen(event.id);
  }

  private async handle({ header: h, data }: Message) {
    const now = Date.now();
    switch (h.type) {
      case "text":
        if (await store.putMessageIfNew({ id: h.id, peer: h.from, direction: "in", text: h.text, status: "received", sentAt: h.sent_at, at: now })) {
          this.nameSender(h.from);
          this.receipt(h.from, h.id);
        }
        break;
      case "kez-file-v1": {
        const file = { fileId: h.file_id, name: h.name, mime: h.mime, size: h.size, sha256: h.sha256 };
        if (h.mode === "inline") {
          await store.putAttachment(fileKey(h.from, h.file_id), receivedBlob(data, h.mime));
          if (await store.putMessageIfNew({ id: h.id, peer: h.from, direction: "in", file, status: "ready", sentAt: h.sent_at, at: now })) {
            this.receipt(h.from, h.id);
          }
        } else {
          // The bubble may already be there, made by the first chunk.
          const key = fileKey(h.from, h.file_id);
          const received = await store.countChunks(key);
          await store.upsertMessage(incomingFileId(key), (m) =>
            m?.messageId
              ? m
              : { id: incomingFileId(key), messageId: h.id, peer: h.from, direction: "in", file: { ...file, chunks: h.chunks }, status: m?.status ?? "pending", received, sentAt: h.sent_at, at: m?.at ?? now },
          );
          await this.finalize(h.from, h.file_id);
        }
        this.nameSender(h.from);
        break;
      }
      case "kez-file-chunk-v1": {
        const key = fileKey(h.from, h.file_id);
        if ((await store.getMessage(incomingFileId(key)))?.status === "ready") break; // a late copy
        await store.putChunk({ file: key, i: h.i, n: h.n, data: data.slice() });
        this.progressAt.set(key, now);
        const received = await store.countChunks(key);
        // Chunks come first: show "Receiving i/n" from the first one (the signed chunk names its sender).
        await store.upsertMessage(incomingFileId(key), (m) =>
          m
            ? m.status === "ready" ? m : { ...m, received, status: "pending", error: undefined }
            : { id: incomingFileId(key), peer: h.from, direction: "in", file: { fileId: h.file_id, name: "", mime: "", size: 0, sha256: "", chunks: h.n }, status: "pending", received, sentAt: h.sent_at, at: now },
        );
        await this.finalize(h.from, h.file_id);
        this.nameSender(h.from);
        break;
      }
      case "receipt":
        for (const id of h.of) {
          await store.updateMessage(id, (m) => (m.direction === "out" && m.peer === h.from ? { ...m, status: "delivered", error: undefined } : m));
        }
        break;
    }
    this.changed();
  }

  /** Assembles a file once the pointer and every chunk are here (one assembly at a time per file). */
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
    } finally {
      this.finalizing.delete(key);
      this.changed();
    }
  }

  /** Checks size and SHA-256 of the whole; a damaged file is failed and its chunks dropped. */
  private async assemble(sender: string, key: string) {
    const message = await store.getMessage(incomingFileId(key));
    const file = message?.file;
    // Without the pointer (messageId) there is no name, size or hash to check against yet.
    if (!message?.messageId || !file?.chunks || message.status === "ready") return;
    const n = file.chunks;
    if ((await store.countChunks(key)) < n) return;
    const ordered = (await store.getChunks(key)).filter((c) => c.n === n).sort((a, b) => a.i - b.i);
    const bytes = concatBytes(...ordered.map((c) => c.data));
    const whole = ordered.length === n && ordered.every((c, i) => c.i === i) && bytes.length === file.size;
    if (!whole || (await digestHex(bytes)) !== file.sha256) {
      await store.updateMessage(message.id, (m) => ({ ...m, status: "failed", error: "The file arrived damaged (its SHA-256 does not match)." }));
      await store.deleteChunks(key);
      return;
    }
    await store.putAttachment(key, receivedBlob(bytes, file.mime));
    await store.updateMessage(message.id, (m) => ({ ...m, status: "ready", received: n, error: undefined }));
    await store.deleteChunks(key);
    this.receipt(sender, message.messageId);
  }

  private async markStalled() {
    const now = Date.now();
    for (const m of await store.pendingIncomingFiles()) {
      const last = Math.max(this.progressAt.get(fileKey(m.peer, m.file!.fileId)) ?? 0, m.at, this.startedAt);
      if (now - last > STALL_MS) {
        await store.updateMessage(m.id, (x) => (x.status === "pending" ? { ...x, status: "failed", error: "The transfer stalled." } : x));
        this.changed();
      }
    }
  }

  /** Acknowledges a message; a lost receipt only leaves the sender at "sent". */
  private receipt(to: string, id: string) {
    this.publish(this.event(to, { type: "receipt", of: [id] })).catch(() => {});
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
    const known = await store.getPeer(primary);
    if (known?.fqhn || (known && Date.now() - known.checkedAt < UNNAMED_RECHECK_MS)) return;
    let fqhn: string | null = null;
    try {
      fqhn = verifyUserBody(await lookupPrimary(primary), { server: this.home, primary }).fqhn;
    } catch {
      // Not registered here, or a binding that does not verify: the key stays unnamed.
    }
    await store.putPeer({ primary, fqhn, checkedAt: Date.now() });
    this.changed();
  }
}

/** Background work that failed (storage errors): reported, never an unhandled rejection. */
function report(e: unknown) {
  console.warn("kez-chat:", e);
}
