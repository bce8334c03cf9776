// Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core; never a
// downloaded browser), one fresh profile per person, with screenshots as test artifacts.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const ROOT = path.resolve(import.meta.dirname, "../..");
export const ARTIFACTS = path.join(ROOT, "test-artifacts");
export const CHROMIUM = process.env.KEZ_CHROMIUM_BIN ?? "/usr/bin/chromium";

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * A browser profile of its own (IndexedDB survives reloads, not profiles). Every request and
 * WebSocket a page opens is recorded in `requests`, and page errors in `errors`.
 */
export async function openProfile(name, { viewport = { width: 1000, height: 900 } } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), `kez-browser-${name}-`));
  const context = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport, acceptDownloads: true });
  const page = context.pages()[0] ?? (await context.newPage());
  const requests = [];
  const errors = [];
  page.on("request", (r) => requests.push(r.url()));
  page.on("websocket", (ws) => requests.push(ws.url()));
  page.on("pageerror", (e) => errors.push(e));
  const consoleLines = [];
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  return {
    name,
    page,
    requests,
    errors,
    /** What the page printed to its console (for diagnosing a failure). */
    console: consoleLines,
    async screenshot(label) {
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, `${label}.png`), fullPage: true });
    },
    async close() {
      await context.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
