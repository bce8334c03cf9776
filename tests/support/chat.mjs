// Driving the web app's chat in headless Chromium: set up a person, save contacts, open a
// chat, send texts and files, and read what the page shows and keeps. Shared by the messaging
// and relay tests.
import { createHash, randomBytes } from "node:crypto";
import { crc32, deflateSync } from "node:zlib";
import { openProfile } from "./browser.mjs";

export const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

/** An uncompressed 24-bit BMP of random pixels: a real image of a chosen size. */
export function bmp(width, height) {
  const row = Math.ceil((width * 3) / 4) * 4;
  const header = Buffer.alloc(54);
  header.write("BM", 0);
  header.writeUInt32LE(54 + row * height, 2);
  header.writeUInt32LE(54, 10);
  header.writeUInt32LE(40, 14);
  header.writeInt32LE(width, 18);
  header.writeInt32LE(height, 22);
  header.writeUInt16LE(1, 26);
  header.writeUInt16LE(24, 28);
  header.writeUInt32LE(row * height, 34);
  return Buffer.concat([header, randomBytes(row * height)]);
}

/**
 * A PNG of `width` × `height` black 8-bit grey pixels: all zeros, so it deflates to a small
 * file however many pixels it states.
 */
export function grayPng(width, height) {
  const chunk = (type, data) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth; colour type 0 (grey), deflate, no filter, no interlace
  // Each row: filter type 0, then its pixels.
  const rows = deflateSync(Buffer.alloc((width + 1) * height), { level: 9 });
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", header), chunk("IDAT", rows), chunk("IEND", Buffer.alloc(0))]);
}

/** A new identity in a new profile (or in `p`), registered as `name` on the worker at `url`. */
export async function setUp(url, name, p = undefined) {
  p ??= await openProfile(name);
  await p.page.goto(url);
  await p.page.getByRole("button", { name: "Create a new identity" }).click();
  const primary = await p.page.getByTestId("primary").textContent();
  const input = p.page.getByLabel("Handle", { exact: true });
  await input.fill(name);
  await input.press("Enter");
  // Registered: the guided setup gives way to the chats.
  await p.page.getByTestId("me").waitFor();
  return { p, primary };
}

/**
 * Shows the "New chat" or "Settings" view through the buttons above the chat list (on a
 * narrow screen, after going back to the list when another view covers it).
 */
export async function showView(p, label) {
  const button = p.page.getByRole("button", { name: label, exact: true });
  const back = p.page.getByRole("button", { name: /^(← Chats|Back to chats)$/ });
  // Whichever the page shows once it has drawn the chats: the button, or the way back to it.
  await button.or(back).first().waitFor();
  if (!(await button.isVisible())) await back.click();
  await button.click();
  await p.page.getByRole("heading", { name: label, exact: true }).waitFor();
}

export async function saveContact(p, handle) {
  await showView(p, "New chat");
  await p.page.getByLabel("Handle, handle@domain or key").fill(handle);
  await p.page.getByRole("button", { name: "Look up" }).click();
  await p.page.getByTestId("lookup-result").getByRole("button", { name: "Save contact" }).click();
  await p.page.getByTestId("contacts").getByText(`${handle}@localhost`).waitFor();
}

export async function openChat(p, name) {
  await p.page.getByRole("button", { name: `Open chat with ${name}` }).click();
  await p.page.locator("#chat-title").getByText(name, { exact: true }).waitFor();
}

/** Opens the request from `name` (waiting for it to arrive). */
export async function openRequest(p, name, timeout = 30_000) {
  await p.page.getByRole("button", { name: `Open request from ${name}` }).click({ timeout });
  await p.page.getByTestId("request").waitFor();
}

/** Accepts the open request: the composer appears. */
export async function acceptRequest(p) {
  await p.page.getByTestId("request").getByRole("button", { name: "Accept", exact: true }).click();
  await p.page.getByTestId("request").waitFor({ state: "detached" });
  await p.page.getByLabel("Message", { exact: true }).waitFor();
}

export async function typeAndSend(p, text) {
  const input = p.page.getByLabel("Message", { exact: true });
  await input.fill(text);
  await input.press("Enter");
}

/**
 * `[naturalWidth, naturalHeight]` of an image once it decodes. A shown image may swap its
 * source (the original for its thumbnail) between being found and being decoded, and a
 * decode of the source it left fails: that is retried, for at most 10 s.
 */
export async function decodedSize(locator) {
  return afterDecode(locator, "size");
}

