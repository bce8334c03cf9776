import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";
import { describe, expect, it } from "vitest";
import { fingerprint, identityFromSeed, newIdentity, parsePrimary, sign, verify } from "../src/lib/identity";

// RFC 8032 section 7.1, test 1.
const SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const SIG_EMPTY =
  "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

describe("identity", () => {
  it("derives the RFC 8032 key and signature", () => {
    const id = identityFromSeed(hexToBytes(SEED));
    expect(id.primary).toBe(`ed25519:${PUBLIC}`);
    const sig = sign(id, new Uint8Array());
    expect(bytesToHex(sig)).toBe(SIG_EMPTY);
    expect(verify(id.publicKey, new Uint8Array(), sig)).toBe(true);
    sig[0] ^= 1;
    expect(verify(id.publicKey, new Uint8Array(), sig)).toBe(false);
  });

  it("makes a different identity each time", () => {
    const a = newIdentity();
    const b = newIdentity();
    expect(a.primary).not.toBe(b.primary);
    expect(a.primary).toMatch(/^ed25519:[0-9a-f]{64}$/);
  });

  it("fingerprints a key as five groups of four hex digits", () => {
    const fp = fingerprint(hexToBytes(PUBLIC));
    expect(fp).toMatch(/^([0-9A-F]{4} ){4}[0-9A-F]{4}$/);
    expect(fingerprint(hexToBytes(PUBLIC))).toBe(fp);
    expect(fingerprint(newIdentity().publicKey)).not.toBe(fp);
  });

  it("parses only keys the server accepts", () => {
    expect(bytesToHex(parsePrimary(`ed25519:${PUBLIC}`)!)).toBe(PUBLIC);
    expect(parsePrimary(`ed25519:${PUBLIC.toUpperCase()}`)).toBeNull();
    expect(parsePrimary(PUBLIC)).toBeNull();
    expect(parsePrimary(`ed25519:${PUBLIC.slice(2)}`)).toBeNull();
    // The identity point (small order) and a y that is not on the curve.
    expect(parsePrimary(`ed25519:01${"00".repeat(31)}`)).toBeNull();
    expect(parsePrimary(`ed25519:02${"00".repeat(31)}`)).toBeNull();
  });
});
