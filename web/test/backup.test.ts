import { hexToBytes } from "@noble/hashes/utils.js";
import { describe, expect, it } from "vitest";
import { backupName, backupText, identityFromBackup } from "../src/lib/backup";
import { identityFromSeed, newIdentity } from "../src/lib/identity";

// RFC 8032 section 7.1, test 1.
const alice = identityFromSeed(hexToBytes("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"));

describe("identity file", () => {
  it("reads back as the same key", () => {
    const text = backupText(alice);
    expect(JSON.parse(text)).toMatchObject({ kez: "identity_backup", version: 1, primary: alice.primary });
    expect(identityFromBackup(text)?.primary).toBe(alice.primary);
    expect(identityFromBackup(text)?.seed).toEqual(alice.seed);
  });

  it("is named after the key's fingerprint", () => {
    expect(backupName(alice)).toMatch(/^kez-identity-[0-9A-F]{8}\.json$/);
    expect(backupName(newIdentity())).not.toBe(backupName(alice));
  });

  it("refuses what is not a whole backup", () => {
    const body = JSON.parse(backupText(alice));
    const other = newIdentity();
    for (const text of [
      "",
      "not json",
      "null",
      "{}",
      JSON.stringify({ ...body, kez: "something_else" }),
      JSON.stringify({ ...body, seed: body.seed.toUpperCase() }),
      JSON.stringify({ ...body, seed: body.seed.slice(2) }),
      // A seed whose key is not the one the file names: a file edited or cut and pieced together.
      JSON.stringify({ ...body, primary: other.primary }),
      JSON.stringify({ ...body, primary: undefined }),
    ]) {
      expect(identityFromBackup(text), text).toBeNull();
    }
  });
});
