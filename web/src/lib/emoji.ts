// Emoji for the composer: the picker's data (loaded on first use, a chunk of its own) and
// `:shortcode:` completion. Shortcodes are GitHub's (gemoji), as on GitHub and Slack.

export interface Emoji {
  char: string;
  /** Shortcodes, without colons: "smile", "+1". */
  names: string[];
  category: string;
}

let loaded: Promise<Emoji[]> | undefined;

/** Every emoji, in gemoji's order (by category, as keyboards list them). */
export function loadEmoji(): Promise<Emoji[]> {
  loaded ??= import("./emoji-data.gen.json").then(({ default: data }) =>
    (data.emoji as [string, string, number][]).map(([char, names, category]) => ({ char, names: names.split(" "), category: data.categories[category] })),
  );
  return loaded;
}

/** Emoji whose shortcodes match `query`: those starting with it first, then those containing it. */
export function searchEmoji(all: Emoji[], query: string, limit = Infinity): Emoji[] {
  const q = query.toLowerCase().replace(/^:|:$/g, "");
  if (!q) return all.slice(0, limit);
  const starts: Emoji[] = [];
  const contains: Emoji[] = [];
  for (const e of all) {
    if (e.names.some((n) => n.startsWith(q))) starts.push(e);
    else if (e.names.some((n) => n.includes(q))) contains.push(e);
  }
  return [...starts, ...contains].slice(0, limit);
}

/** The shortcode being typed just before `caret` (":smi" gives "smi"), if any: two characters at least. */
export function shortcodeBefore(text: string, caret: number): { start: number; query: string } | null {
  const match = /(^|[\s(]):([a-z0-9_+-]{2,})$/i.exec(text.slice(0, caret));
  if (!match) return null;
  return { start: caret - match[2].length - 1, query: match[2].toLowerCase() };
}

/** `text` with every complete `:shortcode:` that names an emoji replaced by it. */
export function replaceShortcodes(all: Emoji[], text: string): string {
  if (!text.includes(":")) return text;
  const byName = new Map(all.flatMap((e) => e.names.map((n) => [n, e.char] as const)));
  return text.replace(/:([a-z0-9_+-]+):/gi, (whole, name: string) => byName.get(name.toLowerCase()) ?? whole);
}
