// The worker's few runtime calls that are made in one step from JS rather than call by call
// from wasm. Header values arrive as JS strings the worker keeps per isolate (or per cached
// answer), so no header costs a conversion or a call of its own; `undefined` leaves one out.

/** What every public read endpoint answers for CORS. */
const CORS_HEADERS = { "access-control-allow-origin": "*", "access-control-expose-headers": "etag, x-kez-bookmark" };

/**
 * Headers that hold only per-isolate values (no ETag, Age or extra header: a lookup's 404,
 * a healthz, most errors), made once per combination: a response made from a `Headers`
 * copies it inside the runtime, where a plain object is read key by key.
 */
const constantHeaders = new Map();

/** A response in one call. */
export function respond(status, body, contentType, cacheControl, vary, etag, age, anyOrigin, extraName, extraValue) {
  if (etag === undefined && age === undefined && extraName === undefined) {
    const key = `${contentType}\n${cacheControl}\n${vary}\n${anyOrigin}`;
    let headers = constantHeaders.get(key);
    if (headers === undefined) {
      headers = new Headers(plainHeaders(contentType, cacheControl, vary, undefined, undefined, anyOrigin));
      // A handful of combinations exist; the bound only keeps a surprise from growing it.
      if (constantHeaders.size < 64) constantHeaders.set(key, headers);
    }
    return new Response(body, { status, headers });
  }
  const headers = plainHeaders(contentType, cacheControl, vary, etag, age, anyOrigin);
  if (extraName !== undefined) headers[extraName] = extraValue;
  return new Response(body, { status, headers });
}

/**
 * A response's status, body and headers (all per-isolate values), kept to make the same
 * response again from JS with `fromTemplate`: the lookups' 404.
 */
export function responseTemplate(status, body, contentType, cacheControl, vary, anyOrigin) {
  return { body, init: { status, headers: new Headers(plainHeaders(contentType, cacheControl, vary, undefined, undefined, anyOrigin)) } };
}

export function fromTemplate(template) {
  return new Response(template.body, template.init);
}

function plainHeaders(contentType, cacheControl, vary, etag, age, anyOrigin) {
  const headers = { "cache-control": cacheControl };
  if (contentType !== undefined) headers["content-type"] = contentType;
  if (vary !== undefined) headers.vary = vary;
  if (etag !== undefined) headers.etag = etag;
  if (age !== undefined) headers.age = age;
  if (anyOrigin) Object.assign(headers, CORS_HEADERS);
  return headers;
}

/**
 * The response init (`{ headers }`) of a found user's 200, made once per cached answer, as
 * the floor keeps its own: a response made from a `Headers` copies it inside the runtime,
 * where a plain object is read key by key.
 */
export function userInit(cacheControl, vary, etag) {
  const headers = new Headers(CORS_HEADERS);
  headers.set("content-type", "application/json");
  headers.set("cache-control", cacheControl);
  headers.set("vary", vary);
  headers.set("etag", etag);
  return { headers };
}

/** A 200 with `init` (made by `userInit` or `withAge`). */
export function respondWith(body, init) {
  return new Response(body, init);
}

/** A copy of `init` (made by `userInit`) with an `Age` of `age` seconds. */
export function withAge(init, age) {
  const headers = new Headers(init.headers);
  headers.set("age", age);
  return { headers };
}

/** When the answer was read from D1 (ms since the epoch), kept beside it in the edge cache. */
const READ_AT = "x-kez-read-at";

/**
 * The answer the data centre's cache holds for `url`, read from D1 less than `ttlMs` ago:
 * `[body, etag, readAtMs]`, or undefined (`caching::IsolateCache` applies the same bound).
 * A cache that fails is a miss (and logged): the registry still answers.
 */
async function edgeCached(url, ttlMs) {
  try {
    const hit = await caches.default.match(url);
    if (hit === undefined) return undefined;
    const readAt = Number(hit.headers.get(READ_AT));
    const age = Date.now() - readAt;
    if (!(age >= 0 && age < ttlMs)) return undefined;
    return [await hit.text(), hit.headers.get("etag"), readAt];
  } catch (e) {
    console.error("edge cache: match failed", url, String(e));
    return undefined;
  }
}

