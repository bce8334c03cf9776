// The app's watch over each server's transparency log (docs/TRANSPARENCY.md). A binding the
// app uses must be an entry of a checkpoint signed by the log key the server published when
// the app first met it, and every checkpoint must extend the newest one kept for that server
// (checked from the log's tiles). A failure that shows the server lying is an alarm kept in
// the store until the person dismisses it: a newer checkpoint never replaces it silently.
import { originOf } from "./api";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { type Checkpoint, checkConsistent, checkEntries, checkIncluded, InconsistentLog, LogError, type LogProof, openCheckpoint, parseVerifierKey, tilePath, type Verifier } from "./log";
import { canonicalBytes, type Envelope } from "./registration";
import { fetchBounded, ReadError } from "./bounded";
import { exclusively } from "./exclusive";
import { getSetting, putSetting } from "./store";

export interface LogAlarm {
  server: string;
  message: string;
  at: number;
  /** A statement about this person's own handle or key, made elsewhere (not a contradiction). */
  own?: boolean;
  /** The kept and the new signed checkpoint, which the app could not fit in one history: the evidence. */
  evidence?: [string, string];
}

/** What the app keeps of a server's log: the verifier key it pinned, the newest checkpoint it checked. */
interface Watched {
  verifierKey: string;
  checkpoint?: string;
  /**
   * How many of the log's entries the app has read for statements about its own handle or
   * key: from the size of the first checkpoint it kept, so a statement made after the person
   * registered (in the same page load, say) is read at the next start.
   */
  monitored?: number;
}

/** A checkpoint a contact's app sent whose check could not be made yet (a tile unreadable). */
interface HeardUnchecked {
  server: string;
  note: string;
  from: string;
}

/** Since when (ms, the first start that failed) and why the log could not be read for statements about this person. */
export interface Unchecked {
  server: string;
  since: number;
  reason: string;
}

/** A failure that shows the server (or someone with its database) lying: raises the alarm. */
export class LogAlarmError extends LogError {}

const listeners = new Set<(alarms: LogAlarm[]) => void>();

/** Calls `listener` with every alarm now and whenever one is raised or dismissed; returns an unsubscribe. */
export function watchAlarms(listener: (alarms: LogAlarm[]) => void): () => void {
  listeners.add(listener);
  void alarms().then(listener);
  return () => listeners.delete(listener);
}

export async function alarms(): Promise<LogAlarm[]> {
  return ((await getSetting("log-alarms")) as LogAlarm[] | undefined) ?? [];
}

async function raise(server: string, message: string, own = false, evidence?: [string, string]) {
  const now = await alarms();
  if (now.some((a) => a.server === server && a.message === message)) return;
  const next = [...now, { server, message, at: Date.now(), ...(own ? { own } : {}), ...(evidence ? { evidence } : {}) }];
  await putSetting("log-alarms", next);
  for (const listener of listeners) listener(next);
}

/** The person read the alarm and chose to go on: it is kept no longer (the pinned key and checkpoint stay). */
export async function dismissAlarms(): Promise<void> {
  await putSetting("log-alarms", []);
  for (const listener of listeners) listener([]);
}

/** Where the app reaches `server`: its own origin for the home server. */
const baseOf = (server: string, home: string) => (server === home.toLowerCase() ? "" : originOf(server));

/** The largest tile (tlog-tiles): 256 hashes, or 256 entries of at most 65,535 bytes with their 2-byte lengths. */
const HASH_TILE_MAX = 256 * 32;
const ENTRY_BUNDLE_MAX = 256 * (2 + 65_535);
/** The largest checkpoint or healthz taken: each is a few hundred bytes. */
const SMALL_ANSWER_MAX = 64 * 1024;
/** How long one read of a log may take: the checks of that log wait behind it. */
const LOG_READ_TIMEOUT_MS = 30_000;

/** `url`'s body, if it answers OK within the size of what `url` is (`max`) and in time; else a LogError (which proves nothing). */
async function readLog(url: string, max: number): Promise<Uint8Array> {
  let response: Response;
  let body: Uint8Array;
  try {
    [response, body] = await fetchBounded(url, {}, max, LOG_READ_TIMEOUT_MS);
  } catch (e) {
    throw new LogError(e instanceof ReadError ? e.message : `${url} could not be read.`);
  }
  if (!response.ok) throw new LogError(`${url} could not be read (${response.status}).`);
  return body;
}

