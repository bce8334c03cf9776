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

export interface Contact {
  primary: string;
  fqhn: string;
  handle: string;
  server: string;
  fingerprint: string;
  savedAt: string;
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
  /** Why it failed, for people. */
  error?: string;
}

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

export interface Peer {
  primary: string;
  /** handle@server once checked against the directory; null when it could not be. */
  fqhn: string | null;
  checkedAt: number;
}

interface KezDb extends DBSchema {
  identity: { key: "self"; value: { seed: Uint8Array; createdAt: string } };
  registration: { key: "self"; value: Registration };
  contacts: { key: string; value: Contact };
  messages: { key: string; value: StoredMessage; indexes: { peer: string; status: MessageStatus } };
  /** Files sent or received, as Blobs, by `<sender primary>/<file_id>`. */
  attachments: { key: string; value: Blob };
  chunks: { key: [string, number]; value: StoredChunk; indexes: { file: string } };
  /** Nostr event ids already handled, so replays from relays cost nothing. */
  seen: { key: string; value: number };
  peers: { key: string; value: Peer };
  settings: { key: string; value: unknown };
}

let db: Promise<IDBPDatabase<KezDb>> | undefined;

function open(): Promise<IDBPDatabase<KezDb>> {
  db ??= openDB<KezDb>("kez-chat", 1, {
    upgrade(database) {
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
    },
  });
  return db;
}

export async function loadSeed(): Promise<Uint8Array | undefined> {
  return (await (await open()).get("identity", "self"))?.seed;
}

/** Replaces the identity; the old registration belonged to the old key, so it goes too. */
export async function saveSeed(seed: Uint8Array): Promise<void> {
  const tx = (await open()).transaction(["identity", "registration"], "readwrite");
  await Promise.all([tx.objectStore("identity").put({ seed, createdAt: new Date().toISOString() }, "self"), tx.objectStore("registration").delete("self"), tx.done]);
}

/** Removes the identity and everything that came with it; only the relay list (a device setting) stays. */
export async function forgetIdentity(): Promise<void> {
  const names = ["identity", "registration", "contacts", "messages", "attachments", "chunks", "seen", "peers"] as const;
  const tx = (await open()).transaction(names, "readwrite");
  await Promise.all([...names.map((n) => tx.objectStore(n).clear()), tx.done]);
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

export async function listMessages(peer: string): Promise<StoredMessage[]> {
  const all = await (await open()).getAllFromIndex("messages", "peer", peer);
  return all.sort((a, b) => a.at - b.at || a.sentAt - b.sentAt);
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

export async function putPeer(peer: Peer): Promise<void> {
  await (await open()).put("peers", peer);
}

/** When a relay last handed over all it stored for an inbox (ms), if ever. */
export async function caughtUpAt(relay: string, inbox: string): Promise<number | undefined> {
  return (await (await open()).get("settings", `caught-up ${relay} ${inbox}`)) as number | undefined;
}

export async function setCaughtUpAt(relay: string, inbox: string, at: number): Promise<void> {
  await (await open()).put("settings", at, `caught-up ${relay} ${inbox}`);
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
