// What the app keeps in this browser (IndexedDB): the identity's seed, the handle it
// registered, saved contacts, and the messaging state (messages, files, chunks of files
// being received, events already handled, relays). Nothing here is sent anywhere.
import { type DBSchema, type IDBPDatabase, openDB } from "idb";
import type { RelayLimits } from "./transfer";

export interface Registration {
  handle: string;
  server: string;
  fqhn: string;
  registeredAt: string;
}

/**
 * A saved contact, which is also a pin: `fqhn` is bound to `primary` from when it was saved
 * (trust on first use) until the person accepts another key for that handle (pins.ts).
 */
export interface Contact {
  primary: string;
  fqhn: string;
  handle: string;
  server: string;
  fingerprint: string;
  savedAt: string;
  /** The directory showed another key for `fqhn`, not accepted (`kept`: the person chose the pinned one). */
  keyChange?: { primary: string; seenAt: string; kept?: boolean };
}

export interface FileMeta {
  fileId: string;
  name: string;
  mime: string;
  size: number;
  sha256: string;
  /** v1 chunked files: the chunk count. */
  chunks?: number;
  /** v2 files in pieces: k of n pieces of `pieceBytes` rebuild it. */
  pieces?: { k: number; n: number; pieceBytes: number };
}

/** Outgoing: sending → sent → delivered (or failed). Incoming: received; files pending → ready or failed. */
export type MessageStatus = "sending" | "sent" | "delivered" | "failed" | "received" | "pending" | "ready";

export interface StoredMessage {
  /** The sender's message id; for an incoming chunked file, a local id (see messageId). */
  id: string;
  /** Incoming chunked files: the sender's message id, known once the pointer arrived. */
  messageId?: string;
  /** The other person's primary key. */
  peer: string;
  direction: "in" | "out";
  text?: string;
  file?: FileMeta;
  status: MessageStatus;
  /** Incoming files: chunks stored so far. */
  received?: number;
  /** The sender's clock (ms). */
  sentAt: number;
  /** This device's clock (ms), for ordering. */
  at: number;
  /**
   * Incoming: when the relay it came from had last handed over all it stored, before it came
   * (ms; null: never, on this device); for one the relay pushed live, its arrival. Missing on
   * messages stored before it was kept.
   */
  relayAskedAt?: number | null;
  /** Why it failed, for people. */
  error?: string;
  /** Incoming files that stalled: when (ms). Their pieces are kept for the rest to complete them, then pruned. */
  stalledAt?: number;
  /** An incoming file whose bytes did not match its SHA-256: final, whatever pieces come after. */
  damaged?: true;
}

/** When a message arrived, as kept with it. */
export type Arrived = Pick<StoredMessage, "at" | "relayAskedAt">;

/** A v1 chunk or a v2 piece (which also has `k`) of a file being received. */
export interface StoredChunk {
  /** `<sender primary>/<file_id>` */
  file: string;
  i: number;
  n: number;
  k?: number;
  data: Uint8Array;
}

/** A relay's NIP-11 limits as last fetched. */
export interface RelayInfo {
  limits: RelayLimits;
  fetchedAt: number;
}

/** How messages from a key are taken (trust.ts): held as a request, accepted, or dropped. */
export type Standing = "request" | "accepted" | "blocked";

/** What a key not accepted yet has stored here: counted against the request quota. */
export interface Held {
  messages: number;
  bytes: number;
}

/** Everything known about a key that wrote to us or that we wrote to. */
export interface Peer {
  primary: string;
  /** handle@server once checked against the directory; null when it could not be, or not yet. */
  fqhn: string | null;
  /** When the directory was last asked (ms); 0 if never. */
  checkedAt: number;
  standing: Standing;
  held: Held;
  /** When safety numbers with this key were compared and matched (ISO time). */
  comparedAt?: string;
  /** Where its handle went: the key it moved to in a move this key signed, which the app followed (`pins.ts`). */
  movedTo?: { primary: string; fqhn: string };
}

export interface StoredIdentity {
  seed: Uint8Array;
  createdAt: string;
  /** When the person proved they wrote the phrase down, or chose the exported file again and it held this key (ISO time). */
  backedUpAt?: string;
}

