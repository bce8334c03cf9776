import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";
import { describe, expect, it } from "vitest";
import fixed from "../../tests/vectors/registration.json";
import { identityFromSeed, newIdentity, sign } from "../src/lib/identity";
import {
  BindingError,
  type Envelope,
  canonicalBytes,
  registrationPayload,
  rfc3339,
  signRegistration,
  verifyUserBody,
} from "../src/lib/registration";

const decoder = new TextDecoder();
const alice = identityFromSeed(hexToBytes(fixed.secret_seed_hex));
const valid = fixed.vectors.find((v) => v.name === "valid")!;

/** A lookup body as the server sends it for the envelope. */
function bodyFor(envelope: Envelope) {
  const p = envelope.payload;
  return { handle: p.handle, fqhn: `${p.handle}@${p.server}`, primary: p.primary, registered_at: p.created_at, envelope };
}

describe("JCS (RFC 8785)", () => {
  it("gives the shared vectors' canonical bytes", () => {
    for (const v of fixed.vectors) {
      expect(decoder.decode(canonicalBytes(v.envelope.payload)), v.name).toBe(v.canonical_payload);
    }
  });

  it("sorts keys by UTF-16 code units and writes numbers the ECMAScript way", () => {
    // RFC 8785 section 3.2.3's sorting example and section 3.2.2.3 number forms.
    const value = { "\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis" };
    // (Read the order from the text: Object.keys would put "1" first.)
    const text = decoder.decode(canonicalBytes(value));
    const order = ["\\r", "1", "\u0080", "\u00f6", "\u20ac", "\ud83d\ude00", "\ufb33"].map((k) => text.indexOf(`"${k}":`));
    expect(order.every((at) => at >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(decoder.decode(canonicalBytes([1e21, 1e-7, 0.000001, -0, 333333333.3333333]))).toBe("[1e+21,1e-7,0.000001,0,333333333.3333333]");
  });
});

describe("registration envelope", () => {
  it("signs the shared vector byte for byte (the Rust verifier's test accepts the same bytes)", () => {
    const p = valid.envelope.payload;
    const payload = registrationPayload(p.handle, p.primary, p.server, new Date(p.created_at));
    expect(payload).toEqual(p);
    expect(signRegistration(alice, payload)).toEqual(valid.envelope);
  });

  it("writes created_at as RFC 3339 UTC to the millisecond", () => {
    expect(rfc3339(new Date("2026-11-26T10:52:13.789Z"))).toBe("2026-11-26T10:52:13.789Z");
    expect(rfc3339(new Date("2026-11-26T10:52:13.000Z"))).toBe("2026-11-26T10:52:13Z");
  });

  it("will not sign a payload that names another key", () => {
    const payload = registrationPayload("alice", newIdentity().primary, "kez.lat");
    expect(() => signRegistration(alice, payload)).toThrow();
  });
});

describe("checking a lookup's binding", () => {
  const envelope = valid.envelope as Envelope;

  it("trusts a body whose envelope the key signed", () => {
    const user = verifyUserBody(bodyFor(envelope), { server: "KEZ.lat", handle: "Alice" });
    expect(user).toMatchObject({ handle: "alice", fqhn: "alice@kez.lat", primary: fixed.primary, server: "kez.lat" });
  });

  it("trusts a fresh registration signed by the TypeScript code", () => {
    const id = newIdentity();
    const signed = signRegistration(id, registrationPayload("bob", id.primary, "kez.lat"));
    expect(verifyUserBody(bodyFor(signed), { server: "kez.lat", primary: id.primary }).primary).toBe(id.primary);
  });

  it("catches a server that swaps the key", () => {
    const mallory = newIdentity();
    // Swapped only in the body: the envelope still names alice's key.
    expect(() => verifyUserBody({ ...bodyFor(envelope), primary: mallory.primary }, { server: "kez.lat", handle: "alice" })).toThrow(BindingError);
    // Swapped in the envelope too, keeping alice's signature.
    const forged = { ...envelope, payload: { ...envelope.payload, primary: mallory.primary }, signature: { ...envelope.signature, key: mallory.primary } };
    expect(() => verifyUserBody(bodyFor(forged), { server: "kez.lat", handle: "alice" })).toThrow(/does not verify/);
    // Mallory signs alice's handle with her own key: valid, but not the key asked for.
    const own = signRegistration(mallory, registrationPayload("alice", mallory.primary, "kez.lat"));
    expect(() => verifyUserBody(bodyFor(own), { server: "kez.lat", primary: fixed.primary })).toThrow(/someone else/);
  });

  it("refuses a signed handle outside the handle alphabet (a lookalike of a pinned one)", () => {
    const id = newIdentity();
    for (const handle of ["bоb", "bob\u200b", "Bob", "b\u202eob"]) {
      // Signed by the key it names: only the handle rule stops it.
      const signed = { kez: "handle_registration", payload: { ...registrationPayload("bob", id.primary, "kez.lat"), handle }, signature: { alg: "ed25519-sha512-jcs", key: id.primary, sig: "" } } as Envelope;
      signed.signature.sig = bytesToHex(sign(id, canonicalBytes(signed.payload)));
      expect(() => verifyUserBody(bodyFor(signed), { server: "kez.lat", primary: id.primary })).toThrow(/not a valid handle/);
    }
  });

  it("catches a changed handle, server, signature or a missing envelope", () => {
    const renamed = { ...envelope, payload: { ...envelope.payload, handle: "alicia" } };
    expect(() => verifyUserBody(bodyFor(renamed), { server: "kez.lat" })).toThrow(/does not verify/);
    expect(() => verifyUserBody(bodyFor(envelope), { server: "other.example" })).toThrow(BindingError);
    const badSig = { ...envelope, signature: { ...envelope.signature, sig: "00".repeat(64) } };
    expect(() => verifyUserBody(bodyFor(badSig), { server: "kez.lat" })).toThrow(/does not verify/);
    const { envelope: _, ...bare } = bodyFor(envelope);
    expect(() => verifyUserBody(bare, { server: "kez.lat" })).toThrow(/no signed registration/);
    expect(() => verifyUserBody(null, { server: "kez.lat" })).toThrow(BindingError);
  });
});

describe("a binding set by a key rotation", () => {
  const oldKey = identityFromSeed(new Uint8Array(32).fill(1));
  const newKey = identityFromSeed(new Uint8Array(32).fill(2));
  const payload = { type: "kez.chat.key_rotation", version: 1, handle: "alice", server: "kez.lat", old: oldKey.primary, new: newKey.primary, created_at: "2026-12-02T00:00:00Z" };
  const by = (who: typeof oldKey, p = payload) => ({ alg: "ed25519-sha512-jcs", key: who.primary, sig: bytesToHex(sign(who, canonicalBytes(p))) });
  const body = (signatures: unknown[], p = payload) => ({ handle: "alice", fqhn: "alice@kez.lat", primary: newKey.primary, registered_at: "2026-12-01T00:00:00Z", envelope: { kez: "key_rotation", payload: p, signatures } });

  it("is trusted when both keys signed it, for the new key", () => {
    const user = verifyUserBody(body([by(oldKey), by(newKey)]), { server: "kez.lat", handle: "alice" });
    expect(user.primary).toBe(newKey.primary);
  });

  it("is refused with one signature, a stranger's, or for another key than the answer names", () => {
    const stranger = identityFromSeed(new Uint8Array(32).fill(3));
    expect(() => verifyUserBody(body([by(oldKey)]), { server: "kez.lat" })).toThrow(BindingError);
    expect(() => verifyUserBody(body([by(stranger), by(newKey)]), { server: "kez.lat" })).toThrow(BindingError);
    expect(() => verifyUserBody({ ...body([by(oldKey), by(newKey)]), primary: oldKey.primary }, { server: "kez.lat" })).toThrow(BindingError);
  });
});
