// Backup phrases (BIP-39, English), by the KEZ mnemonic convention:
// - 24 words: the 32 bytes of entropy ARE the Ed25519 seed;
// - 12 words: the seed is SHA-256("kez-bip39-12-v1" || the 16 bytes of entropy).
// BIP-39's own PBKDF2 seed is not used. The same phrase gives the same key anywhere.
import { entropyToMnemonic, mnemonicToEntropy } from "@scure/bip39";
import { wordlist } from "@scure/bip39/wordlists/english.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, utf8ToBytes } from "@noble/hashes/utils.js";

export const TWELVE_WORD_TAG = "kez-bip39-12-v1";

/** The 24-word phrase of a seed. */
export function seedToPhrase(seed: Uint8Array): string {
  if (seed.length !== 32) throw new Error("an Ed25519 seed is 32 bytes");
  return entropyToMnemonic(seed, wordlist);
}

export class PhraseError extends Error {}

/** Splits what a person typed or pasted into words: any spacing, any case, numbering like "1." removed. */
export function normalizePhrase(input: string): string[] {
  return input
    .normalize("NFKD")
    .toLowerCase()
    .split(/\s+/)
    .map((w) => w.replace(/^\d+[.)]?$/, ""))
    .filter((w) => w !== "");
}

/** The seed a 12- or 24-word phrase stands for; a PhraseError says what is wrong. */
export function phraseToSeed(input: string): Uint8Array {
  const words = normalizePhrase(input);
  if (words.length !== 12 && words.length !== 24) {
    throw new PhraseError(`A recovery phrase has 12 or 24 words; this has ${words.length}.`);
  }
  const unknown = words.filter((w) => !wordlist.includes(w));
  if (unknown.length > 0) {
    throw new PhraseError(`Not in the BIP-39 English word list: ${unknown.join(", ")}.`);
  }
  let entropy: Uint8Array;
  try {
    entropy = mnemonicToEntropy(words.join(" "), wordlist);
  } catch {
    throw new PhraseError("The words are right but the checksum is not: a word is wrong or out of order.");
  }
  return words.length === 24 ? entropy : sha256(concatBytes(utf8ToBytes(TWELVE_WORD_TAG), entropy));
}
