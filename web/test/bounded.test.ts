import { afterEach, describe, expect, it, vi } from "vitest";
import { ReadError, fetchBounded } from "../src/lib/bounded";

/** A fetch that answers with `body` (a stream made per call) and honours the exchange's signal as the platform's does: an abort errors the body. */
function answering(make: (signal: AbortSignal) => { body: ReadableStream<Uint8Array> | null; headers?: Record<string, string>; status?: number }) {
  return vi.fn(async (_url: string, init: RequestInit) => {
    const signal = init.signal!;
    const { body, headers, status } = make(signal);
    return new Response(body, { headers, status: status ?? 200 });
  });
}

const reason = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ReadError);
    return (e as ReadError).reason;
  }
  throw new Error("it did not fail");
};

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("fetchBounded", () => {
  it("returns the body within its bounds, an error status included", async () => {
    vi.stubGlobal("fetch", answering(() => ({ body: new Blob(["{\"error\":\"x\"}"]).stream(), status: 404 })));
    const [response, bytes] = await fetchBounded("https://example.test/a", {}, 64, 1_000);
    expect(response.status).toBe(404);
    expect(new TextDecoder().decode(bytes)).toBe('{"error":"x"}');
  });

  it("refuses a declared length past the bound before reading, and cancels the body", async () => {
    let cancelled = false;
    vi.stubGlobal(
      "fetch",
      // A body that never sends a byte: reading it would end only at the timeout.
      answering(() => ({ headers: { "content-length": "65" }, body: new ReadableStream({ cancel: () => void (cancelled = true) }) })),
    );
    expect(await reason(fetchBounded("https://example.test/a", {}, 64, 1_000))).toBe("too_large");
    expect(cancelled).toBe(true);
  });

  it("stops reading an undeclared body once past the bound", async () => {
    let sent = 0;
    vi.stubGlobal(
      "fetch",
      answering(() => ({
        body: new ReadableStream({
          pull(controller) {
            sent += 16;
            controller.enqueue(new Uint8Array(16));
          },
        }),
      })),
    );
    expect(await reason(fetchBounded("https://example.test/a", {}, 64, 1_000))).toBe("too_large");
    expect(sent).toBeLessThanOrEqual(80 + 16); // the chunk past the bound, and at most one the stream queued ahead
  });

  it("gives up on a body that stalls, as a timeout", async () => {
    vi.stubGlobal(
      "fetch",
      answering((signal) => ({
        body: new ReadableStream({
          start(controller) {
            controller.enqueue(new Uint8Array(8));
            signal.addEventListener("abort", () => controller.error(signal.reason));
          },
        }),
      })),
    );
    expect(await reason(fetchBounded("https://example.test/a", {}, 64, 50))).toBe("timeout");
  });

  it("names a fetch that fails as the network", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async () => {
        throw new TypeError("Failed to fetch");
      }),
    );
    expect(await reason(fetchBounded("https://example.test/a", {}, 64, 1_000))).toBe("network");
  });
});