const fetchBytes = (url: string) => readLog(url, url.includes("/tile/entries/") ? ENTRY_BUNDLE_MAX : HASH_TILE_MAX);

const keptLog = async (server: string) => (await getSetting(`log ${server}`)) as Watched | undefined;

/** The server's log as pinned: the verifier key from its healthz the first time the app met it. */
async function watched(server: string, home: string): Promise<Watched> {
  const kept = await keptLog(server);
  if (kept) return kept;
  let key: unknown;
  try {
    const health = new TextDecoder().decode(await readLog(`${baseOf(server, home)}/v1/healthz`, SMALL_ANSWER_MAX));
    key = (JSON.parse(health) as { log?: { verifier_key?: unknown } }).log?.verifier_key;
  } catch {
    throw new LogError(`Could not read ${server}'s log key.`);
  }
  if (typeof key !== "string") throw new LogError(`${server} keeps no transparency log, so its bindings cannot be checked.`);
  // Checkpoints are compared (gossip) by the origin they name, which is the key's name: a key
  // named otherwise would keep this server's checkpoints out of every comparison.
  const { name } = parseVerifierKey(key);
  if (name.toLowerCase() !== `${server}/log`) throw new LogError(`${server}'s log key is named ${name}, not ${server}/log, so its checkpoints could not be compared with anyone's.`);
  const pinned: Watched = { verifierKey: key };
  // The first key pinned stays, should another check have pinned one meanwhile.
  return exclusively(`log ${server}`, async () => (await keptLog(server)) ?? (await putSetting(`log ${server}`, pinned), pinned));
}

/**
 * Checks that the binding in `body` (a lookup or registration answer) is in `server`'s log,
 * and that the checkpoint it came with extends the newest one kept for that server; keeps the
 * newer of the two. Throws LogError if the binding cannot be checked, LogAlarmError (after
 * raising the alarm) if the server is caught showing something its log does not hold.
 */
export async function checkLogged(body: { envelope: Envelope; log?: LogProof | null }, server: string, home: string): Promise<Checkpoint> {
  const name = server.toLowerCase();
  const kept = await watched(name, home);
  const verifier = parseVerifierKey(kept.verifierKey);
  let checkpoint: Checkpoint;
  try {
    checkpoint = checkIncluded(canonicalBytes(body.envelope), body.log, verifier);
  } catch (e) {
    // No proof at all is a binding not yet logged (or an old server): not usable, not a lie.
    if (!body.log) throw e;
    throw await alarm(name, e);
  }
  await observe(name, home, checkpoint, verifier);
  return checkpoint;
}

/** The newest checkpoint of `server`'s log this app checked, if any: what it gossips to contacts. */
export async function newestCheckpoint(server: string): Promise<string | undefined> {
  return ((await getSetting(`log ${server.toLowerCase()}`)) as Watched | undefined)?.checkpoint;
}

/**
 * Gossip: `note`, a checkpoint a contact's app (`from`, a primary key) was shown and sent in a
 * sealed message. If it is signed by the key pinned for its log, it must be consistent with
 * the newest one kept (checked from tiles), as any checkpoint the server serves; two signed
 * histories raise the alarm. A note of a log not watched here, or not signed by its pinned
 * key, proves nothing about the server: ignored.
 */
export async function heardCheckpoint(note: string, home: string, from: string): Promise<void> {
  const origin = note.slice(0, note.indexOf("\n"));
  if (!origin.endsWith("/log") || heardConsistent.has(note)) return;
  const server = origin.slice(0, -"/log".length).toLowerCase();
  const kept = (await getSetting(`log ${server}`)) as Watched | undefined;
  // The usual case, both apps at the same checkpoint, costs no signature check.
  if (!kept || kept.checkpoint === note) return;
  const verifier = parseVerifierKey(kept.verifierKey);
  let checkpoint: Checkpoint;
  try {
    checkpoint = openCheckpoint(note, verifier);
  } catch {
    return;
  }
  if (!(await checkHeard(server, home, checkpoint, verifier, from))) {
    // The check could not be made: kept, and tried again (`recheckHeard`).
    await updateHeardUnchecked((list) => [...list.filter((h) => h.note !== note).slice(-(HEARD_UNCHECKED_MAX - 1)), { server, note, from }]);
    return;
  }
  if (heardConsistent.size >= 256) heardConsistent.clear();
  heardConsistent.add(note);
  await recheckHeard(home);
}

/** Unchecked gossiped checkpoints kept, at most: the newest. */
const HEARD_UNCHECKED_MAX = 32;
const HEARD_UNCHECKED = "log-heard-unchecked";