interface KezDb extends DBSchema {
  identity: { key: "self"; value: StoredIdentity };
  registration: { key: "self"; value: Registration };
  contacts: { key: string; value: Contact; indexes: { fqhn: string } };
  messages: { key: string; value: StoredMessage; indexes: { peer: string; status: MessageStatus; "peer-at": [string, number] } };
  /** Files sent or received, as Blobs, by `<sender primary>/<file_id>`. */
  attachments: { key: string; value: Blob };
  chunks: { key: [string, number]; value: StoredChunk; indexes: { file: string } };
  /** Nostr event ids already handled, so replays from relays cost nothing. */
  seen: { key: string; value: number };
  peers: { key: string; value: Peer; indexes: { standing: Standing } };
  settings: { key: string; value: unknown };
}

let db: Promise<IDBPDatabase<KezDb>> | undefined;
/** Set once this page forgot its identity (`forgetIdentity`): nothing in it reads or writes again. */
let forgotten = false;

/**
 * Opens the database, upgrading it step by step from whatever version this browser has.
 * It holds the only copy of the seed: a step may add stores, indexes and fields, never drop
 * or rename a store.
 */
function open(): Promise<IDBPDatabase<KezDb>> {
  if (forgotten) return Promise.reject(new Error("this page forgot its identity: it must load again"));
  db ??= openDB<KezDb>("kez-chat", 3, {
    async upgrade(database, oldVersion, _newVersion, tx) {
      if (oldVersion < 1) {
        database.createObjectStore("identity");
        database.createObjectStore("registration");
        database.createObjectStore("contacts", { keyPath: "primary" });
        const messages = database.createObjectStore("messages", { keyPath: "id" });
        messages.createIndex("peer", "peer");
        // The stall check and the start-up check read only pending or sending messages.
        messages.createIndex("status", "status");
        database.createObjectStore("attachments");
        database.createObjectStore("chunks", { keyPath: ["file", "i"] }).createIndex("file", "file");
        database.createObjectStore("seen");
        database.createObjectStore("peers", { keyPath: "primary" });
        database.createObjectStore("settings");
      }
      if (oldVersion < 2) {
        // Pins are looked up by handle; requests are counted by standing.
        tx.objectStore("contacts").createIndex("fqhn", "fqhn");
        const peers = tx.objectStore("peers");
        peers.createIndex("standing", "standing");
        // Keys that wrote before requests existed were already conversations: accepted,
        // whether or not a lookup had left a record of them.
        for (let c = await peers.openCursor(); c; c = await c.continue()) {
          await c.update({ ...c.value, standing: c.value.standing ?? "accepted", held: c.value.held ?? { messages: 0, bytes: 0 } });
        }
        const talkedTo = tx.objectStore("messages").index("peer");
        for (let c = await talkedTo.openKeyCursor(null, "nextunique"); c; c = await c.continue()) {
          if ((await peers.getKey(c.key)) === undefined) await peers.put(newPeer(c.key, "accepted"));
        }
      }
      if (oldVersion < 3) {
        // The chat list reads each chat's newest message and counts what arrived since it was
        // last read, without reading the conversation.
        tx.objectStore("messages").createIndex("peer-at", ["peer", "at"]);
      }
    },
    // Another tab holds an older version open: it must close before this one can upgrade.
    blocked() {
      storageEvents.dispatchEvent(new Event("blocked"));
    },
    // This tab holds the database a newer version (another tab) wants to upgrade: step aside.
    blocking() {
      void db?.then((d) => d.close());
      location.reload();
    },
  });
  return db;
}

/** Fires "blocked" while another tab's older version keeps the database from upgrading. */
export const storageEvents = new EventTarget();

export async function loadIdentity(): Promise<StoredIdentity | undefined> {
  return (await open()).get("identity", "self");
}

/**
 * Replaces the identity; the old registration belonged to the old key, so it goes too. A
 * restored identity is backed up already (it came from the phrase or the file).
 */
export async function saveSeed(seed: Uint8Array, backedUp: boolean): Promise<StoredIdentity> {
  const now = new Date().toISOString();
  const value: StoredIdentity = { seed, createdAt: now, ...(backedUp ? { backedUpAt: now } : {}) };
  const tx = (await open()).transaction(["identity", "registration"], "readwrite");
  await Promise.all([tx.objectStore("identity").put(value, "self"), tx.objectStore("registration").delete("self"), tx.done]);
  return value;
}

/** Records that the identity is backed up (phrase confirmed, or file exported). */
export async function markBackedUp(): Promise<void> {
  const tx = (await open()).transaction("identity", "readwrite");
  const current = await tx.store.get("self");
  if (current && !current.backedUpAt) await tx.store.put({ ...current, backedUpAt: new Date().toISOString() }, "self");
  await tx.done;
}

