// What the app keeps in this browser (IndexedDB): the identity's seed, the handle it
// registered, and saved contacts. Nothing here is sent anywhere.
import { type DBSchema, type IDBPDatabase, openDB } from "idb";

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

interface KezDb extends DBSchema {
  identity: { key: "self"; value: { seed: Uint8Array; createdAt: string } };
  registration: { key: "self"; value: Registration };
  contacts: { key: string; value: Contact };
}

let db: Promise<IDBPDatabase<KezDb>> | undefined;

function open(): Promise<IDBPDatabase<KezDb>> {
  db ??= openDB<KezDb>("kez-chat", 1, {
    upgrade(database) {
      database.createObjectStore("identity");
      database.createObjectStore("registration");
      database.createObjectStore("contacts", { keyPath: "primary" });
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

export async function forgetIdentity(): Promise<void> {
  const tx = (await open()).transaction(["identity", "registration"], "readwrite");
  await Promise.all([tx.objectStore("identity").delete("self"), tx.objectStore("registration").delete("self"), tx.done]);
}

export async function loadRegistration(): Promise<Registration | undefined> {
  return (await open()).get("registration", "self");
}

export async function saveRegistration(registration: Registration | undefined): Promise<void> {
  const database = await open();
  if (registration) await database.put("registration", registration, "self");
  else await database.delete("registration", "self");
}

export async function listContacts(): Promise<Contact[]> {
  const all = await (await open()).getAll("contacts");
  return all.sort((a, b) => a.fqhn.localeCompare(b.fqhn));
}

export async function saveContact(contact: Contact): Promise<void> {
  await (await open()).put("contacts", contact);
}

export async function removeContact(primary: string): Promise<void> {
  await (await open()).delete("contacts", primary);
}