/** Rewrites the list of unchecked gossiped checkpoints, one rewrite at a time. */
const updateHeardUnchecked = (update: (list: HeardUnchecked[]) => HeardUnchecked[]) =>
  exclusively(HEARD_UNCHECKED, async () => {
    await putSetting(HEARD_UNCHECKED, update(((await getSetting(HEARD_UNCHECKED)) as HeardUnchecked[] | undefined) ?? []));
  });

/** Checks a gossiped checkpoint as `observe` does; false if it could not be checked (no alarm). */
async function checkHeard(server: string, home: string, checkpoint: Checkpoint, verifier: Verifier, from: string): Promise<boolean> {
  const root = btoa(String.fromCharCode(...checkpoint.root)).slice(0, 12);
  try {
    await observe(server, home, checkpoint, verifier, `a contact's app (${from.slice(0, 20)}…) a checkpoint (size ${checkpoint.size}, root ${root}…)`);
    return true;
  } catch (e) {
    // Only an alarm is an answer; a tile refused or a connection lost proves nothing.
    if (e instanceof LogAlarmError) throw e;
    return false;
  }
}

/**
 * Tries again the gossiped checkpoints whose check could not be made: at each start, and
 * after a gossip check that went through. Each leaves the list once checked, once it raised
 * the alarm, or once its log is no longer watched.
 */
export async function recheckHeard(home: string): Promise<void> {
  const waiting = ((await getSetting(HEARD_UNCHECKED)) as HeardUnchecked[] | undefined) ?? [];
  const done = new Set<string>();
  for (const { server, note, from } of waiting) {
    const kept = await keptLog(server);
    try {
      if (!kept) done.add(note);
      else {
        const verifier = parseVerifierKey(kept.verifierKey);
        if (await checkHeard(server, home, openCheckpoint(note, verifier), verifier, from)) done.add(note);
      }
    } catch {
      done.add(note); // the alarm is raised
    }
  }
  if (done.size > 0) await updateHeardUnchecked((list) => list.filter((h) => !done.has(h.note)));
}

/** Gossiped checkpoints found consistent since the page loaded: each is checked once. */
const heardConsistent = new Set<string>();

/**
 * Checks `checkpoint` against the newest kept for `server` and keeps the newer (never an
 * older one). `heardFrom` names where a gossiped checkpoint came from, for the alarm.
 */
async function observe(server: string, home: string, checkpoint: Checkpoint, verifier: Verifier, heardFrom?: string) {
  await exclusively(`log ${server}`, async () => {
    const kept = await keptLog(server);
    if (!kept) return; // forgotten meanwhile
    const newest = kept.checkpoint ? openCheckpoint(kept.checkpoint, verifier) : undefined;
    if (newest) {
      try {
        await checkConsistent(newest, checkpoint, (path) => fetchBytes(`${baseOf(server, home)}/log/${path}`));
      } catch (e) {
        // A tile that could not be read proves nothing; two histories do.
        if (!(e instanceof InconsistentLog)) throw e;
        throw await alarm(server, heardFrom ? `It showed ${heardFrom} that contradicts the history it showed this app.` : e, [newest.note, checkpoint.note]);
      }
      if (checkpoint.size <= newest.size) return;
    }
    await putSetting(`log ${server}`, { ...kept, checkpoint: checkpoint.note, monitored: kept.monitored ?? newest?.size ?? checkpoint.size } satisfies Watched);
  });
}

async function alarm(server: string, cause: unknown, evidence?: [string, string]): Promise<LogAlarmError> {
  const detail = cause instanceof Error ? cause.message : String(cause);
  const message = `${server} showed something its own signed log contradicts: ${detail}`;
  await raise(server, message, false, evidence);
  return new LogAlarmError(message);
}

/** A statement this app made (its JCS bytes' SHA-256), so monitoring knows it from one made elsewhere. */
export async function recordOwnStatement(envelope: unknown): Promise<void> {
  const made = ((await getSetting("own-statements")) as string[] | undefined) ?? [];
  const hash = bytesToHex(sha256(canonicalBytes(envelope)));
  if (!made.includes(hash)) await putSetting("own-statements", [...made, hash]);
}

/** The statements read from the log per start, at most: a long absence is read over several starts. */
const MONITOR_BATCH = 4096;

