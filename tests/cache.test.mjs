// Caching and read-your-writes (README, "Caching and read replicas"): the built worker in
// workerd with a local D1 and the local Cache API, through `wrangler dev`.
import assert from "node:assert/strict";
import net from "node:net";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { startWorker } from "./support/worker.mjs";
import { errorCode, freshEnvelope, getJson, identity, postRegister } from "./support/kez.mjs";
import { releaseEnvelope, rotationEnvelope } from "../scripts/lib/registration.mjs";

const SERVER = "localhost";
const POSITIVE = "public, max-age=60, stale-while-revalidate=60";
const NEGATIVE = "public, max-age=5";
const BOOKMARK = /^[0-9a-f]+(-[0-9a-f]+)+$/;

let worker;
before(async () => {
  worker = await startWorker();
});
after(async () => {
  await worker?.stop();
});

/** Runs `check` against a worker of its own, started with `args` and `options`, then stops it. */
async function withWorker(args, check, options) {
  const own = await startWorker(args, undefined, options);
  try {
    await check(own);
  } finally {
    await own.stop();
  }
}

/** Registers a fresh user; returns it with the 201's body text and bookmark. */
async function registered(target = worker) {
  const user = freshEnvelope(SERVER);
  const response = await fetch(`${target.url}/v1/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(user.envelope) });
  assert.equal(response.status, 201, await response.clone().text());
  assert.equal(response.headers.get("cache-control"), "no-store");
  return { ...user, text: await response.text(), bookmark: response.headers.get("x-kez-bookmark") };
}

const lookupPaths = (user) => [`/v1/u/${user.handle}`, `/v1/by-primary/${encodeURIComponent(user.id.primary)}`];
const webfingerPath = (user) => `/.well-known/webfinger?resource=${encodeURIComponent(`acct:${user.handle}@${SERVER}`)}`;

describe("read-your-writes", () => {
  test("a registration returns a bookmark; a lookup with it finds the user at once, 100 times in a row", async () => {
    const user = await registered();
    assert.match(user.bookmark, BOOKMARK);
    for (let i = 0; i < 100; i++) {
      const path = lookupPaths(user)[i % 2];
      const response = await fetch(worker.url + path, { headers: { "x-kez-bookmark": user.bookmark } });
      assert.equal(response.status, 200, `lookup ${i}`);
      // The bookmark path bypasses both caches and is for this client alone.
      assert.equal(response.headers.get("cache-control"), "no-store");
      assert.equal(response.headers.get("age"), null);
      assert.match(response.headers.get("x-kez-bookmark"), BOOKMARK);
      assert.equal(await response.text(), user.text, "the lookup body is the registration's");
    }
  });

  test("WebFinger takes the bookmark too", async () => {
    const user = await registered();
    const response = await fetch(worker.url + webfingerPath(user), { headers: { "x-kez-bookmark": user.bookmark } });
    assert.equal(response.status, 200);
    assert.equal((await response.json()).subject, `acct:${user.handle}@${SERVER}`);
  });

  test("a registration refused on what the primary holds carries that state's bookmark: a retry whose first answer was lost finds its handle through it", async () => {
    const user = await registered();
    const refused = [
      ["the same registration again (its first answer lost)", user.envelope, /^(handle_taken|key_already_registered)$/],
      ["the same key, another handle", freshEnvelope(SERVER, { id: user.id }).envelope, /^key_already_registered$/],
      ["the same handle, another key", freshEnvelope(SERVER, { handle: user.handle }).envelope, /^handle_taken$/],
    ];
    for (const [name, envelope, code] of refused) {
      const response = await postRegister(worker.url, envelope);
      assert.equal(response.status, 409, name);
      assert.match(errorCode(response), code, name);
      const bookmark = response.headers.get("x-kez-bookmark");
      assert.match(bookmark ?? "", BOOKMARK, name);
      // At least as new as the registration it lost to (bookmarks are fixed-width hex groups).
      assert.ok(bookmark >= user.bookmark, `${name}: ${bookmark} is older than ${user.bookmark}`);
      const through = await fetch(`${worker.url}/v1/by-primary/${encodeURIComponent(user.id.primary)}`, { headers: { "x-kez-bookmark": bookmark } });
      assert.equal(through.status, 200, name);
      assert.equal(await through.text(), user.text, name);
    }
  });

  test("a handle looked up before it was registered is found right after, without a bookmark (no negative answer is kept on the server)", async () => {
    const user = freshEnvelope(SERVER);
    const before = await getJson(`${worker.url}/v1/u/${user.handle}`);
    assert.equal(errorCode(before), "user_not_found");
    assert.equal(before.headers.get("cache-control"), NEGATIVE);
    assert.equal((await postRegister(worker.url, user.envelope)).status, 201);
    const after = await getJson(`${worker.url}/v1/u/${user.handle}`);
    assert.equal(after.status, 200);
    assert.equal(after.body.primary, user.id.primary);
  });

  test("through a bookmark, a handle or key nobody holds is user_not_found as without one, but no-store and with the session's bookmark", async () => {
    const user = await registered();
    const stranger = freshEnvelope(SERVER);
    const headersBut = (response, ...names) => [...response.headers].filter(([name]) => !["date", ...names].includes(name));
    for (const path of [...lookupPaths(stranger), webfingerPath(stranger)]) {
      const through = await getJson(worker.url + path, { headers: { "x-kez-bookmark": user.bookmark } });
      const plain = await getJson(worker.url + path);
      assert.equal(through.status, 404, path);
      assert.equal(errorCode(through), "user_not_found", path);
      assert.deepEqual(through.body, plain.body, path);
      assert.equal(plain.headers.get("cache-control"), NEGATIVE, path);
      // A client's own fresh view is never kept, as for a found user read through a bookmark.
      assert.equal(through.headers.get("cache-control"), "no-store", path);
      assert.match(through.headers.get("x-kez-bookmark"), BOOKMARK, path);
      assert.deepEqual(headersBut(through, "cache-control", "x-kez-bookmark"), headersBut(plain, "cache-control"), path);
    }
  });

  test("through the release's bookmark, a released handle is 410 at once, no-store and with the session's bookmark", async () => {
    const user = await registered();
    const release = await fetch(`${worker.url}/v1/release`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(releaseEnvelope(user.id, { handle: user.handle, server: SERVER })) });
    assert.equal(release.status, 201);
    const bookmark = release.headers.get("x-kez-bookmark");
    assert.match(bookmark, BOOKMARK);
    for (const path of lookupPaths(user)) {
      const through = await getJson(worker.url + path, { headers: { "x-kez-bookmark": bookmark } });
      assert.equal(through.status, 410, path);
      assert.equal(through.body.error, "handle_released", path);
      assert.equal(through.headers.get("cache-control"), "no-store", path);
      assert.match(through.headers.get("x-kez-bookmark"), BOOKMARK, path);
      const plain = await getJson(worker.url + path);
      assert.equal(plain.status, 410, path);
      assert.equal(plain.headers.get("cache-control"), NEGATIVE, path);
      assert.equal(plain.headers.get("x-kez-bookmark"), null, path);
      assert.deepEqual(through.body, plain.body, path);
    }
  });

  test("a bookmark that is not one is refused with invalid_bookmark, and nothing is looked up", async () => {
    const user = await registered();
    for (const bad of ["first-primary", "x", "00000000-00000001-00000000-0000000000000000000000000000000G", "0".repeat(200)]) {
      const response = await getJson(`${worker.url}/v1/u/${user.handle}`, { headers: { "x-kez-bookmark": bad } });
      assert.equal(response.status, 400, bad);
      assert.equal(errorCode(response), "invalid_bookmark");
      assert.equal(response.headers.get("cache-control"), "no-store");
      assert.equal(response.headers.get("access-control-allow-origin"), "*");
    }
  });
});

describe("HTTP caching", () => {
  test("Cache-Control, Vary and CORS headers of each endpoint", async () => {
    const user = await registered();
    const expect = [
      [`/v1/u/${user.handle}`, 200, POSITIVE, "x-kez-bookmark"],
      [`/v1/by-primary/${encodeURIComponent(user.id.primary)}`, 200, POSITIVE, "x-kez-bookmark"],
      [webfingerPath(user), 200, POSITIVE, "x-kez-bookmark"],
      ["/v1/u/nobody-here", 404, NEGATIVE, "x-kez-bookmark"],
      [`/v1/by-primary/ed25519%3A${"ab".repeat(32)}`, 404, NEGATIVE, "x-kez-bookmark"],
      [`/.well-known/webfinger?resource=acct:nobody-here@${SERVER}`, 404, NEGATIVE, "x-kez-bookmark"],
      ["/v1/u/A!", 400, "no-store", "x-kez-bookmark"],
      ["/v1/by-primary/ed25519:zz", 400, "no-store", "x-kez-bookmark"],
      ["/.well-known/webfinger", 400, "no-store", "x-kez-bookmark"],
      ["/v1/healthz", 200, "no-store", null],
      ["/v1/nothing", 404, "no-store", null],
      ["/v1/register", 405, "no-store", null],
    ];
    for (const [path, status, cacheControl, vary] of expect) {
      const response = await fetch(worker.url + path);
      await response.arrayBuffer();
      assert.equal(response.status, status, path);
      assert.equal(response.headers.get("cache-control"), cacheControl, path);
      assert.equal(response.headers.get("vary"), vary, path);
      if (status === 200 && path !== "/v1/healthz") {
        assert.match(response.headers.get("etag"), /^"[0-9a-f]{32}"$/, `${path}: a strong ETag`);
        assert.equal(response.headers.get("access-control-expose-headers"), "etag, x-kez-bookmark");
      } else {
        assert.equal(response.headers.get("etag"), null, `${path}: only a found user has an ETag`);
      }
    }
    // Writes are never cached.
    const conflict = await postRegister(worker.url, freshEnvelope(SERVER, { handle: user.handle }).envelope);
    assert.equal(errorCode(conflict), "handle_taken");
    assert.equal(conflict.headers.get("cache-control"), "no-store");
  });

  test("If-None-Match gets a body-less 304 with the same validators; another tag gets the body", async () => {
    const user = await registered();
    for (const path of [...lookupPaths(user), webfingerPath(user)]) {
      const first = await fetch(worker.url + path);
      const body = await first.text();
      const tag = first.headers.get("etag");
      for (const ifNoneMatch of [tag, `W/${tag}`, `"other", ${tag}`, "*"]) {
        const again = await fetch(worker.url + path, { headers: { "if-none-match": ifNoneMatch } });
        assert.equal(again.status, 304, `${path} ${ifNoneMatch}`);
        assert.equal(await again.text(), "");
        assert.equal(again.headers.get("etag"), tag);
        assert.equal(again.headers.get("cache-control"), POSITIVE);
        assert.equal(again.headers.get("vary"), "x-kez-bookmark");
      }
      const other = await fetch(worker.url + path, { headers: { "if-none-match": '"0123456789abcdef0123456789abcdef"' } });
      assert.equal(other.status, 200);
      assert.equal(await other.text(), body);
      assert.equal(other.headers.get("etag"), tag);
    }
    // The user body and the JRD are different bodies with different tags.
    const tags = await Promise.all([lookupPaths(user)[0], webfingerPath(user)].map(async (p) => (await fetch(worker.url + p)).headers.get("etag")));
    assert.notEqual(tags[0], tags[1]);
    // A 404 has no tag, so If-None-Match: * does not turn it into a 304.
    const missing = await fetch(`${worker.url}/v1/u/nobody-here`, { headers: { "if-none-match": "*" } });
    assert.equal(missing.status, 404);
  });

  test("a cached answer is byte-identical to the uncached one, stored envelope included, and is served without D1", async () => {
    const user = await registered();
    const [row] = worker.query("SELECT envelope FROM registrations WHERE handle = ?", user.handle);
    for (const path of lookupPaths(user)) {
      const fresh = await fetch(worker.url + path);
      const freshText = await fresh.text();
      assert.ok(freshText.endsWith(`,"envelope":${row.envelope}}`), "the stored envelope, byte for byte");
      assert.equal(freshText, user.text);
      const cached = await fetch(worker.url + path);
      assert.notEqual(cached.headers.get("age"), null, "served from the cache");
      assert.ok(Number(cached.headers.get("age")) < 60);
      assert.equal(await cached.text(), freshText);
      assert.equal(cached.headers.get("etag"), fresh.headers.get("etag"));
    }
    // Behind the worker's back, the row changes: the cached answer stays until its TTL (it
    // is not read from D1), while the bookmark path reads D1 and sees the change.
    worker.tamper("UPDATE registrations SET registered_at = '2001-01-01T00:00:00Z' WHERE handle = ?", user.handle);
    const cached = await getJson(`${worker.url}/v1/u/${user.handle}`);
    assert.notEqual(cached.body.registered_at, "2001-01-01T00:00:00Z");
    const bypass = await getJson(`${worker.url}/v1/u/${user.handle}`, { headers: { "x-kez-bookmark": user.bookmark } });
    assert.equal(bypass.body.registered_at, "2001-01-01T00:00:00Z");
  });

  test("the edge cache alone (isolate cache off) serves the same bytes", async () => {
    await withWorker(["--var", "LOOKUP_CACHE_ENTRIES:0"], async (edgeOnly) => {
      const user = await registered(edgeOnly);
      for (const path of lookupPaths(user)) {
        const fresh = await fetch(edgeOnly.url + path);
        const freshText = await fresh.text();
        assert.equal(fresh.headers.get("age"), null);
        // The edge cache is written after the response is sent: wait until it answers.
        let cached;
        for (let i = 0; i < 100; i++) {
          cached = await fetch(edgeOnly.url + path);
          if (cached.headers.get("age") !== null) break;
          await cached.arrayBuffer();
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.notEqual(cached.headers.get("age"), null, `${path} came from the edge cache`);
        assert.equal(await cached.text(), freshText);
        assert.equal(cached.headers.get("etag"), fresh.headers.get("etag"));
        assert.equal(cached.headers.get("cache-control"), POSITIVE);
      }
      edgeOnly.tamper("UPDATE registrations SET registered_at = '2001-01-01T00:00:00Z' WHERE handle = ?", user.handle);
      assert.notEqual((await getJson(`${edgeOnly.url}/v1/u/${user.handle}`)).body.registered_at, "2001-01-01T00:00:00Z", "not read from D1");
    });
  });

  test("nothing is served past the TTL, counted from the D1 read", async () => {
    await withWorker(["--var", "LOOKUP_CACHE_SECONDS:2"], async (short) => {
      const user = await registered(short);
      const first = await fetch(`${short.url}/v1/u/${user.handle}`);
      await first.arrayBuffer();
      assert.equal(first.headers.get("cache-control"), "public, max-age=2, stale-while-revalidate=2");
      short.tamper("UPDATE registrations SET registered_at = '2001-01-01T00:00:00Z' WHERE handle = ?", user.handle);
      // Until the change shows, every answer is a cached one younger than the TTL.
      for (;;) {
        const response = await getJson(`${short.url}/v1/u/${user.handle}`);
        if (response.body.registered_at === "2001-01-01T00:00:00Z") break;
        assert.ok(Number(response.headers.get("age")) < 2, `age ${response.headers.get("age")}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    });
  });

  test("caching off (LOOKUP_CACHE_SECONDS=0): every answer is read from D1, and clients revalidate", async () => {
    await withWorker(["--var", "LOOKUP_CACHE_SECONDS:0"], async (off) => {
      const user = await registered(off);
      const first = await fetch(`${off.url}/v1/u/${user.handle}`);
      await first.arrayBuffer();
      assert.equal(first.headers.get("cache-control"), "no-cache");
      // An answer made for one request has every header a kept one has.
      assert.match(first.headers.get("etag"), /^"[0-9a-f]{32}"$/);
      assert.equal(first.headers.get("vary"), "x-kez-bookmark");
      assert.equal(first.headers.get("content-type"), "application/json");
      assert.equal(first.headers.get("access-control-allow-origin"), "*");
      assert.equal(first.headers.get("access-control-expose-headers"), "etag, x-kez-bookmark");
      off.tamper("UPDATE registrations SET registered_at = '2001-01-01T00:00:00Z' WHERE handle = ?", user.handle);
      const second = await getJson(`${off.url}/v1/u/${user.handle}`);
      assert.equal(second.body.registered_at, "2001-01-01T00:00:00Z");
      assert.equal(second.headers.get("age"), null);
      const missing = await fetch(`${off.url}/v1/u/nobody-here`);
      assert.equal(missing.headers.get("cache-control"), "no-cache");
    });
  });

  test("a bad cache setting is a logged 500 for every request, never a silent default", async () => {
    await withWorker(["--var", "LOOKUP_CACHE_SECONDS:forever"], async (broken) => {
      for (const path of ["/v1/healthz", "/v1/u/alice"]) {
        const response = await getJson(broken.url + path);
        assert.equal(response.status, 500, path);
        assert.equal(errorCode(response), "internal_error");
        assert.equal(response.headers.get("cache-control"), "no-store");
      }
      // The log line reaches wrangler's output after the response: wait for it.
      for (let i = 0; i < 300 && !/LOOKUP_CACHE_SECONDS: "forever"/.test(broken.log()); i++) await new Promise((r) => setTimeout(r, 100));
      assert.match(broken.log(), /LOOKUP_CACHE_SECONDS: "forever"/);
    });
  });
});

