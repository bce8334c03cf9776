// Reads from servers that may be hostile (a home server, another server, a relay's NIP-11
// document): each answer within the size its format allows and within a time, so that no
// server can grow the page's memory without bound (at every start, for a read the app makes
// at start) or hold a check, and every check of that log waiting behind it, forever.

/** Why a bounded read failed: unreachable (or cut off), too slow, or larger than allowed. */
export class ReadError extends Error {
  constructor(
    readonly reason: "network" | "timeout" | "too_large",
    message: string,
  ) {
    super(message);
  }
}

/**
 * `url`'s response and its body, read only while it stays within `max` bytes (refused by its
 * declared length before reading), the whole exchange within `timeoutMs`. A status that is
 * not OK is no failure here: the caller reads the error body.
 */
export async function fetchBounded(url: string, init: RequestInit, max: number, timeoutMs: number): Promise<[Response, Uint8Array]> {
  const signal = AbortSignal.timeout(timeoutMs);
  const failed = () =>
    signal.aborted ? new ReadError("timeout", `${url} did not answer within ${timeoutMs / 1000} s.`) : new ReadError("network", `${url} could not be reached.`);
  const tooLarge = () => new ReadError("too_large", `${url} answered more than ${max} bytes.`);
  let response: Response;
  try {
    response = await fetch(url, { ...init, signal });
  } catch {
    throw failed();
  }
  if (Number(response.headers.get("content-length") ?? 0) > max) {
    await response.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (response.body) {
    const reader = response.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.length;
        if (size > max) {
          await reader.cancel().catch(() => {});
          throw tooLarge();
        }
        chunks.push(value);
      }
    } catch (e) {
      throw e instanceof ReadError ? e : failed();
    }
  }
  const body = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.length;
  }
  return [response, body];
}
