// How the app names a key: a saved contact's handle or a handle the directory's signed
// binding confirmed; otherwise only the key's fingerprint, marked unverified.
import { fingerprint, parsePrimary } from "./identity";
import * as store from "./store";

export interface Person {
  primary: string;
  name: string;
  verified: boolean;
}

export async function personOf(primary: string): Promise<Person> {
  const contact = await store.getContact(primary);
  if (contact) return { primary, name: contact.fqhn, verified: true };
  const peer = await store.getPeer(primary);
  if (peer?.fqhn) return { primary, name: peer.fqhn, verified: true };
  return { primary, name: `Unverified key ${fingerprint(parsePrimary(primary)!)}`, verified: false };
}