/** What `lookUp` hands to `finish`. */
const FROM_EDGE = 0;
const FROM_D1 = 1;
const FAILED = 2;

/** The D1 reads lookups made in this isolate (the benchmark build reports it). */
let lookupReads = 0;

export function lookupReadCount() {
  return lookupReads;
}

/**
 * A lookup's I/O as one promise: the edge cache (when `edgeUrl` is given), else the first
 * row of `statement` bound to `value`; then `finish(head, kind, outcome, env, ctx, bookmark)`
 * (in wasm, one function per isolate) makes the response from the request's `head` (the
 * string `requestHead` made), which it parses again: wasm keeps nothing for the lookup while
 * the I/O runs, so a request the runtime cancels when its client disconnects leaves nothing
 * behind, and the lookup needs no `waitUntil`. `bookmark` is `session`'s newest after the
 * read (a read through a client's bookmark, on a session of its own), else undefined. One
 * promise and one call back, where awaiting each step from wasm costs a future, its task
 * queue and two closures per step. When D1 has no row (and no bookmark was given), the
 * answer is the `notFound` template (`responseTemplate`), with no call into wasm at all.
 */
export async function lookUp(head, env, ctx, edgeUrl, ttlMs, statement, session, value, finish, notFound) {
  let kind = FAILED;
  let outcome;
  try {
    outcome = edgeUrl === undefined ? undefined : await edgeCached(edgeUrl, ttlMs);
    if (outcome !== undefined) {
      kind = FROM_EDGE;
    } else {
      lookupReads++;
      outcome = await firstRow(statement, value);
      // Through a bookmark, wasm answers (its 404 is not cached, and carries the bookmark).
      if (outcome === null && session === undefined) return fromTemplate(notFound);
      kind = FROM_D1;
    }
  } catch (e) {
    outcome = e;
  }
  const bookmark = session === undefined ? undefined : (session.getBookmark() ?? undefined);
  return finish(head, kind, outcome, env, ctx, bookmark);
}

/**
 * `promise`, kept running by `ctx.waitUntil` should the client disconnect (the runtime then
 * cancels the request, and `waitUntil` gives its work up to 30 s more). A registration's or
 * statement's promise ends in a call back that frees what wasm holds for the request (cut
 * off, it would leak), and a written statement's log step, cut off, would leave its entry
 * unsigned until the next write's step.
 */
function outliveClient(ctx, promise) {
  ctx.waitUntil(promise);
  return promise;
}

/** Keeps an answer in the data centre's cache after the response is sent. */
export function edgeKeep(ctx, url, body, etag, readAtMs, cacheControl) {
  const headers = { "content-type": "application/json", "cache-control": cacheControl, etag, [READ_AT]: String(readAtMs) };
  const stored = caches.default.put(url, new Response(body, { headers })).catch((e) => console.error("edge cache: put failed", url, String(e)));
  ctx.waitUntil(stored);
}

/** The answer to a CORS preflight of the public read endpoints. */
export function preflight(allowMethods) {
  const headers = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": allowMethods,
    "access-control-allow-headers": "*",
    "access-control-max-age": "86400",
  };
  return new Response(null, { status: 204, headers });
}

/**
 * The first row of a prepared D1 statement bound to one value, as its values in the order
 * the statement selects them (null when there is no row): one call and one promise, where
 * binding, querying and reading each field from wasm would cost a call per step. `raw()`
 * rather than `first()`, which makes an object of each row only for it to be read back
 * column by column.
 */
export async function firstRow(statement, value) {
  const [row] = await statement.bind(value).raw();
  return row ?? null;
}

/** The values of `column` in every row of `statement` bound to `values`: one call, one promise. */
export async function columnOf(statement, values, column) {
  return (await statement.bind(...values).all()).results.map((row) => row[column]);
}

/**
 * The request body as bytes, or null when it is larger than `max`: refused by its declared
 * length before anything is read; with a declared length (the framing bounds the body) read
 * in one call; without one (chunked), read chunk by chunk and abandoned once past the cap.
 */
