/** Frames in the browser: decoding what the server sent and a cache bounded by bytes. */

import type { GreyValues } from "./windowing";
import type { PixelRow } from "./types";

export interface Frame {
  key: string;
  width: number;
  height: number;
  channels: number;
  /** Greyscale modality values, or RGB bytes when channels is 3. */
  values: GreyValues;
}

export function frameKey(imageId: number, frame: number): string {
  return `${imageId}:${frame}`;
}

/** base64 text -> bytes (the browser's own decoder where it has one). */
export function fromBase64(text: string): Uint8Array {
  const withNative = Uint8Array as unknown as { fromBase64?: (value: string) => Uint8Array };
  if (withNative.fromBase64) return withNative.fromBase64(text);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index++) bytes[index] = binary.charCodeAt(index);
  return bytes;
}

/** zlib-wrapped deflate -> bytes, with the browser's own DecompressionStream. */
export async function inflate(compressed: Uint8Array): Promise<ArrayBuffer> {
  const stream = new Blob([compressed as BlobPart]).stream().pipeThrough(new DecompressionStream("deflate"));
  return await new Response(stream).arrayBuffer();
}

/** What the server says of a frame's bytes (a PixelRow without its data). */
export interface FrameMeta {
  key: string;
  dtype: string;
  width: number;
  height: number;
  channels: number;
}

export async function decodeRow(row: FrameMeta & { data: string }): Promise<Frame> {
  return decodeBytes(row, new Uint8Array(await inflate(fromBase64(row.data))));
}

/** A frame from its values' bytes (the runs send them deflated, frame_route.py as they are). */
export function decodeBytes(row: FrameMeta, bytes: Uint8Array): Frame {
  // A part of a batch is copied to a buffer of its own: a typed array needs its alignment, and the
  // batch it came in can go.
  const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
  const buffer = whole ? bytes.buffer : bytes.slice().buffer;
  let values: GreyValues;
  switch (row.dtype) {
    case "int16":
      values = new Int16Array(buffer);
      break;
    case "uint16":
      values = new Uint16Array(buffer);
      break;
    case "float32":
      values = new Float32Array(buffer);
      break;
    case "uint8":
      values = new Uint8Array(buffer);
      break;
    default:
      throw new Error(`unknown pixel type ${row.dtype}`);
  }
  const expected = row.width * row.height * row.channels;
  if (values.length !== expected) {
    throw new Error(`frame ${row.key}: ${values.length} values, expected ${expected}`);
  }
  return { key: row.key, width: row.width, height: row.height, channels: row.channels, values };
}

export type { PixelRow };

/** Decoded frames, least recently used first out, bounded by their bytes. */
export class FrameCache {
  private readonly entries = new Map<string, Frame>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get(key: string): Frame | undefined {
    const frame = this.entries.get(key);
    if (frame) {
      this.entries.delete(key);
      this.entries.set(key, frame);
    }
    return frame;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  put(frame: Frame): void {
    if (this.entries.has(frame.key)) return;
    this.entries.set(frame.key, frame);
    this.bytes += frame.values.byteLength;
    for (const [key, old] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(key);
      this.bytes -= old.values.byteLength;
    }
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}