/** Once the image decodes (retried as `decodedSize` says): its `"size"`, or the `"time"` (ms since the epoch). */
async function afterDecode(locator, what) {
  for (let tries = 0; ; tries++) {
    try {
      return await locator.evaluate(async (img, what) => (await img.decode(), what === "size" ? [img.naturalWidth, img.naturalHeight] : Date.now()), what);
    } catch (e) {
      if (tries >= 100 || !/EncodingError|cannot be decoded/.test(String(e))) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** The chat's bubble holding `text`, or the image named `name`. */
export const bubbleWith = (p, text) => p.page.getByTestId("bubble").filter({ hasText: text });
export const imageBubble = (p, name) => p.page.getByTestId("bubble").filter({ has: p.page.getByAltText(name, { exact: true }) });
export const image = (p, name) => p.page.getByAltText(name, { exact: true });

export async function statusOf(bubble, status, timeout = 30_000) {
  await bubble.and(bubble.page().locator(`[data-status=${status}]`)).waitFor({ timeout });
}

export async function attachFile(p, file) {
  await p.page.getByTestId("file-input").setInputFiles(file);
}

/** SHA-256 of every attachment stored in the page's IndexedDB. */
export function attachmentHashes(p) {
  return p.page.evaluate(
    () =>
      new Promise((resolve, reject) => {
        const request = indexedDB.open("kez-chat");
        request.onerror = () => reject(request.error);
        request.onsuccess = () => {
          const all = request.result.transaction("attachments").objectStore("attachments").getAll();
          all.onsuccess = async () => {
            const hashes = [];
            for (const blob of all.result) {
              const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
              hashes.push([...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join(""));
            }
            request.result.close();
            resolve(hashes);
          };
        };
      }),
  );
}

/**
 * Sends an image from `from` to `to` (whose chat with the sender is open) and waits until
 * `to`'s page has decoded it. Returns seconds from the moment the sender's app had the picked
 * file (the input's change event) to the moment the recipient's page showed it (both clocks
 * are this machine's), and the decoded width.
 */
export async function sendImageAndTime(from, to, buffer, name, timeout = 120_000) {
  await from.page.getByTestId("file-input").evaluate((input) => input.addEventListener("change", () => (window.kezPickedAt = Date.now()), { once: true }));
  await attachFile(from, { name, mimeType: "image/bmp", buffer });
  const pickedAt = await from.page.evaluate(() => window.kezPickedAt);
  const received = image(to, name);
  await received.waitFor({ timeout });
  const renderedAt = await afterDecode(received, "time");
  // The bubble may show a thumbnail: the whole image is the one the lightbox opens.
  await to.page.getByRole("button", { name: `Show ${name} full size` }).click();
  const full = to.page.getByTestId("lightbox").locator("img");
  const [width] = await decodedSize(full);
  await to.page.keyboard.press("Escape");
  await full.waitFor({ state: "detached" });
  return { seconds: (renderedAt - pickedAt) / 1000, width };
}

/**
 * Sets how the sender cuts files: striped (the default) or, for the benchmark's baseline only,
 * every piece to every relay (the app's `striping` setting, store.ts).
 */
export function setStriping(p, on) {
  return p.page.evaluate(
    (on) =>
      new Promise((resolve, reject) => {
        const request = indexedDB.open("kez-chat");
        request.onerror = () => reject(request.error);
        request.onsuccess = () => {
          const tx = request.result.transaction("settings", "readwrite");
          tx.objectStore("settings").put(on, "striping");
          tx.oncomplete = () => (request.result.close(), resolve());
          tx.onerror = () => reject(tx.error);
        };
      }),
    on,
  );
}

/** Sets a profile's relay list through the Relays card and waits until every one is open. */
export async function useRelays(p, urls) {
  // In Settings, and back to the chat that was open, if one was.
  const title = p.page.locator("#chat-title");
  const chat = (await title.count()) > 0 ? (await title.textContent()).trim() : null;
  await showView(p, "Settings");
  await p.page.getByRole("button", { name: "Edit relays" }).click();
  await p.page.getByLabel("Relays, one per line").fill(urls.join("\n"));
  await p.page.getByRole("button", { name: "Save relays" }).click();
  for (const url of urls) await p.page.getByTestId("relay").filter({ hasText: url }).locator(".dot.open").waitFor({ timeout: 30_000 });
  if (chat) await openChat(p, chat);
}

/** Puts `value` under `key` in the page's IndexedDB store `storeName`, directly (as the app's own `put` would). */
export function writeStore(p, storeName, key, value) {
  return p.page.evaluate(
    ([name, key, value]) =>
      new Promise((resolve, reject) => {
        const request = indexedDB.open("kez-chat");
        request.onerror = () => reject(request.error);
        request.onsuccess = () => {
          const tx = request.result.transaction(name, "readwrite");
          tx.objectStore(name).put(value, key);
          tx.oncomplete = () => {
            request.result.close();
            resolve();
          };
          tx.onerror = () => reject(tx.error);
        };
      }),
    [storeName, key, value],
  );
}

/** What the page keeps in IndexedDB's `storeName`, read directly: `[{key, value}]` (a Blob as its type and size). */
export function readStore(p, storeName) {
  return p.page.evaluate(
    (name) =>
      new Promise((resolve, reject) => {
        const request = indexedDB.open("kez-chat");
        request.onerror = () => reject(request.error);
        request.onsuccess = () => {
          const tx = request.result.transaction(name);
          const keys = tx.objectStore(name).getAllKeys();
          const values = tx.objectStore(name).getAll();
          tx.oncomplete = () => {
            request.result.close();
            resolve(keys.result.map((key, i) => ({ key, value: values.result[i] instanceof Blob ? { type: values.result[i].type, size: values.result[i].size } : values.result[i] })));
          };
        };
      }),
    storeName,
  );
}