export async function readBody(request, max) {
  const declared = request.headers.get("content-length");
  if (declared !== null && !(Number(declared) <= max)) return null;
  if (request.body === null) return new Uint8Array(0);
  if (declared !== null) return new Uint8Array(await request.arrayBuffer());
  const reader = request.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > max) {
      // Nothing more is read; the runtime drops what the client still sends.
      reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.length;
  }
  return body;
}

/**
 * What the worker reads of every request, in one string (one call, one conversion): the
 * method, the URL, then `If-None-Match` and `x-kez-bookmark`, each prefixed with "+" when
 * present, on four lines (none of them can hold a line break).
 */
export function requestHead(request) {
  const headers = request.headers;
  const ifNoneMatch = headers.get("if-none-match");
  const bookmark = headers.get("x-kez-bookmark");
  return `${request.method}\n${request.url}\n${ifNoneMatch === null ? "" : `+${ifNoneMatch}`}\n${bookmark === null ? "" : `+${bookmark}`}`;
}

/** The steps `register` reports to wasm, with what it read or what failed. */
const RATE_LIMITED = 0;
const BODY = 1;
const VERIFIED = 2;
const STEP_FAILED = 3;

/**
 * One count against the rate limit binding `env[binding]` for `key`: false when over it. A
 * binding that is missing or fails is a configuration or platform fault: logged, and the
 * registration goes on (it must not depend on the limiter being up).
 */
async function allowed(env, binding, key) {
  try {
    return Boolean((await env[binding].limit({ key })).success);
  } catch (e) {
    console.error(`rate limit ${binding}:`, String(e));
    return true;
  }
}

/**
 * A registration's I/O as one promise; every decision is wasm's, each made in one
 * synchronous call back. With `limits`, the client's address is counted first
 * (`REGISTRATIONS_BY_ADDRESS`; over the limit, `check(RATE_LIMITED)`). Then the body (null
 * when larger than `maxBody`) goes to `check(BODY, body)`, which answers with a Response
 * (the request ends there) or with `[limitKey, proof, finish]`: the key to count
 * (`REGISTRATIONS_BY_KEY`, once its signature holds: see `settle`), and the signature to
 * verify and the write to make (`settle`'s `proof`; no write when a check failed: `finish`
 * holds the error). `finish(VERIFIED, outcome)`, `finish(RATE_LIMITED)` or
 * `finish(STEP_FAILED, error)` makes the response. Each callback is called exactly once (a
 * wasm closure that is never called is never freed).
 */
export function register(request, env, ctx, limits, maxBody, check) {
  return outliveClient(ctx, registerSteps(request, env, limits, maxBody, check));
}

async function registerSteps(request, env, limits, maxBody, check) {
  const [step, read] = await countedBody(request, env, limits && "REGISTRATIONS_BY_ADDRESS", maxBody);
  const next = check(step, read);
  if (next instanceof Response) return next;
  const [limitKey, proof, finish] = next;
  return finish(...(await settle(env, proof, limitKey === undefined ? undefined : ["REGISTRATIONS_BY_KEY", limitKey])));
}

/**
 * What a client's address is limited as: an IPv6 address by its /64, a block one host (any
 * VPS) holds whole and could otherwise spend as 2^64 clients; IPv4 (mapped or not) as itself.
 */
export function addressBlock(address) {
  if (!address.includes(":")) return address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  const [left, right] = address.split("%")[0].split("::").map((part) => (part ? part.split(":") : []));
  const groups = right === undefined ? left : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  return `${groups.slice(0, 4).map((group) => parseInt(group, 16).toString(16)).join(":")}::/64`;
}

/**
 * A write request's first step, as `check` takes it: `[RATE_LIMITED]` when the client's
 * address is over the limit of `env[binding]` (counted before the body is read; no binding
 * given: not limited), else `[BODY, body]` (null when larger than `maxBody`), or
 * `[STEP_FAILED, error]`.
 */
async function countedBody(request, env, binding, maxBody) {
  try {
    if (binding && !(await allowed(env, binding, addressBlock(request.headers.get("cf-connecting-ip") ?? "")))) return [RATE_LIMITED];
    return [BODY, await readBody(request, maxBody)];
  } catch (e) {
    return [STEP_FAILED, e];
  }
}

