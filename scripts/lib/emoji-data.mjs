// Writes the emoji picker's data, web/src/lib/emoji-data.gen.json (git-ignored), from the
// gemoji package (GitHub's emoji and their :shortcodes:): each emoji, its shortcodes and its
// category, without gemoji's tags and descriptions (16 KB gzip instead of 64).
import { writeFileSync } from "node:fs";
import path from "node:path";
import { gemoji } from "gemoji";

const categories = [...new Set(gemoji.map((g) => g.category))];
const emoji = gemoji.map((g) => [g.emoji, g.names.join(" "), categories.indexOf(g.category)]);
const out = path.join(import.meta.dirname, "../../web/src/lib/emoji-data.gen.json");
writeFileSync(out, JSON.stringify({ categories, emoji }));
