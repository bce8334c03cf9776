// The home server's v1 API, as the app uses it. Every failure becomes an ApiError whose
// message is a sentence for people; `code` is the server's stable error code.
import { fetchBounded, ReadError } from "./bounded";
import type { Envelope, UserBody } from "./registration";

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 0,
  ) {
    super(message);
  }
}

/** Sentences for the codes a person can meet; others fall back to the server's own message. */
const SENTENCES: Record<string, string> = {
  handle_taken: "That handle is already taken on this server. Try another one.",
  handle_reserved: "That handle is reserved on this server. Try another one.",
  handle_confusable: "A handle that looks like this one is already registered (0 and o, 1 and l, rn and m count as the same). Try another one.",
  rate_limited: "Too many requests from here just now. Wait a minute and try again.",
  storage_unavailable: "The server's storage is unavailable right now. Try again in a few seconds.",
  invalid_handle: "That is not a valid handle: 3–32 lowercase letters, digits, “_” or “-”, starting with a letter or digit.",
  key_already_registered: "This identity already has a handle on this server.",
  clock_skew: "Your device's clock is more than 5 minutes off. Set it right (automatic time) and try again.",
  invalid_signature: "The server could not verify the signature of this registration.",
  wrong_server: "This registration was made for another server.",
  user_not_found: "Nobody with that name is registered there.",
  invalid_primary_key: "That is not a valid key: it looks like ed25519: followed by 64 hex digits.",
  not_current_key: "This handle is no longer held by this key (it was moved or given up elsewhere).",
  handle_released: "This handle was already given up.",
  statement_superseded: "This handle changed after this request was signed. Check your device's clock and try again.",
  handle_quarantined: "That handle was given up recently; only the key that held it can take it back for now.",
  network: "Could not reach the server. Check your connection and try again.",
  timeout: "The server did not answer in time. Check your connection and try again.",
};

export function sentence(code: string, fallback: string): string {
  return SENTENCES[code] ?? fallback;
}

/** The directory's answer that a key holds no handle: none registered, or given up (by a release signed with it). */
export const namesNoHandle = (e: unknown): boolean => e instanceof ApiError && (e.code === "user_not_found" || e.code === "handle_released");

/**
 * Read-your-writes: the home server answers a registration with a D1 bookmark, and a lookup
 * that carries it reads data at least that fresh (a replica that has not caught up waits), so
 * this app sees its own registration at once. Its lookups carry the bookmark for two minutes
 * (twice the server's cache TTL); kept per tab, so a reload right after registering keeps it.
 */
const BOOKMARK_HEADER = "x-kez-bookmark";
const BOOKMARK_WINDOW_MS = 120_000;
const BOOKMARK_KEY = "kez-chat:bookmark";

/** Only the home server's answers count: another server's bookmark would steer this app's home lookups. */
function rememberBookmark(response: Response) {
  if (!response.url.startsWith(`${location.origin}/`)) return;
  const bookmark = response.headers.get(BOOKMARK_HEADER);
  if (!bookmark) return;
  try {
    sessionStorage.setItem(BOOKMARK_KEY, JSON.stringify({ bookmark, at: Date.now() }));
  } catch {
    // Storage refused: lookups then read whatever replica is nearest.
  }
}

/** The headers of a lookup at the home server: the recent bookmark, if any. */
function homeLookupHeaders(): Record<string, string> {
  try {
    const kept = JSON.parse(sessionStorage.getItem(BOOKMARK_KEY) ?? "null") as { bookmark?: unknown; at?: unknown } | null;
    const fresh = typeof kept?.bookmark === "string" && typeof kept.at === "number" && Date.now() - kept.at < BOOKMARK_WINDOW_MS;
    return fresh ? { [BOOKMARK_HEADER]: kept.bookmark as string } : {};
  } catch {
    return {};
  }
}

/** The largest answer taken: every answer of the API is far smaller (a lookup: a statement of at most 16 KiB, its view and its log proof). */
const ANSWER_MAX = 256 * 1024;
/** How long an answer may take: a lookup waits for a replica to catch up with its bookmark, within seconds. */
const ANSWER_TIMEOUT_MS = 30_000;

async function request(url: string, init?: RequestInit): Promise<unknown> {
  let response: Response;
  let bytes: Uint8Array;
  try {
    const headers = { accept: "application/json", ...init?.headers };
    [response, bytes] = await fetchBounded(url, { ...init, headers, credentials: "omit", referrerPolicy: "no-referrer" }, ANSWER_MAX, ANSWER_TIMEOUT_MS);
  } catch (e) {
    if (e instanceof ReadError && e.reason === "too_large") throw new ApiError("bad_response", "The server answered with more than any answer holds.");
    throw new ApiError("network", sentence(e instanceof ReadError && e.reason === "timeout" ? "timeout" : "network", ""));
  }
  rememberBookmark(response);
  let body: unknown = null;
  try {
    body = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    // not JSON: handled below
  }
  if (response.ok && body !== null) return body;
  const error = body as { error?: unknown; message?: unknown } | null;
  if (typeof error?.error === "string") {
    const fallback = typeof error.message === "string" ? error.message : `The server answered ${response.status}.`;
    throw new ApiError(error.error, sentence(error.error, fallback), response.status);
  }
  throw new ApiError("bad_response", `The server answered ${response.status} with something unexpected.`, response.status);
}

export interface Health {
  status: string;
  server: string;
  version: string;
  /** The nostr relays this server suggests. */
  relays: string[];
}

export const health = () => request("/v1/healthz") as Promise<Health>;

export const register = (envelope: Envelope) =>
  request("/v1/register", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(envelope) }) as Promise<UserBody>;

/** `POST /v1/rotate` and `/v1/release`: a signed statement about this person's handle. */
export const postStatement = (path: "/v1/rotate" | "/v1/release", statement: unknown) =>
  request(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(statement) });

export const lookupHandle = (handle: string) => request(`/v1/u/${encodeURIComponent(handle)}`, { headers: homeLookupHeaders() });

/** `fresh`: past this browser's HTTP cache (which may hold a 404 from before a registration whose answer was lost). */
export const lookupPrimary = (primary: string, fresh = false) =>
  request(`/v1/by-primary/${encodeURIComponent(primary)}`, { headers: homeLookupHeaders(), ...(fresh ? { cache: "no-cache" as const } : {}) });

/** Loopback hosts are reached over http (local development); every other domain over https. */
export function originOf(domain: string): string {
  const host = domain.replace(/:\d+$/, "");
  const local = host === "localhost" || host === "127.0.0.1" || host === "[::1]";
  return `${local ? "http" : "https"}://${domain}`;
}

/** RFC 7033 WebFinger at another home server. */
export const webfinger = (handle: string, domain: string) =>
  request(`${originOf(domain)}/.well-known/webfinger?resource=${encodeURIComponent(`acct:${handle}@${domain}`)}`, {
    headers: { accept: "application/jrd+json" },
  });

export const fetchUser = (url: string) => request(url);