/**
 * `finish`'s arguments for `proof` (`[proofs, message, write]`): the equations
 * (`equationsHold`), then, if they all hold and a `write` is given, `limit` (`[binding, key]`)
 * counted and the write made (`writeStatement`): `[VERIFIED, [holds, outcome]]`
 * (`outcome` undefined when nothing was to be written), `[RATE_LIMITED]` when over the limit,
 * `[STEP_FAILED, error]` when something failed. Only a registration about to be written
 * counts against its key: envelopes naming a key that its holder never signed, or that fail a
 * check (a stale replay among them), cannot use up its limit.
 */
async function settle(env, proof, limit) {
  try {
    const [proofs, message, write] = proof;
    const holds = await equationsHold(proofs, message);
    if (!holds.every(Boolean) || write === undefined) return [VERIFIED, [holds, undefined]];
    if (limit !== undefined && !(await allowed(env, ...limit))) return [RATE_LIMITED];
    return [VERIFIED, [holds, await writeStatement(write)]];
  } catch (e) {
    return [STEP_FAILED, e];
  }
}

/**
 * Ed25519's equation by the runtime (WebCrypto) for each `[key, signature]` of `proofs` over
 * `message`: one boolean each. The worker has checked the strict rules first (canonical s,
 * an R and a key not of small order; `registration::check`). A key that is not a point
 * fails the equation here, and wasm then tells the two errors apart.
 */
function equationsHold(proofs, message) {
  return Promise.all(
    proofs.map(async ([key, signature]) => {
      const publicKey = await crypto.subtle.importKey("raw", key, { name: "Ed25519" }, false, ["verify"]);
      return crypto.subtle.verify({ name: "Ed25519" }, publicKey, signature, message);
    }),
  );
}

/**
 * A statement whose signatures hold (every other check passed), and its log entry, in one
 * transaction that also reads the handle's row back and the log's state and the entries after
 * it, then the log's tree brought up to the entry (`advanceLog`, which reads the row again
 * with its proof). Resolves to `[WRITTEN, row]`, or `[REFUSED, row]` when the handle's state
 * did not allow the statement (its entry was not appended, nothing was written; `row`, read in
 * the same transaction, says why). Rejects with D1's error if the write fails, and only then.
 *
 * `write` is `[session, statements, log, readBack, value]`: the `first-primary`
 * session and the bound statements of the transaction, the first of which appends the entry
 * (`RETURNING idx`, no row when refused); the log's statements and step (`advanceLog`); and the
 * read back (`readBack` bound to `value`).
 */
async function writeStatement(write) {
  const [session, statements, log, readBack, value] = write;
  const [state, entries] = log;
  // The handle's row is read in the write's own transaction: as the write left it, or as it
  // is when the write was refused. No read after the commit can fail and leave a written
  // statement answered as an error.
  const written = await session.batch([...statements, readBack.bind(value), state, entries]);
  const appended = written[0];
  const rowNow = valuesOf(written[statements.length].results[0]) ?? null;
  if (appended.results.length === 0) return [REFUSED, rowNow];
  let signed;
  try {
    signed = await advanceLog(session, log, appended.results[0].idx + 1, written.slice(-2), readBack, value);
  } catch (e) {
    // Written and logged; the next step signs it (its lookups carry no proof until then).
    console.error("log: step failed", String(e));
  }
  return [WRITTEN, signed ?? rowNow];
}

/** What `writeStatement`'s outcome says of the write. */
const REFUSED = 0;
const WRITTEN = 1;

/**
 * A rotation's or release's I/O as one promise, as `register`'s but with the client's address
 * alone counted (`STATEMENTS_BY_ADDRESS`, with `limits`): the body (null when larger than
 * `maxBody`) goes to `check(BODY, body)`, which answers with a Response or
 * `[proof, finish, forget]`: `settle`'s `proof`, and the data centre's cache URLs of the
 * answers a written statement changes, or undefined. `finish(VERIFIED, [holds, outcome])` or
 * `finish(STEP_FAILED, error)` makes the response. Once written, `forget` is deleted before
 * the response goes out: a lookup here right after it must not be answered from the cache.
 */