/**
 * Deletes the identity and everything that came with it; only the relay list (a device
 * setting) stays. Work of this page still under way (an event being handled, a lookup's
 * answer on its way) must not write into the next identity's storage, so no transaction
 * starts on this page after this one: those started before it run before it, and are wiped.
 * The page must load again to use storage.
 */
export async function forgetIdentity(): Promise<void> {
  const names = ["identity", "registration", "contacts", "messages", "attachments", "chunks", "seen", "peers"] as const;
  const database = await open();
  const tx = database.transaction([...names, "settings"], "readwrite");
  forgotten = true;
  database.close(); // after the transactions already started, this one included
  // What belongs to the key goes with it: a pending move holds a seed, the next identity
  // must not watch (or take up) this one's handles, and unchecked gossip names its contacts.
  const settings = tx.objectStore("settings");
  const mine = (["pending-move", "own-handles", "own-statements", "monitor-unchecked", "log-heard-unchecked"] as const satisfies AppSetting[]).map((name) => settings.delete(`app ${name}`));
  await Promise.all([...names.map((n) => tx.objectStore(n).clear()), ...mine, tx.done]);
}

export async function loadRegistration(): Promise<Registration | undefined> {
  return (await open()).get("registration", "self");
}

export async function saveRegistration(registration: Registration | undefined): Promise<void> {
  const database = await open();
  if (registration) await database.put("registration", registration, "self");
  else await database.delete("registration", "self");
}

export async function getContact(primary: string): Promise<Contact | undefined> {
  return (await open()).get("contacts", primary);
}

export async function listContacts(): Promise<Contact[]> {
  const all = await (await open()).getAll("contacts");
  return all.sort((a, b) => a.fqhn.localeCompare(b.fqhn));
}

/** Fires "change" whenever the contacts change (the chat list shows them). */
export const contactEvents = new EventTarget();

export async function saveContact(contact: Contact): Promise<void> {
  await (await open()).put("contacts", contact);
  contactEvents.dispatchEvent(new Event("change"));
}

export async function removeContact(primary: string): Promise<void> {
  await (await open()).delete("contacts", primary);
  contactEvents.dispatchEvent(new Event("change"));
}

/** The contacts saved under a handle: its pin (normally one). */
export async function contactsByFqhn(fqhn: string): Promise<Contact[]> {
  return (await open()).getAllFromIndex("contacts", "fqhn", fqhn);
}

/** Moves a pin: the old key's contact goes and the new one's comes, in one transaction. */
export async function replaceContact(old: string, contact: Contact): Promise<void> {
  const tx = (await open()).transaction("contacts", "readwrite");
  await Promise.all([tx.store.delete(old), tx.store.put(contact), tx.done]);
  contactEvents.dispatchEvent(new Event("change"));
}

export async function putMessage(message: StoredMessage): Promise<void> {
  await (await open()).put("messages", message);
}

/** Stores a message unless one with its id is already here; true if it was new. */
export async function putMessageIfNew(message: StoredMessage): Promise<boolean> {
  const tx = (await open()).transaction("messages", "readwrite");
  const exists = (await tx.store.getKey(message.id)) !== undefined;
  if (!exists) await tx.store.put(message);
  await tx.done;
  return !exists;
}

/** Changes a stored message in one transaction (no lost updates between two writers). */
export async function updateMessage(id: string, change: (m: StoredMessage) => StoredMessage): Promise<void> {
  const tx = (await open()).transaction("messages", "readwrite");
  const m = await tx.store.get(id);
  if (m) await tx.store.put(change(m));
  await tx.done;
}

/** A conversation in the order its messages were written: by the signed `sentAt`, then arrival. */
export async function listMessages(peer: string): Promise<StoredMessage[]> {
  const all = await (await open()).getAllFromIndex("messages", "peer", peer);
  return all.sort((a, b) => a.sentAt - b.sentAt || a.at - b.at);
}

/**
 * Deletes a conversation: its messages, the files it brought and pieces of files on their way.
 * What it received is marked deleted in `seen` (pruned with the event ids, after 30 days):
 * anyone who saw its events can wrap the same boxes again in new ones, which must not bring
 * it back (`wasDeleted`).
 */
