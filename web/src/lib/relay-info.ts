// Each relay's NIP-11 document (its limits), fetched over HTTP(S) from the relay's own URL and
// kept in IndexedDB for a day, so pieces are sized for what the relays actually take.
import { fetchBounded } from "./bounded";
import * as store from "./store";
import { ASSUMED_LIMITS, type RelayLimits, limitsFromNip11 } from "./transfer";

/** A stated document is asked for again after a day; a relay that served none, after an hour. */
const REFRESH_MS = 24 * 3600_000;
const RETRY_MS = 3600_000;
const FETCH_TIMEOUT_MS = 5_000;
/** The largest document taken (a relay's limits take a few hundred bytes). */
const NIP11_MAX = 64 * 1024;

/** The relay's HTTP URL: https for wss, http for ws (loopback only, see RelaysCard). */
export function nip11Url(relayUrl: string): string | null {
  try {
    const url = new URL(relayUrl);
    if (url.protocol !== "wss:" && url.protocol !== "ws:") return null;
    url.protocol = url.protocol === "wss:" ? "https:" : "http:";
    return url.href;
  } catch {
    return null;
  }
}

async function fetchLimits(relayUrl: string): Promise<RelayLimits | null> {
  const url = nip11Url(relayUrl);
  if (!url) return null;
  try {
    const init: RequestInit = { headers: { Accept: "application/nostr+json" }, credentials: "omit", referrerPolicy: "no-referrer" };
    const [response, body] = await fetchBounded(url, init, NIP11_MAX, FETCH_TIMEOUT_MS);
    if (!response.ok) return null;
    return limitsFromNip11(JSON.parse(new TextDecoder().decode(body)));
  } catch {
    return null; // unreachable, no CORS, not JSON: assume the default
  }
}

/** The relay's limits: from the cache while fresh, otherwise fetched (and cached). */
export async function relayLimits(relayUrl: string, now = Date.now()): Promise<RelayLimits> {
  const cached = await store.getRelayInfo(relayUrl);
  if (cached && now - cached.fetchedAt < (cached.limits.stated ? REFRESH_MS : RETRY_MS)) return cached.limits;
  const limits = (await fetchLimits(relayUrl)) ?? ASSUMED_LIMITS;
  await store.putRelayInfo(relayUrl, { limits, fetchedAt: now });
  return limits;
}
