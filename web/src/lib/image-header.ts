// An image's size as its own header states it, read from the bytes before anything decodes
// them. A small file can state a huge image: a 250 KB PNG of 16,000 × 16,000 pixels decodes
// to 1 GB, and Chromium takes seconds over it. A sender chooses those bytes, so the app
// decodes, thumbnails and shows inline only an image whose header it reads here and whose
// size is within MAX_DECODED_PIXELS. The format is read from the bytes (as the browser's
// decoder sniffs it), never from the type the sender declared.

export interface Dimensions {
  width: number;
  height: number;
  /** A GIF's frames: each is decoded at this size, on every loop while it is shown. */
  frames?: number;
}

/** The most pixels an image may have to be decoded here: a 64-megapixel photo (the largest phone cameras') decodes to 256 MB. */
export const MAX_DECODED_PIXELS = 64_000_000;

/**
 * The size `bytes` (a whole file) states for its image as PNG, JPEG, GIF, WebP, BMP or AVIF,
 * the largest it may decode to (for GIF, a frame past the screen's edge widens it, and for
 * AVIF the largest of every `ispe`); null when the bytes are none of these, or their header
 * is cut short, malformed or states a side of no pixels (no decoder makes such an image).
 */
export function statedDimensions(bytes: Uint8Array): Dimensions | null {
  const size = headerDimensions(new Bytes(bytes));
  return size && size.width > 0 && size.height > 0 ? size : null;
}

