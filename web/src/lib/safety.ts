// Safety numbers: one number per pair of keys, the same on both sides, that two people compare
// (aloud, side by side, or by scanning the QR code of the same digits) to know that no one
// swapped a key between them. Derivation (docs/PROTOCOL.md §2.3), after Signal's:
//   half(key) = first 30 bytes of SHA-512^5200 over ("kez-safety-number-v1" || key), each
//   5-byte group read big-endian mod 100000 as 5 digits (30 digits, about 99.6 bits);
//   number = the two halves sorted as strings and concatenated (60 digits).
// Sorting makes it order-independent; the 5200 iterations make a targeted search for a key
// whose half matches another's cost 2^12 times more per try.
import { sha512 } from "@noble/hashes/sha2.js";
import { concatBytes, utf8ToBytes } from "@noble/hashes/utils.js";

const CONTEXT = utf8ToBytes("kez-safety-number-v1");
const ITERATIONS = 5200;

/** The 30 digits one key contributes. */
export function safetyHalf(publicKey: Uint8Array): string {
  let hash = sha512(concatBytes(CONTEXT, publicKey));
  for (let i = 1; i < ITERATIONS; i++) hash = sha512(concatBytes(hash, publicKey));
  let digits = "";
  for (let i = 0; i < 30; i += 5) {
    const group = hash.subarray(i, i + 5).reduce((n, byte) => n * 256 + byte, 0);
    digits += String(group % 100_000).padStart(5, "0");
  }
  return digits;
}

/** The pair's 60-digit safety number (the QR code holds exactly these digits). */
export function safetyNumber(a: Uint8Array, b: Uint8Array): string {
  return [safetyHalf(a), safetyHalf(b)].sort().join("");
}

/** The number in twelve groups of five, as people read it. */
export const groupedDigits = (n: string): string[] => n.match(/\d{5}/g) ?? [];

/** Whether what someone typed, pasted or scanned is this number (spaces and dashes ignored). */
export function sameSafetyNumber(expected: string, given: string): boolean {
  return given.replace(/[\s-]/g, "") === expected;
}

/**
 * The number as a QR code (SVG) that this app's own scanner reads. The decoder it uses
 * (@paulmillr/qr) misreads about 1 in 130 of these codes, for some of the mask patterns the
 * encoder picks: the code is drawn with the first mask (the encoder's own choice first) whose
 * plain raster reads back (`readableMask`).
 */
export async function safetyQR(number: string): Promise<string> {
  const { default: encodeQR } = await import("@paulmillr/qr");
  return encodeQR(number, "svg", { mask: await readableMask(number) });
}

/** The first mask (undefined: the encoder's choice) whose code for `text` reads back. */
export async function readableMask(text: string): Promise<number | undefined> {
  const [{ default: encodeQR }, { decodeQR }] = await Promise.all([import("@paulmillr/qr"), import("@paulmillr/qr/decode.js")]);
  for (const mask of [undefined, 0, 1, 2, 3, 4, 5, 6, 7]) {
    try {
      if (decodeQR(raster(encodeQR(text, "raw", { mask }))) === text) return mask;
    } catch {
      // not read back: the next mask
    }
  }
  return undefined;
}

/** QR modules as RGBA pixels, 4 per module, with a quiet zone of 4 modules. */
export function raster(modules: boolean[][]): { width: number; height: number; data: Uint8ClampedArray } {
  const [scale, quiet] = [4, 4];
  const size = (modules.length + 2 * quiet) * scale;
  const data = new Uint8ClampedArray(size * size * 4).fill(255);
  modules.forEach((row, y) =>
    row.forEach((dark, x) => {
      if (!dark) return;
      for (let dy = 0; dy < scale; dy++) {
        const start = (((y + quiet) * scale + dy) * size + (x + quiet) * scale) * 4;
        data.fill(0, start, start + scale * 4);
        for (let dx = 0; dx < scale; dx++) data[start + dx * 4 + 3] = 255;
      }
    }),
  );
  return { width: size, height: size, data };
}