/** Looks `path` up until an answer comes from a cache (it has an `Age`); returns its body. */
async function cachedAnswer(target, path) {
  for (let i = 0; i < 100; i++) {
    const response = await getJson(target.url + path);
    assert.equal(response.status, 200, path);
    if (response.headers.get("age") !== null) return response.body;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${path} never came from a cache`);
}

const statement = (target, path, body) =>
  getJson(`${target.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

describe("a statement's own isolate and data centre forget what it changed", () => {
  // The edge cache alone, then both layers: the edge must not give back what the isolate forgot.
  for (const [layers, args] of [["the edge cache alone", ["--var", "LOOKUP_CACHE_ENTRIES:0"]], ["both layers", []]]) {
    test(`${layers}: after a rotation, then a release, lookups here answer the new state at once`, async () => {
      await withWorker(args, async (own) => {
        const user = await registered(own);
        const [byHandle, byOldKey] = lookupPaths(user);
        for (const path of [byHandle, byOldKey]) assert.equal((await cachedAnswer(own, path)).primary, user.id.primary);
        const next = identity();
        assert.equal((await statement(own, "/v1/rotate", rotationEnvelope(user.id, next, { handle: user.handle, server: SERVER }))).status, 201);
        const rotated = await getJson(own.url + byHandle);
        assert.equal(rotated.status, 200);
        assert.equal(rotated.body.primary, next.primary, "the new key, not a cached answer");
        assert.equal(rotated.headers.get("age"), null);
        assert.equal(errorCode(await getJson(own.url + byOldKey)), "user_not_found");
        assert.equal((await cachedAnswer(own, byHandle)).primary, next.primary);
        assert.equal((await statement(own, "/v1/release", releaseEnvelope(next, { handle: user.handle, server: SERVER }))).status, 201);
        for (const path of [byHandle, `/v1/by-primary/${encodeURIComponent(next.primary)}`]) {
          const gone = await getJson(own.url + path);
          assert.equal(gone.status, 410, path);
          assert.equal(gone.body.error, "handle_released", path);
        }
      });
    });
  }
});

describe("clients that hang up", () => {
  test("200 lookups whose clients hang up mid-request leave every later lookup answered as before, and nothing panics", async () => {
    const user = await registered();
    const missing = `gone${Date.now().toString(36)}`;
    const { port } = new URL(worker.url);
    const heads = [
      `GET /v1/u/${user.handle} HTTP/1.1`,
      `GET /v1/u/${missing} HTTP/1.1`,
      `GET ${webfingerPath(user)} HTTP/1.1`,
      `GET /v1/u/${user.handle} HTTP/1.1\r\nx-kez-bookmark: ${user.bookmark}`,
    ];
    for (let i = 0; i < 200; i++) {
      const socket = net.connect(Number(port), "127.0.0.1");
      await new Promise((resolve, reject) => {
        socket.once("error", reject);
        socket.write(`${heads[i % heads.length]}\r\nHost: 127.0.0.1\r\n\r\n`, () => resolve());
      });
      socket.destroy();
    }
    const [body, notFound] = [await fetch(`${worker.url}/v1/u/${user.handle}`), await fetch(`${worker.url}/v1/u/${missing}`)];
    assert.equal(body.status, 200);
    assert.equal(JSON.parse(await body.text()).primary, user.id.primary);
    assert.equal(notFound.status, 404);
    assert.equal(errorCode({ body: await notFound.json(), headers: notFound.headers }), "user_not_found");
    for (let i = 0; i < 20; i++) {
      const through = await fetch(`${worker.url}/v1/u/${user.handle}`, { headers: { "x-kez-bookmark": user.bookmark } });
      assert.equal(through.status, 200);
      assert.equal((await through.json()).primary, user.id.primary);
    }
    assert.doesNotMatch(worker.log(), /panicked at|Reinitializing Wasm/);
  });
});

describe("errors are never cached as successes", () => {
  test("a lookup that failed in storage (503) is answered from D1 once storage is back", async () => {
    await withWorker([], async (down) => {
      const user = freshEnvelope(SERVER);
      for (let i = 0; i < 3; i++) {
        const failed = await getJson(`${down.url}/v1/u/${user.handle}`);
        assert.equal(errorCode(failed), "storage_unavailable");
        assert.equal(failed.headers.get("cache-control"), "no-store");
        assert.equal(failed.headers.get("etag"), null);
      }
      // Storage comes back (the schema, as the migrations make it), with the user in it.
      for (const file of readdirSync("migrations").sort()) down.tamperScript(readFileSync(path.join("migrations", file), "utf8"));
      down.tamper("INSERT INTO registrations (handle, primary_key, registered_at, envelope, skeleton) VALUES (?, ?, '2026-12-02T00:00:00Z', ?, ?)", user.handle, user.id.primary, JSON.stringify(user.envelope), user.handle);
      const back = await getJson(`${down.url}/v1/u/${user.handle}`);
      assert.equal(back.status, 200);
      assert.equal(back.body.handle, user.handle);
      assert.equal(back.headers.get("age"), null, "read from D1, not from a cache");
    }, { migrate: false });
  });
});
