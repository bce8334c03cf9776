// Images as people send and see them: large ones shown as a thumbnail made here from the
// decoded image (never by a server), and iPhone photos (HEIC) turned into JPEG before sending
// when this browser can decode them. An image is decoded only when its header states a size
// this app will decode (image-header.ts), and one at a time.

import { type Dimensions, statedDimensions, withinDecodeBudget } from "./image-header";

/** A thumbnail's longest side, in pixels. */
export const THUMBNAIL_SIDE = 640;
/** Images up to this size, and no wider than a thumbnail, are shown as they are. */
const SHOWN_AS_IS_BYTES = 256 * 1024;

/** An image whose own header states a size this app decodes (`checkImage`): only these are decoded. */
export class DecodableImage {
  private constructor(readonly blob: Blob) {}

  static from(blob: Blob, size: Dimensions | null): DecodableImage | null {
    return withinDecodeBudget(size) ? new DecodableImage(blob) : null;
  }
}

/** What an image's header allows: decoding it, or only offering it as a file (too large, or a header this app cannot read). */
export type ImageCheck = { kind: "decodable"; image: DecodableImage } | { kind: "too-large"; size: Dimensions } | { kind: "unreadable" };

/** Reads `blob`'s header (never decoding it) to tell whether it may be shown inline, thumbnailed and opened full size. */
export async function checkImage(blob: Blob): Promise<ImageCheck> {
  const size = statedDimensions(new Uint8Array(await blob.arrayBuffer()));
  const image = DecodableImage.from(blob, size);
  if (image) return { kind: "decodable", image };
  return size ? { kind: "too-large", size } : { kind: "unreadable" };
}

/** The decode in progress: a chat of many large images decodes them in turn, not all at once. */
let decoding: Promise<unknown> = Promise.resolve();

function inTurn<T>(work: () => Promise<T>): Promise<T> {
  const run = decoding.then(work, work);
  decoding = run.catch(() => {});
  return run;
}

/** A downscaled copy of `image` for its bubble; null when it is small enough as it is, animated (GIF), or cannot be decoded after all. */
export async function thumbnail(image: DecodableImage, side = THUMBNAIL_SIDE): Promise<Blob | null> {
  if (image.blob.type === "image/gif") return null;
  return inTurn(() => downscaled(image.blob, side));
}

async function downscaled(image: Blob, side: number): Promise<Blob | null> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(image);
  } catch {
    return null;
  }
  try {
    const scale = Math.min(1, side / Math.max(bitmap.width, bitmap.height));
    if (scale === 1 && image.size <= SHOWN_AS_IS_BYTES) return null;
    return await encode(bitmap, Math.max(1, Math.round(bitmap.width * scale)), Math.max(1, Math.round(bitmap.height * scale)), "image/webp");
  } catch {
    return null;
  } finally {
    bitmap.close();
  }
}

async function encode(bitmap: ImageBitmap, width: number, height: number, type: string): Promise<Blob> {
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d");
  if (!context) throw new Error("no 2d context");
  context.drawImage(bitmap, 0, 0, width, height);
  return canvas.convertToBlob({ type, quality: 0.85 });
}

const isHeic = (file: File) => /^image\/hei[cf]$/i.test(file.type) || /\.hei[cf]$/i.test(file.name);

/** The file to send: a HEIC photo as JPEG when this browser decodes HEIC (Safari does), otherwise the file as it is. */
export async function sendable(file: File): Promise<File> {
  if (!isHeic(file)) return file;
  try {
    const bitmap = await createImageBitmap(file);
    try {
      const jpeg = await encode(bitmap, bitmap.width, bitmap.height, "image/jpeg");
      if (jpeg.type !== "image/jpeg") return file;
      return new File([jpeg], file.name.replace(/\.hei[cf]$/i, "") + ".jpg", { type: "image/jpeg" });
    } finally {
      bitmap.close();
    }
  } catch {
    return file;
  }
}

/** Files among what was pasted or dropped. */
export function filesOf(data: DataTransfer | null): File[] {
  if (!data) return [];
  return [...data.files];
}