export async function deleteConversation(peer: string): Promise<void> {
  const tx = (await open()).transaction(["messages", "attachments", "chunks", "seen"], "readwrite");
  const messages = tx.objectStore("messages");
  const now = Date.now();
  for (const m of await messages.index("peer").getAll(peer)) {
    await messages.delete(m.id);
    if (m.direction !== "in") continue;
    await tx.objectStore("seen").put(now, deletedKey(peer, m.messageId ?? m.id));
    if (m.file) {
      const key = `${peer}/${m.file.fileId}`;
      await tx.objectStore("seen").put(now, deletedKey(peer, `file ${m.file.fileId}`));
      await tx.objectStore("attachments").delete(key);
      for (const k of await tx.objectStore("chunks").index("file").getAllKeys(key)) await tx.objectStore("chunks").delete(k);
    }
  }
  await tx.done;
}

/** The `seen` key marking `what` from `peer` deleted here (never an event id: those are bare hex). */
const deletedKey = (peer: string, what: string) => `deleted ${peer} ${what}`;

/** Whether the message `messageId` from `peer`, or (`fileId`) a file it sent, was deleted here in the last 30 days. */
export async function wasDeleted(peer: string, { messageId, fileId }: { messageId?: string; fileId?: string }): Promise<boolean> {
  const db = await open();
  if (messageId !== undefined && (await db.getKey("seen", deletedKey(peer, messageId))) !== undefined) return true;
  return fileId !== undefined && (await db.getKey("seen", deletedKey(peer, `file ${fileId}`))) !== undefined;
}

/** Everyone there is a conversation with. */
export async function conversationPeers(): Promise<string[]> {
  // Walks the peer index's distinct keys: no message is read.
  const peers: string[] = [];
  let cursor = await (await open()).transaction("messages").store.index("peer").openKeyCursor(null, "nextunique");
  while (cursor) {
    peers.push(cursor.key);
    cursor = await cursor.continue();
  }
  return peers;
}

/** A chat as its row in the list shows it: the newest message and how many arrived since it was last read. */
export interface ChatSummary {
  last?: StoredMessage;
  unread: number;
}

/** Where a chat's read time is kept in `settings`. */
const readKey = (peer: string) => `read ${peer}`;

export async function chatSummary(peer: string): Promise<ChatSummary> {
  const tx = (await open()).transaction(["messages", "settings"]);
  const byTime = tx.objectStore("messages").index("peer-at");
  const readAt = ((await tx.objectStore("settings").get(readKey(peer))) as number | undefined) ?? 0;
  const newest = await byTime.openCursor(IDBKeyRange.bound([peer, -Infinity], [peer, Infinity]), "prev");
  let unread = 0;
  for (let c = await byTime.openCursor(IDBKeyRange.bound([peer, readAt], [peer, Infinity], true)); c; c = await c.continue()) {
    if (c.value.direction === "in") unread++;
  }
  return { last: newest?.value, unread };
}

/** Fires "change" when a chat was read (its unread count changed). */
export const readEvents = new EventTarget();

/** When the chat was last read (ms of arrival; 0: never). */
export async function readAt(peer: string): Promise<number> {
  return ((await (await open()).get("settings", readKey(peer))) as number | undefined) ?? 0;
}

/** The chat was read up to `at`: what arrived before no longer counts as unread. */
export async function markRead(peer: string, at = Date.now()): Promise<void> {
  await (await open()).put("settings", at, readKey(peer));
  readEvents.dispatchEvent(new Event("change"));
}

export async function deleteMessage(id: string): Promise<void> {
  await (await open()).delete("messages", id);
}

export async function deleteAttachment(key: string): Promise<void> {
  await (await open()).delete("attachments", key);
}

export async function getMessage(id: string): Promise<StoredMessage | undefined> {
  return (await open()).get("messages", id);
}

/** Creates or changes a message in one transaction. */
export async function upsertMessage(id: string, change: (m: StoredMessage | undefined) => StoredMessage): Promise<void> {
  const tx = (await open()).transaction("messages", "readwrite");
  await tx.store.put(change(await tx.store.get(id)));
  await tx.done;
}

/** Outgoing messages still "sending" that were started before `before` (ms). */
export async function unfinishedOutgoing(before: number): Promise<StoredMessage[]> {
  return (await (await open()).getAllFromIndex("messages", "status", "sending")).filter((m) => m.direction === "out" && m.at < before);
}

/**
 * Drops the pieces of incoming files that stalled before `before` (ms) and never went on: by
 * then the ids of the events that brought them are forgotten too (`pruneSeen`).
 */