/**
 * Monitors this person's own handles and key in `server`'s log: reads the entries added since
 * the last start (from the log's entry bundles, after checking the new checkpoint against the
 * one kept) and raises the alarm for any statement about `handles` or `primary` that this app
 * did not make: a registration, rotation or release from another device, or by someone who
 * holds the key. It reads from the first checkpoint the app kept for that server (a lookup,
 * its own registration, or a start) up to the newest checkpoint the app holds, whichever way
 * it came (lookups, gossip): a server that keeps serving this app an older checkpoint does
 * not keep a newer statement from it.
 *
 * Resolves to the failure that stopped it, if one did (and keeps it, with the time of the
 * first such start, until a start gets through): reading nothing is not the same as finding
 * nothing, and the person is told. An alarm (the server caught lying) is raised and thrown.
 */
export async function monitorOwn(server: string, handles: string[], primary: string): Promise<Unchecked | undefined> {
  const name = server.toLowerCase();
  try {
    await readOwn(name, handles, primary);
  } catch (e) {
    if (e instanceof LogAlarmError) throw e;
    const before = (await getSetting("monitor-unchecked")) as Unchecked | undefined;
    const since = before?.server === name ? before.since : Date.now();
    const unchecked = { server: name, since, reason: e instanceof Error ? e.message : String(e) };
    await putSetting("monitor-unchecked", unchecked);
    return unchecked;
  }
  await putSetting("monitor-unchecked", undefined);
  return undefined;
}

async function readOwn(name: string, handles: string[], primary: string): Promise<void> {
  const kept = await watched(name, name);
  const verifier = parseVerifierKey(kept.verifierKey);
  const served = openCheckpoint(new TextDecoder().decode(await readLog("/log/checkpoint", SMALL_ANSWER_MAX)), verifier);
  await observe(name, name, served, verifier);
  const current = (await keptLog(name)) ?? kept;
  // The newest checkpoint kept: the one just served, or a newer one seen before.
  const checkpoint = current.checkpoint ? openCheckpoint(current.checkpoint, verifier) : served;
  const from = current.monitored ?? checkpoint.size;
  const to = Math.min(checkpoint.size, from + MONITOR_BATCH);
  const made = new Set(((await getSetting("own-statements")) as string[] | undefined) ?? []);
  // Whole bundles, from the one that holds `from`: each is checked against the signed tree,
  // so a server cannot hide a statement from this monitor by serving other entries.
  const first = Math.floor(from / 256) * 256;
  const entries: Uint8Array[] = [];
  for (let index = first; index < to; index += 256) {
    const width = Math.min(256, checkpoint.size - index);
    const bundle = await fetchBytes(`/log/${tilePath("entries", index / 256, width)}`);
    for (let at = 0; at < bundle.length; ) {
      const length = (bundle[at] << 8) | bundle[at + 1];
      entries.push(bundle.subarray(at + 2, at + 2 + length));
      at += 2 + length;
    }
    if (entries.length !== index + width - first) throw await alarm(name, `The log's entry bundle at ${index} does not hold ${width} entries.`);
  }
  try {
    await checkEntries(entries, first, checkpoint, (path) => fetchBytes(`/log/${path}`));
  } catch (e) {
    throw e instanceof InconsistentLog ? await alarm(name, e) : e;
  }
  for (let i = from; i < to; i++) {
    const entry = entries[i - first];
    const about = aboutMe(entry, handles, primary);
    if (about && !made.has(bytesToHex(sha256(entry)))) {
      await raise(name, `${name}'s log holds a ${about} that this app did not make (entry ${i}). If it was not you on another device, your key may be in someone else's hands.`, true);
    }
  }
  await exclusively(`log ${name}`, async () => {
    const now = await keptLog(name);
    if (now) await putSetting(`log ${name}`, { ...now, monitored: Math.max(now.monitored ?? 0, to) } satisfies Watched);
  });
}

/** What an entry says about this person, if anything: "registration of alice", …; null otherwise. */
function aboutMe(entry: Uint8Array, handles: string[], primary: string): string | null {
  let statement: { kez?: unknown; payload?: Record<string, unknown> };
  try {
    statement = JSON.parse(new TextDecoder().decode(entry));
  } catch {
    return null;
  }
  const p = statement.payload ?? {};
  const mine = (typeof p.handle === "string" && handles.includes(p.handle)) || [p.primary, p.old, p.new].includes(primary);
  if (!mine) return null;
  const kind = { handle_registration: "registration", key_rotation: "key rotation", handle_release: "release" }[String(statement.kez)] ?? "statement";
  return `${kind} of ${String(p.handle)}`;
}
