/** Moving through the worklist viewer's images, slices and frames, and the reads a class key makes. */

import { KEY_MARK, mark } from "./marks";
import type { Box, PendingSave } from "./types";
import type { Viewer } from "./viewer";
import * as viewerpaint from "./viewerpaint";
import * as viewersync from "./viewersync";
import { END } from "./worklist";

/** Go to a worklist image. */
export function open(v: Viewer, imageId: number, remember: boolean): void {
  if (remember && v.current !== null && v.current !== imageId) v.worklist.leave(v.current);
  if (imageId !== v.current) v.tools.imageChanged(); // a tool does not carry over to the next image
  v.current = imageId;
  v.shown = imageId;
  v.atEnd = null;
  v.waitingForNext = false;
  v.frame = 0;
  v.unsure = false;
  v.multiSelection = new Set(v.info(imageId)?.labels ?? []);
  v.selectedBox = null;
  v.draftBox = null;
  v.ruler = null;
  v.renderer.camera.fitted = true;
  viewerpaint.paint(v);
  viewersync.sync(v, false);
}

export function nextImage(v: Viewer): number | null {
  if (v.current === null) return null;
  return v.worklist.next(v.current, v.data?.mode === "label");
}

export function advance(v: Viewer): void {
  if (v.current === null && v.atEnd !== null) return openFirstLeft(v);
  const next = nextImage(v);
  if (next === END) {
    // Past the last image: the server says what is left to do on the list (the report below
    // carries the reads still pending, saved before it counts).
    if (v.current !== null) v.worklist.leave(v.current);
    v.current = null;
    v.shown = null;
    v.atEnd = "unknown";
    v.tools.imageChanged();
    // Nothing is on screen past the end: not the last image under the message.
    v.painted = null;
    for (const pane of v.panes) {
      pane.renderer.clear();
      pane.annotate(null, null, null);
    }
    delete v.root.dataset.paintedImage;
    viewerpaint.paint(v);
    viewersync.sync(v, false);
    return;
  }
  if (next === null) {
    // The next link has not arrived yet: it will, with the next data from the server.
    viewerpaint.showMessage(v, "Loading the next image…");
    v.waitingForNext = true;
    return;
  }
  open(v, next, true);
}

export function back(v: Viewer): void {
  const previous = v.worklist.back();
  if (previous !== undefined) open(v, previous, false);
  else viewerpaint.flashStatus(v, "Back: this is the first image you opened on this list.");
}

/** Past the list's end: open the first image of the list still to do. */
export function openFirstLeft(v: Viewer): void {
  const first = v.atEnd !== null && v.atEnd !== "unknown" ? v.atEnd.first : null;
  if (first !== null) open(v, first, false);
}

export function stepSlice(v: Viewer, delta: number): void {
  const info = v.info(v.shown);
  const series = info?.series;
  if (!series || series.length < 2 || v.shown === null) return;
  const index = series.indexOf(v.shown);
  const target = series[Math.min(series.length - 1, Math.max(0, index + delta))];
  if (target === undefined || target === v.shown) return;
  v.scrollDirection = delta > 0 ? 1 : -1;
  v.shown = target;
  v.frame = 0;
  v.requestPaint();
  viewersync.sync(v, false);
}

export function stepFrame(v: Viewer, delta: number): void {
  const info = v.info(v.shown);
  if (!info || info.frames < 2) return;
  v.frame = (v.frame + delta + info.frames) % info.frames;
  v.scrollDirection = delta > 0 ? 1 : -1;
  v.requestPaint();
  viewersync.sync(v, false);
}

/**
 * The image a key made at `eventTime` (the event's own timeStamp, on performance.now()'s clock)
 * labels: the one on screen, when its pixels had been painted for the bounce guard's time by
 * then. The key's own time, not the time it is handled: a key held up behind a busy page must not
 * label an image painted after it was pressed, or just before.
 */
export function labelTarget(v: Viewer, eventTime: number): number | null {
  if (!v.painted || v.shown === null || v.painted.imageId !== v.shown) return null;
  const minimum = (v.data?.minSecondsOnScreen ?? 0) * 1000;
  if (eventTime - v.painted.firstAt < minimum) return null;
  return v.shown;
}

export function boxesOf(v: Viewer, imageId: number): Box[] {
  return v.tools.boxesOf(imageId, v.info(imageId)?.boxes ?? []);
}

export function save(v: Viewer, label: string | null, labels: string[] | null, thenNext: boolean, eventTime: number): void {
  if (v.signedOut !== null || v.left || !v.data) return;
  const target = labelTarget(v, eventTime);
  if (target === null) {
    viewerpaint.flashStatus(v, "Not saved: the image was not on screen yet.");
    return;
  }
  mark(KEY_MARK, { imageId: target });
  // Active seconds (activetime.ts): visible, and without idle gaps over a minute.
  const seconds = v.painted ? v.clock.seconds(eventTime) : 0;
  const save: PendingSave = {
    seq: Date.now() * 1000 + Math.floor(Math.random() * 1000),
    imageId: target,
    label,
    labels,
    boxes: v.data.boxesEnabled ? boxesOf(v, target) : null,
    seconds: Math.round(seconds * 100) / 100,
    unsure: v.unsure,
    owner: v.data.owner,
  };
  v.pending.add(save);
  v.worklist.markLabelled(target);
  if (v.data.boxesEnabled) v.tools.taken(target);
  const info = v.info(target);
  if (info) {
    if (label !== null) info.label = label;
    if (labels !== null) info.labels = labels;
    info.read = true;
  }
  if (thenNext) advance(v);
  else viewerpaint.paint(v);
  // The read shows as saving at once: past the list's last image nothing is painted, and the
  // status would go on saying "all reads saved" until the server answered.
  viewerpaint.renderStatus(v);
  viewersync.sync(v, false);
}
