// The identity file: the secret as a JSON file the person keeps, and the one way it is read
// back (restoring on another device, and checking that a saved copy is whole).
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";
import { fingerprint, type Identity, identityFromSeed } from "./identity";
import { seedToPhrase } from "./mnemonic";

/** The file's contents: the seed, the phrase that says the same, and the key they make. */
export function backupText(identity: Identity): string {
  const body = { kez: "identity_backup", version: 1, primary: identity.primary, seed: bytesToHex(identity.seed), phrase: seedToPhrase(identity.seed) };
  return JSON.stringify(body, null, 2) + "\n";
}

/** Named after the key's fingerprint, so two identities' files are told apart. */
export const backupName = (identity: Identity) => `kez-identity-${fingerprint(identity.publicKey).slice(0, 9).replace(" ", "")}.json`;

/** The identity in a file `backupText` wrote, or null for anything else (its key must match its seed). */
export function identityFromBackup(text: string): Identity | null {
  let body: { kez?: unknown; seed?: unknown; primary?: unknown } | null;
  try {
    body = JSON.parse(text);
  } catch {
    return null;
  }
  if (body?.kez !== "identity_backup" || typeof body.seed !== "string" || !/^[0-9a-f]{64}$/.test(body.seed)) return null;
  const identity = identityFromSeed(hexToBytes(body.seed));
  return body.primary === identity.primary ? identity : null;
}