export async function pruneStalledPieces(before: number): Promise<void> {
  const tx = (await open()).transaction(["messages", "chunks"], "readwrite");
  const chunks = tx.objectStore("chunks");
  for (const m of await tx.objectStore("messages").index("status").getAll("failed")) {
    if (m.direction !== "in" || !m.file || m.stalledAt === undefined || m.stalledAt >= before) continue;
    for (const key of await chunks.index("file").getAllKeys(`${m.peer}/${m.file.fileId}`)) await chunks.delete(key);
  }
  await tx.done;
}

export async function pendingIncomingFiles(): Promise<StoredMessage[]> {
  return (await (await open()).getAllFromIndex("messages", "status", "pending")).filter((m) => m.direction === "in" && m.file);
}

export async function putAttachment(key: string, blob: Blob): Promise<void> {
  await (await open()).put("attachments", blob, key);
}

/** Stores a file unless one is already stored under `key`: a file, once shown, never changes. */
export async function putAttachmentIfNew(key: string, blob: Blob): Promise<void> {
  const tx = (await open()).transaction("attachments", "readwrite");
  if ((await tx.store.getKey(key)) === undefined) await tx.store.put(blob, key);
  await tx.done;
}

/**
 * An inline file: its message and its bytes (under `key`) in one transaction, so a message is
 * never "ready" without them (a full disk or a closed tab between two writes would leave it so
 * for good: a replay finds the message and changes nothing). False, and nothing written, when
 * the message id is known or the sender's file id taken: by a kept file, or by a file on its
 * way (`in:<key>`).
 */
export async function putInlineFileIfNew(message: StoredMessage, key: string, blob: Blob): Promise<boolean> {
  const tx = (await open()).transaction(["messages", "attachments"], "readwrite");
  const messages = tx.objectStore("messages");
  const attachments = tx.objectStore("attachments");
  const taken =
    (await messages.getKey(message.id)) !== undefined || (await messages.getKey(`in:${key}`)) !== undefined || (await attachments.getKey(key)) !== undefined;
  if (!taken) await Promise.all([messages.put(message), attachments.put(blob, key)]);
  await tx.done;
  return !taken;
}

/** Whether an inline file took this file id: a file is kept under it, with no transfer entry (`in:<key>`). */
export async function takenByInlineFile(key: string): Promise<boolean> {
  const database = await open();
  return (await database.getKey("attachments", key)) !== undefined && (await database.getKey("messages", `in:${key}`)) === undefined;
}

export async function getAttachment(key: string): Promise<Blob | undefined> {
  return (await open()).get("attachments", key);
}

export async function putChunk(chunk: StoredChunk): Promise<void> {
  await (await open()).put("chunks", chunk);
}

/**
 * Keeps a piece unless one with its index is already kept, and updates its file's entry with
 * the new count of kept pieces, in one transaction. Returns that count, or null for a duplicate.
 */
export async function addPiece(chunk: StoredChunk, entryId: string, change: (m: StoredMessage | undefined, received: number) => StoredMessage): Promise<number | null> {
  const tx = (await open()).transaction(["chunks", "messages"], "readwrite");
  const chunks = tx.objectStore("chunks");
  if ((await chunks.getKey([chunk.file, chunk.i])) !== undefined) {
    await tx.done;
    return null;
  }
  await chunks.put(chunk);
  const received = await chunks.index("file").count(chunk.file);
  const messages = tx.objectStore("messages");
  await messages.put(change(await messages.get(entryId), received));
  await tx.done;
  return received;
}

/** Deletes the pieces of a file that `keep` refuses. */
export async function deleteChunksUnless(file: string, keep: (c: StoredChunk) => boolean): Promise<void> {
  const tx = (await open()).transaction("chunks", "readwrite");
  for (const chunk of await tx.store.index("file").getAll(file)) {
    if (!keep(chunk)) await tx.store.delete([chunk.file, chunk.i]);
  }
  await tx.done;
}

export async function hasChunk(file: string, i: number): Promise<boolean> {
  return (await (await open()).getKey("chunks", [file, i])) !== undefined;
}

export async function countChunks(file: string): Promise<number> {
  return (await open()).countFromIndex("chunks", "file", file);
}

export async function getChunks(file: string): Promise<StoredChunk[]> {
  return (await open()).getAllFromIndex("chunks", "file", file);
}