export function applyStatement(request, env, ctx, limits, maxBody, check) {
  return outliveClient(ctx, applyStatementSteps(request, env, limits, maxBody, check));
}

async function applyStatementSteps(request, env, limits, maxBody, check) {
  const [step, read] = await countedBody(request, env, limits && "STATEMENTS_BY_ADDRESS", maxBody);
  const next = check(step, read);
  if (next instanceof Response) return next;
  const [proof, finish, forget] = next;
  const outcome = await settle(env, proof, undefined);
  if (forget !== undefined && outcome[0] === VERIFIED && outcome[1][1]?.[0] === WRITTEN) await edgeForget(forget);
  return finish(...outcome);
}

/**
 * Deletes `urls` from the data centre's cache. One that fails is logged: what it keeps, the
 * TTL still bounds, as in every other data centre.
 */
async function edgeForget(urls) {
  await Promise.all(
    urls.map(async (url) => {
      try {
        await caches.default.delete(url);
      } catch (e) {
        console.error("edge cache: delete failed", url, String(e));
      }
    }),
  );
}

/**
 * Brings the log's signed tree up to at least `target` entries (src/log/stored.rs), from
 * `read`, `[state, entries]` as the write's transaction read them: the entries after the
 * signed size are hashed and signed by wasm, then the nodes and the state are written in one
 * batch that reads the state and the handle's row (`readBack` bound to `value`) after them.
 * Resolves to that row (its values in order) once the state covers the entry, so the row
 * carries its proof; undefined (logged) when it was not covered within `STEP_ATTEMPTS` steps:
 * more than `STEP_ATTEMPTS` × `ENTRIES_PER_STEP` entries waited before it.
 *
 * Concurrent writes each make their own step, and none waits for another's: in workerd, a
 * request that goes on from a promise another request's I/O settled can have its own I/O fail
 * ("Cannot perform I/O on behalf of a different request") or hang. Shared steps left
 * registrations unsigned, or answered 500, after a minute of concurrent registrations
 * (tests/sustained.test.mjs). The state only moves forward (`LOG_UPDATE` in db.rs): of two
 * steps from one size, the longer wins whichever commits first, and the other wrote the same
 * nodes (a node's hash depends only on the entries under it). A step covers its own entry
 * unless more than `ENTRIES_PER_STEP` entries wait before it, so a write takes two round
 * trips, and only then more.
 *
 * `log` is `[state, entries, nodes, update, step]`: the statements (on the `first-primary`
 * session) and wasm's step, `(size, edge, entries)` to `[size, edge, nodesJson, checkpoint]`.
 */
async function advanceLog(session, log, target, read, readBack, value) {
  const [state, entries, nodes, update, step] = log;
  // The write's own read cannot cover its entry; a read again (`mine`: the row beside it) can.
  let [current, next, mine] = read;
  for (let attempt = 0; attempt < STEP_ATTEMPTS; attempt++) {
    const { size, edge } = current.results[0];
    // Signed meanwhile by another write's step.
    if (size >= target) return valuesOf(mine?.results[0]);
    const [newSize, newEdge, nodesJson, checkpoint] = step(size, edge, next.results.map((entry) => entry.entry));
    const [, , after, row] = await session.batch([
      nodes.bind(nodesJson),
      update.bind(newSize, newEdge, checkpoint),
      state,
      readBack.bind(value),
    ]);
    if (after.results[0].size >= target) return valuesOf(row.results[0]);
    [current, next, mine] = await session.batch([state, entries, readBack.bind(value)]);
  }
  console.error(`log: entry ${target - 1} not signed after ${STEP_ATTEMPTS} steps; the next write's step signs it`);
  return undefined;
}

/** How many steps a write makes before it leaves its entry to the next write's step. */
const STEP_ATTEMPTS = 8;

/** A row's values in the order its statement selects them, or undefined when there is none. */
const valuesOf = (row) => (row === undefined ? undefined : Object.values(row));
