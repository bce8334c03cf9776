// How the app names a key and how far it trusts it. A name comes from a saved contact (a pin)
// or from a directory binding that checked out and does not clash with a pin; otherwise the
// key is shown only by its fingerprint. "Verified" means only one thing: safety numbers were
// compared with this key.
import { hexToBytes } from "@noble/hashes/utils.js";
import { fingerprint } from "./identity";
import * as store from "./store";

export interface Person {
  primary: string;
  name: string;
  fingerprint: string;
  /** Named by a contact, or by a directory binding no pin contradicts. */
  named: boolean;
  /** Safety numbers were compared with this key and matched. */
  verified: boolean;
  standing: store.Standing;
  contact: boolean;
  /** The directory (or a message) showed another key for this contact's handle. */
  keyChange?: { primary: string; fingerprint: string; seenAt: string; kept: boolean };
  /** The directory names this key with a handle that is pinned to another key. */
  claims?: string;
  /** This key's handle moved to another key, in a move this key signed (the handle, and the new key). */
  movedTo?: { fqhn: string; primary: string; fingerprint: string };
}

/** A stored primary key's fingerprint (stored keys were checked when they came in). */
const printOf = (primary: string) => fingerprint(hexToBytes(primary.slice("ed25519:".length)));

/** What the app shows for a key, from what is stored about it and the keys pinned for its claimed handle. */
function describe(primary: string, contact: store.Contact | undefined, peer: store.Peer | undefined, pinnedForClaim: string[]): Person {
  const print = printOf(primary);
  const standing = peer?.standing === "blocked" ? "blocked" : contact ? "accepted" : (peer?.standing ?? "request");
  const base = { primary, fingerprint: print, verified: !!peer?.comparedAt, standing } as const;
  if (contact) {
    const change = contact.keyChange;
    const keyChange = change ? { primary: change.primary, fingerprint: printOf(change.primary), seenAt: change.seenAt, kept: !!change.kept } : undefined;
    return { ...base, name: contact.fqhn, named: true, contact: true, keyChange };
  }
  // "Unverified" is about the name: a key compared by safety numbers but with no name is not that.
  const unnamed = { ...base, name: `${base.verified ? "Verified" : "Unverified"} key ${print}`, named: false, contact: false };
  if (peer?.movedTo) {
    const { primary: next, fqhn } = peer.movedTo;
    return { ...unnamed, name: `${fqhn}'s old key ${print}`, movedTo: { fqhn, primary: next, fingerprint: printOf(next) } };
  }
  if (!peer?.fqhn) return unnamed;
  if (pinnedForClaim.some((p) => p !== primary)) return { ...unnamed, claims: peer.fqhn };
  return { ...unnamed, name: peer.fqhn, named: true };
}

export async function personOf(primary: string): Promise<Person> {
  const [contact, peer] = await Promise.all([store.getContact(primary), store.getPeer(primary)]);
  const pins = peer?.fqhn && !contact ? (await store.contactsByFqhn(peer.fqhn)).map((c) => c.primary) : [];
  return describe(primary, contact, peer, pins);
}

/** Everyone to list: contacts and everyone there is a conversation with, read in three queries. */
export async function everyone(): Promise<Person[]> {
  const [contacts, peers, talkedTo] = await Promise.all([store.listContacts(), store.allPeers(), store.conversationPeers()]);
  const contactOf = new Map(contacts.map((c) => [c.primary, c]));
  const peerOf = new Map(peers.map((p) => [p.primary, p]));
  const pinned = new Map<string, string[]>();
  for (const c of contacts) pinned.set(c.fqhn, [...(pinned.get(c.fqhn) ?? []), c.primary]);
  const primaries = new Set([...contactOf.keys(), ...talkedTo]);
  return [...primaries].map((primary) => {
    const peer = peerOf.get(primary);
    return describe(primary, contactOf.get(primary), peer, (peer?.fqhn && pinned.get(peer.fqhn)) || []);
  });
}