export async function deleteChunks(file: string): Promise<void> {
  const tx = (await open()).transaction("chunks", "readwrite");
  for (const key of await tx.store.index("file").getAllKeys(file)) await tx.store.delete(key);
  await tx.done;
}

export async function wasSeen(eventId: string): Promise<boolean> {
  return (await (await open()).getKey("seen", eventId)) !== undefined;
}

export async function markSeen(eventId: string): Promise<void> {
  await (await open()).put("seen", Date.now(), eventId);
}

export async function getPeer(primary: string): Promise<Peer | undefined> {
  return (await open()).get("peers", primary);
}

/** A key never seen before: a request until the person accepts it. */
export const newPeer = (primary: string, standing: Standing = "request"): Peer => ({ primary, fqhn: null, checkedAt: 0, standing, held: { messages: 0, bytes: 0 } });

/** Creates (with `initial` standing) or changes what is known about a key, in one transaction. */
export async function updatePeer(primary: string, change: (p: Peer) => Peer, initial: Standing = "request"): Promise<void> {
  const tx = (await open()).transaction("peers", "readwrite");
  await Promise.all([tx.store.put(change((await tx.store.get(primary)) ?? newPeer(primary, initial))), tx.done]);
}

export async function allPeers(): Promise<Peer[]> {
  return (await open()).getAll("peers");
}

export async function deletePeer(primary: string): Promise<void> {
  await (await open()).delete("peers", primary);
}

export async function peersWithStanding(standing: Standing): Promise<Peer[]> {
  return (await open()).getAllFromIndex("peers", "standing", standing);
}

/** Event ids handled before `before` (ms) are forgotten (docs/PROTOCOL.md §10.4). */
export async function pruneSeen(before: number): Promise<void> {
  const tx = (await open()).transaction("seen", "readwrite");
  for (let c = await tx.store.openCursor(); c; c = await c.continue()) {
    if (c.value < before) await c.delete();
  }
  await tx.done;
}

/** When a relay last handed over all it stored for an inbox (ms), if ever. */
export async function caughtUpAt(relay: string, inbox: string): Promise<number | undefined> {
  return (await (await open()).get("settings", `caught-up ${relay} ${inbox}`)) as number | undefined;
}

export async function setCaughtUpAt(relay: string, inbox: string, at: number): Promise<void> {
  await (await open()).put("settings", at, `caught-up ${relay} ${inbox}`);
}

/**
 * The app's own settings (the `settings` store also keeps relay state and read times under
 * other keys); `log <server>` is what logwatch.ts keeps of that server's log.
 */
export type AppSetting = "notify" | "without-handle" | "log-alarms" | "log-heard-unchecked" | "own-statements" | "own-handles" | "pending-move" | "monitor-unchecked" | `log ${string}`;

/** A move of `handle` to the key of `seed`, kept from before it is sent until it is seen through. */
export interface PendingMove {
  seed: Uint8Array;
  handle: string;
  /** When it was first signed (ms): the server may apply it for 5 minutes after. */
  signedAt: number;
}

export async function getSetting(name: AppSetting): Promise<unknown> {
  return (await open()).get("settings", `app ${name}`);
}

export async function putSetting(name: AppSetting, value: unknown): Promise<void> {
  await (await open()).put("settings", value, `app ${name}`);
}

export async function getRelays(): Promise<string[] | undefined> {
  return (await (await open()).get("settings", "relays")) as string[] | undefined;
}

/** `undefined` goes back to the home server's list. */
export async function saveRelays(relays: string[] | undefined): Promise<void> {
  const database = await open();
  if (relays) await database.put("settings", relays, "relays");
  else await database.delete("settings", "relays");
}

export async function getRelayInfo(relay: string): Promise<RelayInfo | undefined> {
  return (await (await open()).get("settings", `nip11 ${relay}`)) as RelayInfo | undefined;
}

export async function putRelayInfo(relay: string, info: RelayInfo): Promise<void> {
  await (await open()).put("settings", info, `nip11 ${relay}`);
}

/**
 * Whether files are striped across relays (the default) or, for the transfer benchmark's
 * baseline only, every piece is sent to every relay. Set by `setStriping(false)`, never by the UI.
 */
export async function striping(): Promise<boolean> {
  return (await (await open()).get("settings", "striping")) !== false;
}

export async function setStriping(on: boolean): Promise<void> {
  await (await open()).put("settings", on, "striping");
}
