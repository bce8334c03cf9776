// Pinning, used by the directory and the messenger alike: the first key seen for a handle is
// kept (trust on first use). A later lookup or message that shows another key for that handle
// never switches it silently: the contact carries a warning and messages keep going to the
// pinned key until the person accepts the new one. The one exception is a move the pinned key
// itself signed (a key rotation from it, verified with both signatures and in the server's
// log): the pin follows it, since the key the person trusted vouched for its successor.
import { fingerprint } from "./identity";
import type { VerifiedUser } from "./registration";
import * as store from "./store";

export type PinCheck =
  | { kind: "unpinned" }
  | { kind: "pinned"; contact: store.Contact }
  /** The handle is pinned to another key. */
  | { kind: "changed"; pinned: store.Contact };

/** How a verified directory answer compares with what is pinned for its handle. */
export async function checkPin(user: { fqhn: string; primary: string }): Promise<PinCheck> {
  const pins = await store.contactsByFqhn(user.fqhn);
  const same = pins.find((c) => c.primary === user.primary);
  if (same) return { kind: "pinned", contact: same };
  return pins.length > 0 ? { kind: "changed", pinned: pins[0] } : { kind: "unpinned" };
}

const contactOf = (user: VerifiedUser): store.Contact => ({
  primary: user.primary,
  fqhn: user.fqhn,
  handle: user.handle,
  server: user.server,
  fingerprint: fingerprint(user.publicKey),
  savedAt: new Date().toISOString(),
});

/**
 * Looks at a verified answer: pins it if the handle is new (when `pinIfNew`: the person saved
 * it, or accepted the key), and flags the pinned contact when the answer shows another key; an
 * answer showing the pinned key again clears that flag. A key already pinned under another
 * handle keeps its pin: a second binding signed by the same key never renames a contact.
 */
export async function notice(user: VerifiedUser, pinIfNew: boolean): Promise<PinCheck> {
  const check = await checkPin(user);
  if (check.kind === "changed" && user.movedFrom === check.pinned.primary) {
    // Its chat says where the handle went: what is written there goes to a key left behind.
    // Written first: the contact's change redraws the chat list.
    await store.updatePeer(check.pinned.primary, (p) => ({ ...p, movedTo: { primary: user.primary, fqhn: check.pinned.fqhn } }));
    await acceptNewKey(check.pinned, user);
    return checkPin(user);
  }
  if (check.kind === "unpinned" && pinIfNew && !(await store.getContact(user.primary))) {
    await store.saveContact(contactOf(user));
    await store.updatePeer(user.primary, (p) => ({ ...p, standing: "accepted" }), "accepted");
  } else if (check.kind === "changed" && check.pinned.keyChange?.primary !== user.primary) {
    await store.saveContact({ ...check.pinned, keyChange: { primary: user.primary, seenAt: new Date().toISOString() } });
  } else if (check.kind === "pinned" && check.contact.keyChange) {
    await store.saveContact({ ...check.contact, keyChange: undefined });
  }
  return check;
}

/** The person keeps the pinned key: the warning goes until the directory shows yet another key. */
export async function keepPinnedKey(contact: store.Contact): Promise<void> {
  if (contact.keyChange) await store.saveContact({ ...contact, keyChange: { ...contact.keyChange, kept: true } });
}

/** Pins a handle to a new key the person accepted; the old key's conversation stays. */
export async function acceptNewKey(pinned: store.Contact, user: VerifiedUser): Promise<void> {
  await store.replaceContact(pinned.primary, contactOf(user));
  await store.updatePeer(user.primary, (p) => ({ ...p, standing: "accepted", fqhn: user.fqhn, checkedAt: Date.now(), movedTo: undefined }));
}
