import { describe, expect, it } from "vitest";
import { loadEmoji, replaceShortcodes, searchEmoji, shortcodeBefore } from "../src/lib/emoji";
import { pathOf, routeOf } from "../src/lib/route";
import { dayLabel, listTime, otherDay } from "../src/lib/time";

describe("emoji", () => {
  it("loads gemoji's shortcodes", async () => {
    const all = await loadEmoji();
    expect(all.length).toBeGreaterThan(1500);
    expect(all.find((e) => e.names.includes("+1"))?.char).toBe("👍");
  });

  it("finds what starts with the query before what contains it", async () => {
    const all = await loadEmoji();
    const found = searchEmoji(all, "smile", 50);
    expect(found[0].names.some((n) => n.startsWith("smile"))).toBe(true);
    const firstContaining = found.findIndex((e) => !e.names.some((n) => n.startsWith("smile")));
    expect(firstContaining === -1 || found.slice(firstContaining).every((e) => !e.names.some((n) => n.startsWith("smile")))).toBe(true);
    expect(searchEmoji(all, "zzzznothing")).toEqual([]);
  });

  it("sees a shortcode being typed only after a space, a bracket or the start", () => {
    expect(shortcodeBefore("hi :smi", 7)).toEqual({ start: 3, query: "smi" });
    expect(shortcodeBefore(":tada", 5)).toEqual({ start: 0, query: "tada" });
    expect(shortcodeBefore("hi :s", 5)).toBeNull();
    expect(shortcodeBefore("10:30", 5)).toBeNull();
    expect(shortcodeBefore("see http://x:80", 15)).toBeNull();
    expect(shortcodeBefore("hi :smi later", 7)).toEqual({ start: 3, query: "smi" });
  });

  it("replaces complete shortcodes it knows and leaves the rest", async () => {
    const all = await loadEmoji();
    expect(replaceShortcodes(all, "ok :+1: at 10:30 :nope: :TADA:")).toBe("ok 👍 at 10:30 :nope: 🎉");
  });
});

describe("routes", () => {
  const key = `ed25519:${"ab".repeat(32)}`;
  it("opens a chat by key, and looks a handle up", () => {
    expect(routeOf(`/chat/${key}`)).toEqual({ view: "chat", peer: key });
    expect(routeOf(`/chat/${encodeURIComponent(key)}`)).toEqual({ view: "chat", peer: key });
    expect(routeOf("/chat/alice")).toEqual({ view: "new", query: "alice" });
    expect(routeOf("/chat/alice%40example.org")).toEqual({ view: "new", query: "alice@example.org" });
  });

  it("sends anything else home, malformed escapes included", () => {
    expect(routeOf("/")).toEqual({ view: "home" });
    expect(routeOf("/nothing/here")).toEqual({ view: "home" });
    expect(routeOf("/chat/%E0%A4%A")).toEqual({ view: "home" });
    expect(routeOf(`/chat/${key.toUpperCase()}`)).toEqual({ view: "new", query: key.toUpperCase() });
  });

  it("writes what it reads", () => {
    for (const route of [{ view: "home" }, { view: "chat", peer: key }, { view: "new" }, { view: "new", query: "bob@x.org" }, { view: "settings" }] as const) {
      expect(routeOf(pathOf(route))).toEqual(route);
    }
  });
});

describe("times", () => {
  const now = new Date(2026, 11, 2, 15, 0).getTime();
  it("names days", () => {
    expect(dayLabel(new Date(2026, 11, 2, 0, 1).getTime(), now)).toBe("Today");
    expect(dayLabel(new Date(2026, 11, 1, 23, 59).getTime(), now)).toBe("Yesterday");
    expect(dayLabel(new Date(2026, 10, 20).getTime(), now)).not.toMatch(/Today|Yesterday/);
    expect(otherDay(new Date(2026, 11, 1, 23, 59).getTime(), new Date(2026, 11, 2, 0, 0).getTime())).toBe(true);
    expect(otherDay(new Date(2026, 11, 2, 0, 0).getTime(), new Date(2026, 11, 2, 23, 59).getTime())).toBe(false);
  });

  it("writes a row's time by how old it is", () => {
    expect(listTime(new Date(2026, 11, 2, 9, 5).getTime(), now)).toMatch(/09.05|9.05/);
    expect(listTime(new Date(2026, 10, 29).getTime(), now)).toBe(new Date(2026, 10, 29).toLocaleDateString([], { weekday: "short" }));
    expect(listTime(new Date(2026, 9, 1).getTime(), now)).not.toBe(new Date(2026, 9, 1).toLocaleDateString([], { weekday: "short" }));
  });
});
