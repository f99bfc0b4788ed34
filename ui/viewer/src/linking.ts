/**
 * How the viewports of a case move together (pure functions, like Cornerstone3D's synchronizers):
 * which viewport is active after Tab, which slice of each other series lies nearest a slice position,
 * and which viewports a window change reaches.
 *
 * A slice position is the image's position along its series' normal in mm (ImagePositionPatient
 * projected on the slice normal; ui/viewer.py sends one per slice, null when the file has none).
 * Positions compare only between series that share a frame of reference (FrameOfReferenceUID): two
 * acquisitions of the same patient in different scanner sessions have unrelated coordinates.
 */

/** What the linking needs of one viewport. */
export interface LinkedSeries {
  /** FrameOfReferenceUID (remapped as the store keeps it); null or "" when unknown. */
  frameOfReference: string | null;
  /** Position of each slice along the normal, mm, in the viewport's slice order (null: unknown). */
  positions: readonly (number | null)[];
  /** The slice on screen (index into `positions`). */
  index: number;
}

/** The viewport Tab (or Shift+Tab, `backwards`) makes active among `count`. */
export function nextViewport(active: number, count: number, backwards = false): number {
  if (count <= 0) return 0;
  return (((active + (backwards ? -1 : 1)) % count) + count) % count;
}

/** The index of the slice nearest `position` (the first of equals); -1 when no slice has a position. */
export function nearestSliceIndex(positions: readonly (number | null)[], position: number): number {
  let best = -1;
  let bestDistance = Number.POSITIVE_INFINITY;
  positions.forEach((candidate, index) => {
    if (candidate === null || !Number.isFinite(candidate)) return;
    const distance = Math.abs(candidate - position);
    if (distance < bestDistance) {
      best = index;
      bestDistance = distance;
    }
  });
  return best;
}

/**
 * Where the other viewports go when viewport `source` shows its slice `series[source].index`: for
 * each viewport sharing its frame of reference (and knowing its slices' positions), the slice nearest
 * the source slice's position. Viewports with another or no frame of reference, and the source
 * itself, are not in the answer; nor is any when the source slice has no position.
 */
export function linkedSlices(series: readonly LinkedSeries[], source: number): Map<number, number> {
  const moves = new Map<number, number>();
  const from = series[source];
  if (!from || !from.frameOfReference) return moves;
  const position = from.positions[from.index];
  if (position === null || position === undefined || !Number.isFinite(position)) return moves;
  series.forEach((other, index) => {
    if (index === source || other.frameOfReference !== from.frameOfReference) return;
    const nearest = nearestSliceIndex(other.positions, position);
    if (nearest >= 0 && nearest !== other.index) moves.set(index, nearest);
  });
  return moves;
}

/**
 * The viewports a window change in `source` reaches: the source alone, or with the link on every
 * other greyscale viewport (colour images have no window).
 */
export function windowTargets(colour: readonly boolean[], source: number, linked: boolean): number[] {
  if (!linked) return [source];
  return colour.map((isColour, index) => (index === source || !isColour ? index : -1)).filter((index) => index >= 0);
}

/** Grid layouts by name: (rows, columns). */
export const LAYOUTS: Record<string, { rows: number; columns: number }> = {
  "1x1": { rows: 1, columns: 1 },
  "1x2": { rows: 1, columns: 2 },
  "1x3": { rows: 1, columns: 3 },
  "2x2": { rows: 2, columns: 2 },
};

/** A layout by name, or the smallest of the known ones that holds `viewports` (unknown names). */
export function layoutOf(name: string, viewports: number): { rows: number; columns: number } {
  const known = LAYOUTS[name];
  if (known) return known;
  if (viewports <= 1) return LAYOUTS["1x1"] as { rows: number; columns: number };
  if (viewports === 2) return LAYOUTS["1x2"] as { rows: number; columns: number };
  if (viewports === 3) return LAYOUTS["1x3"] as { rows: number; columns: number };
  return LAYOUTS["2x2"] as { rows: number; columns: number };
}
