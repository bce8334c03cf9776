// Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core; never a
// downloaded browser), one fresh profile per person, with screenshots as test artifacts.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const ROOT = path.resolve(import.meta.dirname, "../..");
export const ARTIFACTS = path.join(ROOT, "test-artifacts");
const CHROMIUM = process.env.KEZ_CHROMIUM_BIN ?? "/usr/bin/chromium";

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
  const requests = [];
  const errors = [];
  const consoleLines = [];
  const framesSent = [];
  const eventSends = [];
  // The moment the app hands each EVENT to its WebSocket, on the page's own clock (what its
  // rate limit governs; the network's frame times add their own jitter).
  await context.exposeBinding("kezEventSent", (_source, send) => eventSends.push(send));
  await context.addInitScript(() => {
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
      if (typeof data === "string" && data.startsWith('["EVENT"')) {
        this.kezConnection ??= crypto.randomUUID();
        window.kezEventSent({ url: this.url, connection: this.kezConnection, at: performance.timeOrigin + performance.now() });
      }
      return send.call(this, data);
    };
  });

  /** Records what a page does; every page of the profile gets this. */
  async function watch(page) {
    page.on("request", (r) => requests.push(r.url()));
    page.on("websocket", (ws) => requests.push(ws.url()));
    page.on("pageerror", (e) => errors.push(e));
    page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    // WebSocket frames as the browser sent them, timestamped by the browser (CDP).
    const cdp = await context.newCDPSession(page);
    const urls = new Map();
    cdp.on("Network.webSocketCreated", ({ requestId, url }) => urls.set(requestId, url));
    cdp.on("Network.webSocketFrameSent", ({ requestId, timestamp, response }) =>
      framesSent.push({ url: urls.get(requestId), connection: requestId, at: timestamp, data: response.payloadData.slice(0, 16), bytes: Buffer.byteLength(response.payloadData) }),
    );
    await cdp.send("Network.enable");
    return page;
  }

  const profile = {
    name,
    page: await watch(context.pages()[0] ?? (await context.newPage())),
    requests,
    errors,
    /** What the pages printed to their consoles (for diagnosing a failure). */
    console: consoleLines,
    /** Every WebSocket frame sent: { url, connection (one per WebSocket), at (seconds, browser clock), data (its first 16 characters), bytes (its UTF-8 length) }. */
    framesSent,
    /** Every EVENT the app's code sent: { url, connection (one per WebSocket), at (ms, the page's clock when it called send) }. */
    eventSends,
    /** Closes the current page (if still open) and opens a new one in the same profile (same IndexedDB). */
    async reopen() {
      if (!profile.page.isClosed()) await profile.page.close();
      profile.page = await watch(await context.newPage());
      return profile.page;
    },
    /** Opens another page (a second tab) in the same profile, beside the current one. */
    async newTab() {
      return watch(await context.newPage());
    },
    async screenshot(label) {
      mkdirSync(ARTIFACTS, { recursive: true });
      await profile.page.screenshot({ path: path.join(ARTIFACTS, `${label}.png`), fullPage: true });
    },
    async close() {
      await context.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return profile;
}

/**
 * Full-page screenshots of `profiles` into ARTIFACTS as `<prefix>-<name>.png`, best effort:
 * an after() hook that fails here must still stop its worker and relays.
 */
export async function screenshots(prefix, profiles) {
  mkdirSync(ARTIFACTS, { recursive: true });
  for (const p of profiles) {
    await p?.page.screenshot({ path: path.join(ARTIFACTS, `${prefix}-${p.name}.png`), fullPage: true }).catch((e) => console.error(`# screenshot of ${p.name}: ${e.message}`));
  }
}
