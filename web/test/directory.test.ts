import { describe, expect, it } from "vitest";
import { originOf } from "../src/lib/api";
import { parseQuery } from "../src/lib/directory";

const KEY = "ed25519:d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

describe("directory queries", () => {
  it("reads a handle on this server, in any case, with or without @", () => {
    expect(parseQuery("Alice", "kez.lat")).toEqual({ kind: "handle", handle: "alice", domain: "kez.lat" });
    expect(parseQuery(" @alice ", "kez.lat")).toEqual({ kind: "handle", handle: "alice", domain: "kez.lat" });
  });

  it("reads handle@domain, including a port", () => {
    expect(parseQuery("bob@Example.org", "kez.lat")).toEqual({ kind: "handle", handle: "bob", domain: "example.org" });
    expect(parseQuery("bob@127.0.0.1:8788", "kez.lat")).toEqual({ kind: "handle", handle: "bob", domain: "127.0.0.1:8788" });
  });

  it("reads a key", () => {
    expect(parseQuery(KEY, "kez.lat")).toEqual({ kind: "primary", primary: KEY });
  });

  it("says what is wrong with anything else", () => {
    expect(() => parseQuery("", "kez.lat")).toThrow(/Type a handle/);
    expect(() => parseQuery("a b", "kez.lat")).toThrow(/not a handle/);
    expect(() => parseQuery("bob@exa mple.org", "kez.lat")).toThrow(/not a domain/);
    expect(() => parseQuery("bob@https://x", "kez.lat")).toThrow(/not a domain/);
    expect(() => parseQuery("ed25519:1234", "kez.lat")).toThrow(/not a valid key/);
  });

  it("uses https for every domain but loopback", () => {
    expect(originOf("example.org")).toBe("https://example.org");
    expect(originOf("localhost:8787")).toBe("http://localhost:8787");
    expect(originOf("127.0.0.1")).toBe("http://127.0.0.1");
  });
});
