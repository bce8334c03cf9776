// Reading an image's stated size from its header (image-header.ts) before anything decodes
// it: real encoder output (Chromium's JPEG and WebP encoders, in fixtures/), each format's
// header built byte by byte, the traps a sender could set (an EXIF thumbnail's frame, a GIF
// frame past its screen, a small `ispe` beside a large one), and files cut short.
import { describe, expect, it } from "vitest";
import { MAX_DECODED_PIXELS, statedDimensions, withinDecodeBudget } from "../src/lib/image-header";
import jpeg301x203 from "./fixtures/chromium-301x203.jpg?inline";
import lossless301x203 from "./fixtures/chromium-301x203-lossless.webp?inline";
import lossy301x203 from "./fixtures/chromium-301x203-lossy.webp?inline";

/** A fixture's bytes, from the data URL Vite inlines it as. */
const fixture = (dataUrl: string) => Uint8Array.from(atob(dataUrl.slice(dataUrl.indexOf(",") + 1)), (c) => c.charCodeAt(0));
const bytes = (...parts: (number[] | string | Uint8Array)[]) =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === "string" ? [...p].map((c) => c.charCodeAt(0)) : [...p])));
const u16be = (n: number) => [n >> 8, n & 0xff];
const u16le = (n: number) => [n & 0xff, n >> 8];
const u24le = (n: number) => [n & 0xff, (n >> 8) & 0xff, n >> 16];
const u32be = (n: number) => [n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
const i32le = (n: number) => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff];

const png = (width: number, height: number) => bytes([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], u32be(13), "IHDR", u32be(width), u32be(height), [8, 6, 0, 0, 0], [0, 0, 0, 0]);
const segment = (marker: number, body: number[]) => [0xff, marker, ...u16be(body.length + 2), ...body];
const sof = (marker: number, width: number, height: number) => segment(marker, [8, ...u16be(height), ...u16be(width), 1, 1, 0x11, 0]);
/** An EXIF APP1 whose embedded thumbnail is a whole JPEG (with its own, small, frame). */
const exifWithThumbnail = segment(0xe1, [...bytes("Exif", [0, 0]), 0xff, 0xd8, ...sof(0xc0, 160, 120), 0xff, 0xd9]);

