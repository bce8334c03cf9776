import { bytesToHex } from "@noble/hashes/utils.js";
import { describe, expect, it } from "vitest";
import vectors from "../../tests/vectors/mnemonic.json";
import { identityFromSeed } from "../src/lib/identity";
import { PhraseError, TWELVE_WORD_TAG, normalizePhrase, phraseToSeed, seedToPhrase } from "../src/lib/mnemonic";

describe("KEZ mnemonic convention", () => {
  it("uses the shared tag", () => {
    expect(TWELVE_WORD_TAG).toBe(vectors.twelve_word_tag);
  });

  for (const v of vectors.vectors) {
    it(`restores the seed and key of: ${v.name}`, () => {
      const seed = phraseToSeed(v.phrase);
      expect(bytesToHex(seed)).toBe(v.seed_hex);
      expect(identityFromSeed(seed).primary).toBe(v.primary);
    });
  }

  it("backs a seed up as the 24 words whose entropy is the seed", () => {
    for (const v of vectors.vectors.filter((x) => x.entropy_hex.length === 64)) {
      const seed = phraseToSeed(v.phrase);
      expect(seedToPhrase(seed)).toBe(v.phrase);
    }
  });

  it("round-trips a 12-word identity through its 24-word backup", () => {
    const twelve = vectors.vectors.find((x) => x.entropy_hex.length === 32)!;
    const seed = phraseToSeed(twelve.phrase);
    const backup = seedToPhrase(seed);
    expect(backup.split(" ")).toHaveLength(24);
    expect(identityFromSeed(phraseToSeed(backup)).primary).toBe(twelve.primary);
  });

  it("accepts the phrase however it was typed or pasted", () => {
    const v = vectors.vectors[1];
    const messy = "  " + v.phrase.toUpperCase().split(" ").map((w, i) => `${i + 1}. ${w}`).join("\n\t ") + " \n";
    expect(normalizePhrase(messy).join(" ")).toBe(v.phrase);
    expect(bytesToHex(phraseToSeed(messy))).toBe(v.seed_hex);
  });

  it("says what is wrong with a bad phrase", () => {
    const words = vectors.vectors[3].phrase.split(" ");
    expect(() => phraseToSeed(words.slice(0, 23).join(" "))).toThrow(/12 or 24 words; this has 23/);
    expect(() => phraseToSeed("")).toThrow(PhraseError);
    expect(() => phraseToSeed([...words.slice(0, 23), "qwerty"].join(" "))).toThrow(/word list: qwerty/);
    const swapped = [words[1], words[0], ...words.slice(2)];
    expect(() => phraseToSeed(swapped.join(" "))).toThrow(/checksum/);
  });

  it("refuses to back up anything but a 32-byte seed", () => {
    expect(() => seedToPhrase(new Uint8Array(16))).toThrow();
  });
});
