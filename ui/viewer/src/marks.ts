/**
 * The viewer's `performance.mark` entries: `medreview:paint` on every paint and `medreview:key` when a
 * class key is accepted (bench/reading.py times the viewer with them, through a PerformanceObserver).
 *
 * The browser keeps every mark until it is cleared: a CT scroll left 2,270 and a reading day would
 * leave hundreds of thousands. The viewer clears its own once they pass MARKS_KEPT; an observer sees
 * each mark as it is made, cleared or not.
 */

export const PAINT_MARK = "medreview:paint";
export const KEY_MARK = "medreview:key";
/** Marks of the viewer held by the browser at most (a few seconds of scrolling). */
export const MARKS_KEPT = 256;

let made = 0;

/** Make a mark; the viewer's earlier ones go first once MARKS_KEPT are held (the newest stays). */
export function mark(name: typeof PAINT_MARK | typeof KEY_MARK, detail: Record<string, unknown>): void {
  if (made >= MARKS_KEPT) {
    performance.clearMarks(PAINT_MARK);
    performance.clearMarks(KEY_MARK);
    made = 0;
  }
  performance.mark(name, { detail });
  made += 1;
}