describe("statedDimensions", () => {
  it("reads real encoder output: Chromium's JPEG, lossy and lossless WebP", () => {
    for (const [name, file] of Object.entries({ jpeg301x203, lossy301x203, lossless301x203 })) {
      expect(fixture(file).length, name).toBeGreaterThan(1000);
      expect(statedDimensions(fixture(file)), name).toEqual({ width: 301, height: 203 });
    }
  });

  it("reads PNG's IHDR, and nothing that is not one", () => {
    expect(statedDimensions(png(16000, 16000))).toEqual({ width: 16000, height: 16000 });
    expect(statedDimensions(png(2 ** 31, 1))).toEqual({ width: 2 ** 31, height: 1 });
    // A side of no pixels is no size to go by: unreadable, not "too large".
    expect(statedDimensions(png(0, 100))).toBeNull();
    expect(statedDimensions(png(100, 0))).toBeNull();
    const notIhdr = png(10, 10);
    notIhdr.set(bytes("IDAT"), 12);
    expect(statedDimensions(notIhdr)).toBeNull();
  });

  it("finds JPEG's frame by walking the segments, past an EXIF thumbnail, a Huffman table and fill bytes", () => {
    const jpeg = bytes([0xff, 0xd8], segment(0xe0, [...bytes("JFIF"), 0, 1, 1, 0, 0, 1, 0, 1, 0, 0]), exifWithThumbnail, segment(0xc4, [0, 1, 2, 3]), [0xff, 0xff], sof(0xc2, 8000, 6000), segment(0xda, [1, 1, 0, 0, 0x3f, 0]));
    expect(statedDimensions(jpeg)).toEqual({ width: 8000, height: 6000 });
  });

  it("finds no JPEG frame before the scan, none with a height left to a DNL marker, none in a file cut short", () => {
    expect(statedDimensions(bytes([0xff, 0xd8], segment(0xda, [0]), sof(0xc0, 10, 10)))).toBeNull();
    expect(statedDimensions(bytes([0xff, 0xd8], sof(0xc0, 100, 0)))).toBeNull();
    const whole = bytes([0xff, 0xd8], exifWithThumbnail, sof(0xc0, 640, 480));
    expect(statedDimensions(whole)).toEqual({ width: 640, height: 480 });
    for (let cut = 0; cut < whole.length - 4; cut++) expect(statedDimensions(whole.subarray(0, cut)), `cut at ${cut}`).toBeNull();
  });

  const gifHeader = (width: number, height: number, globalTable: boolean) => [...bytes("GIF89a"), ...u16le(width), ...u16le(height), globalTable ? 0x80 : 0, 0, 0, ...(globalTable ? [0, 0, 0, 255, 255, 255] : [])];
  const frame = (left: number, top: number, width: number, height: number) => [0x2c, ...u16le(left), ...u16le(top), ...u16le(width), ...u16le(height), 0x80, 0, 0, 0, 9, 9, 9, 2, 2, 0x44, 0x01, 0];
  const graphicControl = [0x21, 0xf9, 4, 1, 0, 0, 0, 0];

  it("reads GIF's screen, widened by any frame that reaches past it", () => {
    expect(statedDimensions(bytes(gifHeader(10, 10, true), graphicControl, frame(0, 0, 10, 10), [0x3b]))).toEqual({ width: 10, height: 10, frames: 1 });
    const wide = bytes(gifHeader(10, 10, true), frame(0, 0, 10, 10), graphicControl, frame(5, 2, 20, 30), [0x3b]);
    expect(statedDimensions(wide)).toEqual({ width: 25, height: 32, frames: 2 });
  });

  it("counts a GIF's frames up to where the file is cut short", () => {
    const whole = bytes(gifHeader(10, 10, false), frame(0, 0, 4000, 10), frame(0, 0, 10, 4000));
    // The second frame's descriptor cut short: the first frame's size stands.
    expect(statedDimensions(whole.subarray(0, -15))).toEqual({ width: 4000, height: 10, frames: 1 });
    // Its descriptor whole but its data cut short: it counts (a decoder shows what arrived).
    expect(statedDimensions(whole.subarray(0, -5))).toEqual({ width: 4000, height: 4000, frames: 2 });
    expect(statedDimensions(bytes("GIF89a", [1, 0]))).toBeNull();
  });

  it("counts every frame of a GIF against the decode budget: a few KB can hold many large frames", () => {
    const animation = (frames: number) => bytes(gifHeader(2000, 2000, true), ...Array.from({ length: frames }, () => [...graphicControl, ...frame(0, 0, 2000, 2000)]), [0x3b]);
    // 4 Mpx a frame: 16 frames are the budget's 64 Mpx, 17 are past it.
    expect(statedDimensions(animation(16))).toEqual({ width: 2000, height: 2000, frames: 16 });
    expect(withinDecodeBudget(statedDimensions(animation(16)))).toBe(true);
    expect(withinDecodeBudget(statedDimensions(animation(17)))).toBe(false);
    expect(animation(17).length).toBeLessThan(1024);
  });

  it("reads WebP's VP8X canvas, and the lossy and lossless bitstreams' own headers", () => {
    const riff = (chunk: string, body: number[]) => bytes("RIFF", u32be(0), "WEBP", chunk, i32le(body.length), body);
    expect(statedDimensions(riff("VP8X", [0x10, 0, 0, 0, ...u24le(16383), ...u24le(9999)]))).toEqual({ width: 16384, height: 10000 });
    expect(statedDimensions(riff("VP8 ", [0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, ...u16le(640 | 0x4000), ...u16le(480)]))).toEqual({ width: 640, height: 480 });
    expect(statedDimensions(riff("VP8 ", [0x50, 0x42, 0x00, 0x00, 0x00, 0x00, ...u16le(640), ...u16le(480)])), "no start code").toBeNull();
    // 14 bits each of width - 1 (639) and height - 1 (479), after the 0x2f signature.
    const packed = 639 | (479 << 14);
    expect(statedDimensions(riff("VP8L", [0x2f, packed & 0xff, (packed >> 8) & 0xff, (packed >> 16) & 0xff, (packed >>> 24) & 0xff]))).toEqual({ width: 640, height: 480 });
  });

  it("reads BMP's Windows and OS/2 headers; a negative height is top-down, a negative width nothing", () => {
    const windows = (width: number, height: number) => bytes("BM", i32le(0), i32le(0), i32le(54), i32le(40), i32le(width), i32le(height), u16le(1), u16le(24));
    expect(statedDimensions(windows(1600, 1100))).toEqual({ width: 1600, height: 1100 });
    expect(statedDimensions(windows(1600, -1100))).toEqual({ width: 1600, height: 1100 });
    expect(statedDimensions(windows(-1600, 1100))).toBeNull();
    expect(statedDimensions(bytes("BM", i32le(0), i32le(0), i32le(26), i32le(12), u16le(300), u16le(200), u16le(1), u16le(24)))).toEqual({ width: 300, height: 200 });
  });

  const box = (type: string, ...body: (number[] | Uint8Array)[]) => {
    const content = bytes(...body);
    return bytes(u32be(content.length + 8), type, content);
  };
  const fullBox = (type: string, ...body: (number[] | Uint8Array)[]) => box(type, [0, 0, 0, 0], ...body);
  const ispe = (width: number, height: number) => fullBox("ispe", u32be(width), u32be(height));
  const avif = (...properties: Uint8Array[]) => bytes(box("ftyp", bytes("avif"), u32be(0), bytes("mif1")), fullBox("meta", fullBox("hdlr", u32be(0), bytes("pict"), new Uint8Array(13)), box("iprp", box("ipco", ...properties))), box("mdat", [1, 2, 3]));

  it("reads AVIF's largest ispe: a grid's output beside its tiles', however the two are ordered", () => {
    expect(statedDimensions(avif(ispe(512, 512), ispe(8192, 6144)))).toEqual({ width: 8192, height: 6144 });
    expect(statedDimensions(avif(ispe(8192, 6144), box("pixi", [3, 8, 8, 8]), ispe(512, 512)))).toEqual({ width: 8192, height: 6144 });
  });

  it("reads AVIF's largest ispe among more boxes than a call takes arguments (a sender's 250,000)", () => {
    const small = ispe(2, 3);
    const many = new Uint8Array(small.length * 250_000);
    for (let i = 1; i < 250_000; i++) many.set(small, i * small.length);
    many.set(ispe(4, 1), 0);
    expect(statedDimensions(avif(many))).toEqual({ width: 4, height: 3 });
  });

  it("knows no AVIF size without an ispe, nor from an ispe cut short, nor past a box that overruns its parent", () => {
    expect(statedDimensions(avif(box("pixi", [3, 8, 8, 8])))).toBeNull();
    expect(statedDimensions(avif(fullBox("ispe", u32be(100))))).toBeNull();
    const overrun = avif(ispe(100, 100));
    const ipcoAt = overrun.findIndex((_, i) => String.fromCharCode(...overrun.subarray(i, i + 4)) === "ipco") - 4;
    overrun.set(u32be(4096), ipcoAt);
    expect(statedDimensions(overrun)).toBeNull();
  });

  it("knows no AVIF size when the file holds tracks: an image sequence's frames are sized by no ispe", () => {
    // A 1 × 1 still image, then a track: whatever the major brand, no size is known.
    const withTrack = (brand: string) => {
      const still = avif(ispe(1, 1));
      still.set(bytes(brand), 8);
      return bytes(still, box("moov", box("trak", fullBox("tkhd", new Uint8Array(80)))));
    };
    expect(statedDimensions(avif(ispe(1, 1)))).toEqual({ width: 1, height: 1 });
    for (const brand of ["avis", "avif", "mif1"]) expect(statedDimensions(withTrack(brand)), brand).toBeNull();
  });

  it("knows nothing of bytes that are no image it reads", () => {
    for (const junk of [new Uint8Array(0), bytes("hello, world"), bytes("<svg xmlns='http://www.w3.org/2000/svg'/>"), bytes([0, 0, 1, 0, 1, 0])]) expect(statedDimensions(junk)).toBeNull();
  });
});

describe("withinDecodeBudget", () => {
  it("takes up to MAX_DECODED_PIXELS, and no empty or unknown image", () => {
    expect(withinDecodeBudget({ width: 8000, height: MAX_DECODED_PIXELS / 8000 })).toBe(true);
    expect(withinDecodeBudget({ width: 8001, height: MAX_DECODED_PIXELS / 8000 })).toBe(false);
    expect(withinDecodeBudget({ width: 16000, height: 16000 })).toBe(false);
    expect(withinDecodeBudget({ width: 0, height: 100 })).toBe(false);
    expect(withinDecodeBudget(null)).toBe(false);
  });
});
