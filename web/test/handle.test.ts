import { describe, expect, it } from "vitest";
import { checkHandle, skeleton } from "../src/lib/handle";

// The same cases as the server's src/domain/handle.rs tests.
describe("handle rules", () => {
  it("accepts what the server accepts", () => {
    for (const ok of ["abc", "alice", "bob_smith", "a-b", "0day", "x".repeat(32), "a__"]) {
      expect(checkHandle(ok)).toEqual({ ok: true, handle: ok });
    }
  });

  it("refuses what the server refuses, saying why", () => {
    for (const bad of ["ab", "x".repeat(33), "al ice", "al.ice", "al@ice", "_alice", "-alice", "alicé", "al\u0000ice", "ａｌｉｃｅ", "alice\n"]) {
      const check = checkHandle(bad);
      expect(check.ok, bad).toBe(false);
      if (!check.ok) expect(check.reason).toBe("invalid");
    }
    expect(checkHandle("")).toMatchObject({ ok: false, reason: "empty" });
    expect(checkHandle("Alice")).toMatchObject({ ok: false, message: "Use lowercase letters only." });
    expect(checkHandle("_alice")).toMatchObject({ message: "Start with a letter or a digit." });
    expect(checkHandle("ab")).toMatchObject({ message: "At least 3 characters." });
  });

  it("refuses lookalikes of reserved names, as the server does (the same skeleton steps)", () => {
    for (const name of ["adm1n", "r00t", "ro0t", "kez-support", "support_kez", "kezchat-adm1n", "sup-port", "5upport", "adrnin", "a_d_m_i_n", "adm-in", "sys_admin"]) {
      expect(checkHandle(name), name).toMatchObject({ ok: false, reason: "reserved" });
    }
    for (const name of ["admins", "rooted", "alice", "kezia", "supporter", "kezhelpers"]) {
      expect(checkHandle(name), name).toMatchObject({ ok: true });
    }
    for (const [a, b] of [["alice", "a1ice"], ["alice", "al-ice"], ["modern", "modem"], ["vvill", "will"], ["clean", "dean"], ["bob_5", "bobs"]]) {
      expect(skeleton(a)).toBe(skeleton(b));
    }
    expect(skeleton("alice")).not.toBe(skeleton("alike"));
  });

  it("knows the reserved names", () => {
    for (const name of ["admin", "root", "support", "postmaster", "kez", "well-known"]) {
      expect(checkHandle(name)).toMatchObject({ ok: false, reason: "reserved" });
    }
  });
});
