// The messenger's screens as people use them: the chat-first layout at 1280 px and 360 px,
// unread counts and the tab title, notifications, pasted and dropped images, the lightbox and
// thumbnails, the whole way from a fresh profile to a sent image by keyboard alone, and an
// axe-core check of every main view. The worker in workerd, a local nostr relay, headless
// Chromium profiles; screenshots go to test-artifacts/.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { after, before, describe, test } from "node:test";
import { openProfile } from "./support/browser.mjs";
import { bmp, bubbleWith, decodedSize, grayPng, openChat, saveContact, setUp, showView, statusOf, typeAndSend } from "./support/chat.mjs";
import { freshEnvelope, postRegister } from "./support/kez.mjs";
import { startRelay } from "./support/relay.mjs";
import { startWorker } from "./support/worker.mjs";

const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const WIDE = { width: 1280, height: 800 };
const NARROW = { width: 360, height: 740 };

let relay;
let worker;
/** alice at 1280 px, bob at 360 px. */
let alice;
let bob;
const profiles = [];
const keys = {};

/** A small PNG, made by the page's own canvas (a real image any browser decodes). */
async function png(p, color, size = 64) {
  const base64 = await p.page.evaluate(
    async ({ color, size }) => {
      const canvas = new OffscreenCanvas(size, size);
      const context = canvas.getContext("2d");
      context.fillStyle = color;
      context.fillRect(0, 0, size, size);
      const bytes = new Uint8Array(await (await canvas.convertToBlob({ type: "image/png" })).arrayBuffer());
      return btoa(String.fromCharCode(...bytes));
    },
    { color, size },
  );
  return Buffer.from(base64, "base64");
}

/**
 * Hands `files` to the page as the browser does for a paste (a ClipboardEvent on the
 * composer) or a drop (dragenter, dragover, drop on the conversation), with a DataTransfer
 * holding real File objects.
 */
async function transfer(p, kind, files) {
  await p.page.evaluate(
    ({ kind, files }) => {
      const data = new DataTransfer();
      for (const f of files) data.items.add(new File([Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0))], f.name, { type: f.type }));
      if (kind === "paste") {
        document.getElementById("message-input").dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
        return;
      }
      const target = document.querySelector(".bubbles");
      for (const type of ["dragenter", "dragover", "drop"]) target.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
    },
    { kind, files: files.map((f) => ({ ...f, base64: f.bytes.toString("base64") })) },
  );
}