function headerDimensions(reader: Bytes): Dimensions | null {
  if (reader.matches(0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return png(reader);
  if (reader.matches(0, [0xff, 0xd8])) return jpeg(reader);
  if (reader.ascii(0, 6) === "GIF87a" || reader.ascii(0, 6) === "GIF89a") return gif(reader);
  if (reader.ascii(0, 4) === "RIFF" && reader.ascii(8, 4) === "WEBP") return webp(reader);
  if (reader.ascii(0, 2) === "BM") return bmp(reader);
  if (reader.ascii(4, 4) === "ftyp") return avif(reader);
  return null;
}

/** Whether an image of `size` may be decoded here: an animation's frames together count. */
export function withinDecodeBudget(size: Dimensions | null): size is Dimensions {
  return size !== null && size.width > 0 && size.height > 0 && size.width * size.height * (size.frames ?? 1) <= MAX_DECODED_PIXELS;
}

/** Bounds-checked big- and little-endian reads: out of range reads undefined. */
class Bytes {
  constructor(readonly bytes: Uint8Array) {}

  get length(): number {
    return this.bytes.length;
  }

  has(at: number, count: number): boolean {
    return at >= 0 && at + count <= this.bytes.length;
  }

  matches(at: number, expected: number[]): boolean {
    return this.has(at, expected.length) && expected.every((b, i) => this.bytes[at + i] === b);
  }

  ascii(at: number, count: number): string | undefined {
    return this.has(at, count) ? String.fromCharCode(...this.bytes.subarray(at, at + count)) : undefined;
  }

  u8(at: number): number | undefined {
    return this.has(at, 1) ? this.bytes[at] : undefined;
  }

  u16be(at: number): number | undefined {
    return this.has(at, 2) ? (this.bytes[at] << 8) | this.bytes[at + 1] : undefined;
  }

  u16le(at: number): number | undefined {
    return this.has(at, 2) ? this.bytes[at] | (this.bytes[at + 1] << 8) : undefined;
  }

  u24le(at: number): number | undefined {
    return this.has(at, 3) ? this.bytes[at] | (this.bytes[at + 1] << 8) | (this.bytes[at + 2] << 16) : undefined;
  }

  u32be(at: number): number | undefined {
    return this.has(at, 4) ? this.bytes[at] * 2 ** 24 + ((this.bytes[at + 1] << 16) | (this.bytes[at + 2] << 8) | this.bytes[at + 3]) : undefined;
  }

  i32le(at: number): number | undefined {
    return this.has(at, 4) ? this.bytes[at] | (this.bytes[at + 1] << 8) | (this.bytes[at + 2] << 16) | (this.bytes[at + 3] << 24) : undefined;
  }
}

const dimensions = (width: number | undefined, height: number | undefined): Dimensions | null =>
  width === undefined || height === undefined ? null : { width, height };

/** PNG (and APNG, whose frames lie within it): IHDR, the first chunk. */
function png(r: Bytes): Dimensions | null {
  if (r.ascii(12, 4) !== "IHDR") return null;
  return dimensions(r.u32be(16), r.u32be(20));
}

/** Start-of-frame markers: C0–CF but DHT (C4), JPG (C8) and DAC (CC). */
const isStartOfFrame = (marker: number) => marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;

/**
 * JPEG: the first start-of-frame, found by walking the segments (an EXIF thumbnail inside
 * APP1 is stepped over with its segment). None before the scan: unknown (as is a height of 0,
 * left to a later DNL marker).
 */
function jpeg(r: Bytes): Dimensions | null {
  let at = 2;
  for (;;) {
    if (r.u8(at) !== 0xff) return null;
    while (r.u8(at) === 0xff) at++;
    const marker = r.u8(at);
    if (marker === undefined) return null;
    at++;
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue;
    if (marker === 0xd9 || marker === 0xda) return null;
    const length = r.u16be(at);
    if (length === undefined || length < 2) return null;
    if (isStartOfFrame(marker)) return dimensions(r.u16be(at + 5), r.u16be(at + 3));
    at += length;
  }
}

/**
 * GIF: the logical screen, widened by any frame that reaches past it (decoders grow the
 * canvas for such a frame rather than refuse it), and how many frames it has: a few KB of LZW
 * can hold a frame of millions of pixels, and an animation decodes each of them on every loop.
 * Blocks are walked to the trailer, or to where the file ends or stops making sense: a
 * decoder shows the frames before that.
 */
function gif(r: Bytes): Dimensions | null {
  let width = r.u16le(6);
  let height = r.u16le(8);
  const packed = r.u8(10);
  if (width === undefined || height === undefined || packed === undefined) return null;
  let at = 13 + (packed & 0x80 ? 3 * 2 ** ((packed & 7) + 1) : 0);
  let frames = 0;
  const skipSubBlocks = () => {
    for (;;) {
      const size = r.u8(at);
      if (size === undefined) return false;
      at += 1 + size;
      if (size === 0) return true;
    }
  };
  for (;;) {
    const block = r.u8(at);
    if (block === 0x2c) {
      const [left, top, frameWidth, frameHeight, framePacked] = [r.u16le(at + 1), r.u16le(at + 3), r.u16le(at + 5), r.u16le(at + 7), r.u8(at + 9)];
      if (left === undefined || top === undefined || frameWidth === undefined || frameHeight === undefined || framePacked === undefined) break;
      width = Math.max(width, left + frameWidth);
      height = Math.max(height, top + frameHeight);
      frames += 1;
      // The descriptor, the local colour table, the LZW code size, then the image data.
      at += 10 + (framePacked & 0x80 ? 3 * 2 ** ((framePacked & 7) + 1) : 0) + 1;
      if (!skipSubBlocks()) break;
    } else if (block === 0x21) {
      at += 2;
      if (!skipSubBlocks()) break;
    } else {
      break;
    }
  }
  return { width, height, frames: Math.max(1, frames) };
}

/** WebP: the VP8X canvas (which every frame of an animation lies within), or a lossy or lossless bitstream's own header. */
function webp(r: Bytes): Dimensions | null {
  switch (r.ascii(12, 4)) {
    case "VP8 ": {
      // A key frame's tag, then its start code.
      if (!r.matches(23, [0x9d, 0x01, 0x2a])) return null;
      const [width, height] = [r.u16le(26), r.u16le(28)];
      return dimensions(width === undefined ? undefined : width & 0x3fff, height === undefined ? undefined : height & 0x3fff);
    }
    case "VP8L": {
      const [signature, b0, b1, b2, b3] = [r.u8(20), r.u8(21), r.u8(22), r.u8(23), r.u8(24)];
      if (signature !== 0x2f || b0 === undefined || b1 === undefined || b2 === undefined || b3 === undefined) return null;
      return { width: 1 + (b0 | ((b1 & 0x3f) << 8)), height: 1 + ((b1 >> 6) | (b2 << 2) | ((b3 & 0x0f) << 10)) };
    }
    case "VP8X": {
      const [width, height] = [r.u24le(24), r.u24le(27)];
      return dimensions(width === undefined ? undefined : width + 1, height === undefined ? undefined : height + 1);
    }
    default:
      return null;
  }
}

/** BMP: the DIB header (OS/2's 12-byte one, or the Windows ones of 40 bytes and more, where a negative height means top-down rows). */
function bmp(r: Bytes): Dimensions | null {
  const headerSize = r.i32le(14);
  if (headerSize === 12) return dimensions(r.u16le(18), r.u16le(20));
  if (headerSize === undefined || headerSize < 40) return null;
  const [width, height] = [r.i32le(18), r.i32le(22)];
  if (width === undefined || height === undefined || width <= 0 || height === -(2 ** 31)) return null;
  return { width, height: Math.abs(height) };
}

/**
 * AVIF (ISO BMFF): the largest width and the largest height among the `ispe` properties in
 * meta/iprp/ipco (a grid's output size is its own item's `ispe`). A file with none is unknown,
 * and so is one with tracks (a `moov` box: an image sequence): decoders show its track,
 * whose size no `ispe` states, even beside a small still image (libavif does for the brand
 * `avis`, and for any brand but `avif`).
 */
function avif(r: Bytes): Dimensions | null {
  const boxes = (start: number, end: number): { type: string; body: number; end: number }[] => {
    const found = [];
    let at = start;
    while (at + 8 <= end) {
      let size = r.u32be(at);
      const type = r.ascii(at + 4, 4);
      if (size === undefined || type === undefined) break;
      let body = at + 8;
      if (size === 1) {
        // A 64-bit size: past 2^53 it is nothing a browser holds anyway.
        const high = r.u32be(at + 8);
        const low = r.u32be(at + 12);
        if (high === undefined || low === undefined) break;
        size = high * 2 ** 32 + low;
        body = at + 16;
      } else if (size === 0) {
        size = end - at;
      }
      if (size < body - at || at + size > end) break;
      found.push({ type, body, end: at + size });
      at += size;
    }
    return found;
  };
  const child = (list: { type: string; body: number; end: number }[], type: string) => list.find((box) => box.type === type);
  const top = boxes(0, r.length);
  if (top[0]?.type !== "ftyp" || child(top, "moov")) return null;
  const meta = child(top, "meta");
  // meta, like ispe, is a full box: a version and flags come first.
  const iprp = meta && child(boxes(meta.body + 4, meta.end), "iprp");
  const ipco = iprp && child(boxes(iprp.body, iprp.end), "ipco");
  if (!ipco) return null;
  const sizes = boxes(ipco.body, ipco.end)
    .filter((box) => box.type === "ispe")
    .map((ispe) => (ispe.end - ispe.body >= 12 ? dimensions(r.u32be(ispe.body + 4), r.u32be(ispe.body + 8)) : null));
  if (sizes.length === 0 || sizes.includes(null)) return null;
  // A fold, not Math.max(...): a file may hold more boxes than a call takes arguments.
  return (sizes as Dimensions[]).reduce((most, s) => ({ width: Math.max(most.width, s.width), height: Math.max(most.height, s.height) }));
}
