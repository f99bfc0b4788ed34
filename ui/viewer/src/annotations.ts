/**
 * What a PACS viewer writes on the image (pure functions; the viewer puts them in a viewport's
 * corners): the slice or frame, the window and its preset name, the zoom, modality and series, the
 * scale bar. Nothing here may name the patient: the corners carry the image's position and display
 * only, and the series as the de-identified description filed at import.
 */

/** The text of a viewport's four corners, line by line (already plain text: escaped when drawn). */
export interface Corners {
  topLeft: string[];
  topRight: string[];
  bottomLeft: string[];
  bottomRight: string[];
}

export interface CornerFacts {
  /** 1-based slice of a series, with the series length; null for a lone image. */
  slice: { index: number; count: number } | null;
  frame: { index: number; count: number } | null;
  /** The window shown (null: colour, or a VOI LUT), and the preset it came from, if one. */
  window: { center: number; width: number } | null;
  windowName: string | null;
  voiLut: boolean;
  inverted: boolean;
  /** Per cent: 100 is one image pixel per screen pixel. */
  zoom: number;
  modality: string;
  /** The series as described at import (coded values and geometry only); "" when none. */
  series: string;
  /** What a map viewport shows over the image ("Grad-CAM: pneumonia"); null elsewhere. */
  map: string | null;
}

export function cornerText(facts: CornerFacts): Corners {
  const topLeft: string[] = [];
  if (facts.slice) topLeft.push(`Slice ${facts.slice.index}/${facts.slice.count}`);
  if (facts.frame) topLeft.push(`Frame ${facts.frame.index}/${facts.frame.count}`);
  const topRight = [facts.series ? `${facts.modality} · ${facts.series}` : facts.modality].filter(Boolean);
  if (facts.map) topRight.push(facts.map);
  const bottomLeft: string[] = [];
  if (facts.windowName) bottomLeft.push(`W/L: ${facts.windowName}`);
  if (facts.window) bottomLeft.push(`W ${Math.round(facts.window.width)} L ${Math.round(facts.window.center)}`);
  else if (facts.voiLut) bottomLeft.push("VOI LUT");
  if (facts.inverted) bottomLeft.push("inverted");
  return { topLeft, topRight, bottomLeft, bottomRight: [`Zoom ${Math.round(facts.zoom)}%`] };
}

/** Lengths a scale bar may take, in mm: 1, 2, 5, 10, 20, 50, ... 500. */
const ROUND_MM = [1, 2, 5, 10, 20, 50, 100, 200, 500];

/**
 * A scale bar: the longest round length in mm that fits in `maxScreenPixels` at `screenPixelsPerMm`,
 * and its length on screen; null when no round length is at least `minScreenPixels` long (or the
 * spacing is unknown: never a bar in pixels passed off as mm).
 */
export function scaleBar(
  screenPixelsPerMm: number | null,
  maxScreenPixels: number,
  minScreenPixels = 24,
): { mm: number; pixels: number } | null {
  if (!screenPixelsPerMm || !Number.isFinite(screenPixelsPerMm) || screenPixelsPerMm <= 0) return null;
  let best: { mm: number; pixels: number } | null = null;
  for (const mm of ROUND_MM) {
    const pixels = mm * screenPixelsPerMm;
    if (pixels > maxScreenPixels) break;
    if (pixels >= minScreenPixels) best = { mm, pixels };
  }
  return best;
}