/** axe-core's serious and critical findings on the page as it is now (evaluated through the DevTools protocol, which the app's CSP does not govern). */
async function seriousViolations(p) {
  if (!(await p.page.evaluate(() => "axe" in window))) await p.page.evaluate(AXE);
  const violations = await p.page.evaluate(async () => (await window.axe.run(document, { resultTypes: ["violations"] })).violations);
  return violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

/** The page's `document.title`, once it equals `title`. */
async function titleBecomes(p, title) {
  await p.page.waitForFunction((t) => document.title === t, title);
}

before(async () => {
  relay = await startRelay();
  worker = await startWorker(["--var", `NOSTR_RELAYS:${relay.url}`]);
  alice = await openProfile("ui-alice", { viewport: WIDE });
  bob = await openProfile("ui-bob", { viewport: NARROW });
  profiles.push(alice, bob);
  for (const [p, name] of [
    [alice, "alice"],
    [bob, "bob"],
  ]) {
    keys[name] = (await setUp(worker.url, name, p)).primary;
  }
  // carol has a handle and no browser: alice keeps a chat with her open while bob writes.
  assert.equal((await postRegister(worker.url, freshEnvelope("localhost", { handle: "carol" }).envelope)).status, 201);
  await saveContact(alice, "bob");
  await saveContact(alice, "carol");
  await saveContact(bob, "alice");
});

after(async () => {
  for (const p of profiles) await p.close();
  await worker?.stop();
  await relay?.close();
});

describe("the messenger's screens, in headless Chromium", () => {
  test("1280 px: the chat list on the left, the open conversation on the right, the composer at its bottom", async () => {
    await openChat(alice, "bob@localhost");
    const list = await alice.page.getByTestId("chats").boundingBox();
    const chat = await alice.page.locator(".chat").boundingBox();
    const composer = await alice.page.getByLabel("Message", { exact: true }).boundingBox();
    assert.ok(list && chat && composer, "all three are shown");
    assert.ok(list.x + list.width <= chat.x, `the list (${list.x}+${list.width}) is left of the chat (${chat.x})`);
    assert.ok(composer.y + composer.height > WIDE.height - 80, `the composer (${composer.y}) is at the bottom`);
    assert.equal(await alice.page.evaluate(() => document.documentElement.scrollWidth), WIDE.width);
    await typeAndSend(alice, "Hello from the wide screen");
    await statusOf(bubbleWith(alice, "Hello from the wide screen"), "delivered");
    await alice.screenshot("ui-1-wide-1280px");
  });

  test("360 px: the list, then the conversation as its own view, and back", async () => {
    const { page } = bob;
    await page.getByRole("button", { name: /^← Chats|Back to chats$/ }).click();
    await page.getByTestId("chats").waitFor();
    assert.equal(await page.locator(".chat").count(), 0);
    await page.getByTestId("unread").filter({ hasText: "1" }).waitFor();
    await bob.screenshot("ui-2-narrow-360px-list");
    await openChat(bob, "alice@localhost");
    await bubbleWith(bob, "Hello from the wide screen").waitFor();
    assert.equal(await page.getByTestId("chats").isVisible(), false, "the list gives way to the chat");
    assert.ok((await page.evaluate(() => document.documentElement.scrollWidth)) <= NARROW.width);
    await bob.screenshot("ui-3-narrow-360px-chat");
    await page.getByRole("button", { name: "Back to chats" }).click();
    await page.getByTestId("chats").waitFor();
    assert.equal(await page.getByTestId("unread").count(), 0, "read once opened");
  });

  test("a message in another chat: its row counts it, the title says it, and opening it clears both", async () => {
    await openChat(alice, "carol@localhost");
    await titleBecomes(alice, "kez-chat");
    await openChat(bob, "alice@localhost");
    await typeAndSend(bob, "one");
    await typeAndSend(bob, "two");
    const bobRow = alice.page.getByTestId("chats").getByRole("button", { name: /Open chat with bob@localhost/ });
    await bobRow.getByTestId("unread").filter({ hasText: "2" }).waitFor();
    await titleBecomes(alice, "(2) kez-chat");
    assert.equal(await bobRow.getByTestId("preview").textContent(), "two");
    await openChat(alice, "bob@localhost");
    await alice.page.getByTestId("new-marker").waitFor();
    await titleBecomes(alice, "kez-chat");
    assert.equal(await bobRow.getByTestId("unread").count(), 0);
  });

  test("notifications: off until turned on; then one for a message while the tab is hidden, with the name and no text", async () => {
    const { page } = alice;
    await page.context().grantPermissions(["notifications"], { origin: new URL(worker.url).origin });
    // Every notification the page creates is recorded (and still shown: the browser's own constructor runs).
    await page.evaluate(() => {
      const Real = window.Notification;
      window.kezNotifications = [];
      window.Notification = class extends Real {
        constructor(title, options) {
          super(title, options);
          window.kezNotifications.push({ title, body: options?.body });
        }
      };
    });
    await openChat(alice, "carol@localhost");
    // Headless Chromium shows every tab: the page is told it is hidden, as a browser tells it.
    const hide = () =>
      page.evaluate(() => {
        Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
        document.dispatchEvent(new Event("visibilitychange"));
      });
    await hide();
    await typeAndSend(bob, "while notifications are off");
    await alice.page.getByTestId("chats").getByRole("button", { name: /Open chat with bob@localhost ?, 1 unread/ }).waitFor();
    assert.deepEqual(await page.evaluate(() => window.kezNotifications), []);

    await page.evaluate(() => delete document.visibilityState);
    await showView(alice, "Settings");
    await page.getByLabel('On: the sender\'s name and "New message"').check();
    await openChat(alice, "carol@localhost");
    await hide();
    await typeAndSend(bob, "secret text");
    await page.waitForFunction(() => window.kezNotifications.length > 0);
    assert.deepEqual(await page.evaluate(() => window.kezNotifications), [{ title: "bob@localhost", body: "New message" }]);
    await page.evaluate(() => delete document.visibilityState);
  });

  test("an image pasted into the composer and one dropped on the conversation are sent and arrive", async () => {
    await openChat(alice, "bob@localhost");
    await transfer(alice, "paste", [{ name: "pasted.png", type: "image/png", bytes: await png(alice, "#c33") }]);
    await transfer(alice, "drop", [{ name: "dropped.png", type: "image/png", bytes: await png(alice, "#3c3") }]);
    for (const name of ["pasted.png", "dropped.png"]) {
      await alice.page.getByAltText(name, { exact: true }).waitFor();
      await bob.page.getByAltText(name, { exact: true }).waitFor({ timeout: 60_000 });
    }
    // What arrived decodes as an image.
    assert.equal((await decodedSize(bob.page.getByAltText("dropped.png", { exact: true })))[0], 64);
  });

  test("a 5 MB image shows as a thumbnail; the lightbox opens and closes with the keyboard", async () => {
    const big = bmp(1600, 1100); // 5.3 MB of pixels
    assert.ok(big.length > 5_000_000);
    await alice.page.getByTestId("file-input").setInputFiles({ name: "big.bmp", mimeType: "image/bmp", buffer: big });
    const img = alice.page.getByAltText("big.bmp", { exact: true });
    await alice.page.locator('img[alt="big.bmp"][data-thumbnail="yes"]').waitFor();
    const natural = await decodedSize(img);
    assert.deepEqual(natural, [640, 440], "a 640 px thumbnail, made in the browser");
    await alice.page.getByRole("button", { name: "Show big.bmp full size" }).focus();
    await alice.page.keyboard.press("Enter");
    const lightbox = alice.page.getByTestId("lightbox");
    await lightbox.locator("img").waitFor();
    assert.deepEqual(await decodedSize(lightbox.locator("img")), [1600, 1100]);
    await alice.screenshot("ui-4-lightbox");
    await alice.page.keyboard.press("Escape");
    await lightbox.locator("img").waitFor({ state: "detached" });
    assert.equal(await alice.page.evaluate(() => document.activeElement?.getAttribute("aria-label")), "Show big.bmp full size", "focus goes back to the image");
    assert.equal(await alice.page.locator(".chat").count(), 1, "that Escape closed the image, not the chat");
    await statusOf(alice.page.getByTestId("bubble").filter({ has: img }), "delivered", 120_000);
  });

  test("an image whose header states 100 megapixels (a 0.1 MB PNG) is offered as a file, never decoded or shown", async () => {
    const huge = grayPng(10_000, 10_000);
    assert.ok(huge.length < 200_000, "a small file for a huge image");
    await alice.page.getByTestId("file-input").setInputFiles({ name: "huge.png", mimeType: "image/png", buffer: huge });
    for (const p of [alice, bob]) {
      const bubble = p.page.getByTestId("bubble").filter({ has: p.page.getByTestId("download").filter({ hasText: "huge.png" }) });
      await bubble.waitFor({ timeout: 60_000 });
      assert.equal(await bubble.getByTestId("not-previewed").textContent(), "Not shown: at 10000 × 10000 pixels it is larger than this app decodes.");
      assert.equal(await p.page.locator('img[alt="huge.png"]').count(), 0, "no <img> holds it");
    }
    // A small PNG sent next is shown as ever: the check reads real headers.
    await alice.page.getByTestId("file-input").setInputFiles({ name: "after.png", mimeType: "image/png", buffer: await png(alice, "#33c") });
    await bob.page.getByAltText("after.png", { exact: true }).waitFor({ timeout: 60_000 });
    // The chat list always names the file (its type is only claimed): an image the chat shows
    // inline is a 📷, anything else (an SVG) a 📎, and a non-image claimed as PNG keeps its name.
    const bobRow = alice.page.getByTestId("chats").getByRole("button", { name: /Open chat with bob@localhost/ });
    await bobRow.getByTestId("preview").filter({ hasText: "You: 📷 after.png" }).waitFor();
    await alice.page.getByTestId("file-input").setInputFiles({ name: "payroll.exe", mimeType: "image/png", buffer: Buffer.from("MZ not an image") });
    await bobRow.getByTestId("preview").filter({ hasText: "You: 📷 payroll.exe" }).waitFor();
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>');
    await alice.page.getByTestId("file-input").setInputFiles({ name: "drawing.svg", mimeType: "image/svg+xml", buffer: svg });
    await bobRow.getByTestId("preview").filter({ hasText: "You: 📎 drawing.svg" }).waitFor();
  });

  test("emoji: the picker inserts one, and :shortcode: completes", async () => {
    const { page } = alice;
    const input = page.getByLabel("Message", { exact: true });
    await page.getByRole("button", { name: "Emoji", exact: true }).click();
    await page.getByLabel("Search emoji").fill("tada");
    // The emoji data arrives with the picker: Enter takes the first result once there is one.
    await page.getByTestId("emoji-picker").getByRole("button", { name: "tada", exact: true }).waitFor();
    await page.getByLabel("Search emoji").press("Enter");
    await page.getByRole("button", { name: "Emoji", exact: true }).click();
    await input.press("End");
    await input.pressSequentially(" :thumbsu");
    await page.getByRole("option").first().waitFor();
    await input.press("Enter");
    assert.equal(await input.inputValue(), "🎉 👍");
    await input.press("Enter");
    await bubbleWith(bob, "🎉 👍").waitFor();
  });

  test("a web address is a link, opened only when clicked and never fetched; deep links open a chat or look a handle up", async () => {
    await typeAndSend(alice, "see https://example.invalid/page, then reply");
    const link = bob.page.getByRole("link", { name: "https://example.invalid/page" });
    await link.waitFor();
    assert.equal(await link.getAttribute("rel"), "noopener noreferrer nofollow");
    assert.equal(await link.getAttribute("target"), "_blank");
    assert.deepEqual(bob.requests.filter((u) => u.includes("example.invalid")), [], "no preview was fetched");

    await bob.page.goto(`${worker.url}/chat/${keys.alice}`);
    await bob.page.locator("#chat-title").getByText("alice@localhost", { exact: true }).waitFor();
    await bubbleWith(bob, "then reply").waitFor();
    await bob.page.goto(`${worker.url}/chat/carol`);
    await bob.page.getByTestId("lookup-result").getByText("carol@localhost").waitFor();
    await bob.page.goBack();
    await bob.page.locator("#chat-title").getByText("alice@localhost", { exact: true }).waitFor();
  });

  test("from a fresh profile to a sent image, by keyboard alone", async () => {
    const kbd = await openProfile("ui-keyboard", { viewport: WIDE });
    profiles.push(kbd);
    const { page } = kbd;
    const focused = () => page.evaluate(() => document.activeElement?.getAttribute("aria-label") || document.activeElement?.id || document.activeElement?.textContent?.trim());
    /** Tabs until the focused element is `what` (its label, id or text). */
    async function tabTo(what) {
      for (let i = 0; i < 40 && (await focused()) !== what; i++) await page.keyboard.press("Tab");
      assert.equal(await focused(), what);
    }
    // The file chooser the paperclip opens is answered here (listening from the start: the
    // browser must be told to hand choosers over before one opens).
    const picture = await png(alice, "#33c");
    page.on("filechooser", (chooser) => void chooser.setFiles({ name: "keyboard.png", mimeType: "image/png", buffer: picture }));
    await page.goto(worker.url);
    await page.getByRole("button", { name: "Create a new identity" }).waitFor();
    await tabTo("Create a new identity");
    await page.keyboard.press("Enter");
    await tabTo("handle-input");
    await page.keyboard.type("keys");
    await page.keyboard.press("Enter");
    await page.getByTestId("me").waitFor();
    await tabTo("New chat");
    await page.keyboard.press("Enter");
    await tabTo("lookup-input");
    await page.keyboard.type("alice");
    await page.keyboard.press("Enter");
    await tabTo("Save contact");
    await page.keyboard.press("Enter");
    await tabTo("Message");
    await page.keyboard.press("Enter");
    await page.locator("#chat-title").getByText("alice@localhost").waitFor();
    assert.equal(await focused(), "message-input", "the composer has the focus");
    await page.keyboard.type("typed, not clicked");
    await page.keyboard.press("Enter");
    await statusOf(bubbleWith(kbd, "typed, not clicked"), "sent");
    await tabTo("Attach an image or file");
    await page.keyboard.press("Enter");
    await statusOf(kbd.page.getByTestId("bubble").filter({ has: page.getByAltText("keyboard.png", { exact: true }) }), "sent");
    // Escape closes the chat, back to the list.
    await page.keyboard.press("Escape");
    await page.locator(".chat").waitFor({ state: "detached" });
    await page.getByText("Choose a chat, or start a new one").waitFor();
    assert.deepEqual(kbd.errors, []);
  });

  test("axe-core finds nothing serious or critical on the main views", async () => {
    const fresh = await openProfile("ui-axe", { viewport: WIDE });
    profiles.push(fresh);
    await fresh.page.goto(worker.url);
    await fresh.page.getByRole("button", { name: "Create a new identity" }).waitFor();
    const found = { setup: await seriousViolations(fresh) };
    await openChat(alice, "bob@localhost");
    found.chat = await seriousViolations(alice);
    await showView(alice, "New chat");
    found.newChat = await seriousViolations(alice);
    await showView(alice, "Settings");
    found.settings = await seriousViolations(alice);
    found.narrowChat = await seriousViolations(bob);
    await bob.page.getByRole("button", { name: "Back to chats" }).click();
    found.narrowList = await seriousViolations(bob);
    for (const scheme of ["dark", "light"]) {
      await alice.page.emulateMedia({ colorScheme: scheme });
      await openChat(alice, "bob@localhost");
      found[`chat-${scheme}`] = await seriousViolations(alice);
    }
    await alice.screenshot("ui-5-wide-dark-then-light");
    assert.deepEqual(found, { setup: [], chat: [], newChat: [], settings: [], narrowChat: [], narrowList: [], "chat-dark": [], "chat-light": [] });
  });

  test("no page error", () => {
    for (const p of profiles) assert.deepEqual(p.errors, [], `${p.name}: page errors`);
  });
});
