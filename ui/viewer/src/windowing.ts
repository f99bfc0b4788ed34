/**
 * Windowing maths, number for number the same as medreview/imaging/display.py (DICOM PS3.3 C.11):
 * modality values -> VOI LUT Sequence or LINEAR window -> MONOCHROME1 inversion -> 0..255, rounded
 * half to even as numpy's rint. Pure functions; tests/imaging/windowing_cases.json holds the cases
 * both test suites check.
 */

export interface Window {
  center: number;
  width: number;
}

/** One item of a VOI LUT Sequence (PS3.3 C.11.2.1.1). */
export interface VoiLut {
  firstMapped: number;
  outputMax: number;
  table: number[];
}

export interface DisplayParams {
  /** An explicit window wins; null uses the VOI LUT (when there is one). */
  window: Window | null;
  voiLut: VoiLut | null;
  /** MONOCHROME1: low values bright, inverted after the VOI step. */
  monochrome1: boolean;
  /** The reader's invert (I), on top of MONOCHROME1. */
  invert: boolean;
}

/** Round half to even, as numpy.rint. */
export function rint(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** PS3.3 C.11.2.1.2.1 LINEAR window: a modality value -> [0, 255], unrounded. */
export function linearWindow(value: number, window: Window): number {
  const { center, width } = window;
  if (width <= 1) {
    // Width 1 is a threshold at center - 0.5 (the formula divides by width - 1).
    return value <= center - 0.5 ? 0 : 255;
  }
  const scaled = ((value - (center - 0.5)) / (width - 1) + 0.5) * 255;
  return Math.min(255, Math.max(0, scaled));
}

/** VOI LUT Sequence: a modality value -> [0, 255] over the LUT's output range, unrounded. */
export function voiLutValue(value: number, lut: VoiLut): number {
  let index = rint(value) - lut.firstMapped;
  index = Math.min(lut.table.length - 1, Math.max(0, index));
  return (lut.table[index] ?? 0) * (255 / lut.outputMax);
}

/** One modality value as shown: 0..255 integer. */
export function displayValue(value: number, params: DisplayParams): number {
  let shown: number;
  if (params.window === null && params.voiLut !== null) {
    shown = voiLutValue(value, params.voiLut);
  } else {
    shown = linearWindow(value, params.window ?? { center: 127.5, width: 256 });
  }
  if (params.monochrome1) shown = 255 - shown;
  const rounded = rint(shown);
  return params.invert ? 255 - rounded : rounded;
}

export type GreyValues = Int16Array | Uint16Array | Float32Array | Uint8Array;

/**
 * A greyscale frame into RGBA bytes. Integer frames go through a lookup table over their own value
 * range (at most 65,536 entries), so a window drag costs one pass over the pixels.
 */
export function renderGrey(values: GreyValues, rgba: Uint8ClampedArray, params: DisplayParams): void {
  const count = values.length;
  if (values instanceof Float32Array) {
    for (let pixel = 0; pixel < count; pixel++) {
      const grey = displayValue(values[pixel] ?? 0, params);
      const offset = pixel * 4;
      rgba[offset] = grey;
      rgba[offset + 1] = grey;
      rgba[offset + 2] = grey;
      rgba[offset + 3] = 255;
    }
    return;
  }
  const lut = integerLut(values, params);
  const rgbaWords = new Uint32Array(rgba.buffer, rgba.byteOffset, count);
  const low = lut.low;
  const words = lut.words;
  for (let pixel = 0; pixel < count; pixel++) {
    rgbaWords[pixel] = words[(values[pixel] as number) - low] as number;
  }
}

interface IntegerLut {
  low: number;
  /** Little-endian RGBA words (0xAABBGGRR), one per value from low. */
  words: Uint32Array;
}

function integerLut(values: GreyValues, params: DisplayParams): IntegerLut {
  let low = Infinity;
  let high = -Infinity;
  for (let pixel = 0; pixel < values.length; pixel++) {
    const value = values[pixel] ?? 0;
    if (value < low) low = value;
    if (value > high) high = value;
  }
  if (low > high) return { low: 0, words: new Uint32Array(1) };
  const words = new Uint32Array(high - low + 1);
  for (let value = low; value <= high; value++) {
    const grey = displayValue(value, params);
    words[value - low] = (0xff000000 | (grey << 16) | (grey << 8) | grey) >>> 0;
  }
  return { low, words };
}

/** An RGB frame (3 bytes a pixel) into RGBA bytes; invert flips it for the reader. */
export function renderColour(values: Uint8Array, rgba: Uint8ClampedArray, invert: boolean): void {
  const count = values.length / 3;
  for (let pixel = 0; pixel < count; pixel++) {
    for (let channel = 0; channel < 3; channel++) {
      const value = values[pixel * 3 + channel] ?? 0;
      rgba[pixel * 4 + channel] = invert ? 255 - value : value;
    }
    rgba[pixel * 4 + 3] = 255;
  }
}

/**
 * The window after a drag of (dx, dy) screen pixels from `start`: right widens, down raises the
 * level (the OHIF / Cornerstone convention). `unitsPerPixel` scales the drag to the value range.
 */
export function draggedWindow(start: Window, dx: number, dy: number, unitsPerPixel: number): Window {
  return {
    center: start.center + dy * unitsPerPixel,
    width: Math.max(1, start.width + dx * unitsPerPixel),
  };
}
