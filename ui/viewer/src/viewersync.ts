/** The viewer's half of the server protocol: the data of each run, what is wanted, the reports (sync). */

import { FrameFetcher } from "./fetcher";
import { announceProgress } from "./follower";
import { decodeRow, frameKey, fromBase64 } from "./frames";
import { overlayCanvas } from "./renderer";
import type { PendingSave, SignedOutData, SyncState, ViewerData } from "./types";
import { MAX_WANTED, PREFETCH_IMAGES, PREFETCH_SLICES, type SetState, type Viewer } from "./viewer";
import * as viewerkeys from "./viewerkeys";
import * as viewernav from "./viewernav";
import * as viewerpaint from "./viewerpaint";
import type { Window } from "./windowing";

export function update(v: Viewer, data: ViewerData | SignedOutData, setState: SetState): void {
  // Signed out is for good: data after it (if any) must not make this viewer send the reads of the
  // user who was signed in to whoever is signed in now.
  if (v.signedOut !== null) return;
  if ("signedOut" in data) {
    signOut(v, data.signedOut);
    return;
  }
  if (v.left) return; // the page is being left: this data is the page's last word
  v.data = data;
  v.setState = setState;
  v.unanswered = false;
  useFrameUrl(v, data.frameUrl ?? null);
  v.setSplit(data.split === true);
  if (data.mode === "label" && data.owner) {
    // Reads this sign-in left unsent in this tab (a page left before the answer, a reload) go
    // with the next report; another sign-in's are dropped unsent.
    let recovered: PendingSave[];
    try {
      recovered = v.pending.adopt(data.owner);
    } catch {
      return signOut(v, "signed in again as someone else"); // never their reads under another sign-in
    }
    for (const save of recovered) v.worklist.markLabelled(save.imageId);
  }
  for (const info of data.images) {
    const known = v.infos.get(info.id);
    v.infos.set(info.id, info);
    // A read made here and not yet acknowledged: the server's copy does not have it yet.
    if (known && v.pending.items.some((save) => save.imageId === info.id)) {
      Object.assign(info, { label: known.label, labels: known.labels, read: known.read });
    }
    for (const sliceId of info.series ?? []) if (!v.seriesSibling.has(sliceId)) v.seriesSibling.set(sliceId, info);
  }
  if (data.listVersion !== v.worklist.listVersion) v.root.dataset.listVersion = data.listVersion;
  v.worklist.update(data.listVersion, data.order, data.order.length < PREFETCH_IMAGES + 1);
  const before = v.pending.length;
  v.pending.acknowledge(data.acked);
  v.savedCount += before - v.pending.length;
  for (const seq of data.acked) v.failed.delete(seq);
  for (const [seq, reason] of Object.entries(data.failed)) v.failed.set(Number(seq), reason);
  if (v.leaving && v.unacknowledged() === 0) {
    const done = v.leaving;
    v.leaving = null;
    done();
    return;
  }
  if (data.mode === "label" && v.current === null && data.position === null && data.left) v.atEnd = data.left;
  for (const [key, reason] of Object.entries(data.missing)) v.missing.set(key, reason);
  for (const row of data.overlays) {
    v.overlays.set(row.key, overlayCanvas(fromBase64(row.data), row.width, row.height, data.colormap));
    v.overlayLabels.set(row.key, row.label);
  }
  // The server moves the viewer when it jumps (a click in the list, a new filter) and to open the
  // first image; not otherwise: data answering an earlier report names where the reader was then.
  if (data.jump !== v.lastJump) {
    v.lastJump = data.jump;
    if (data.position !== null && data.position !== v.current) viewernav.open(v, data.position, false);
  }
  const decoded = data.pixels.filter((row) => !v.cache.has(row.key) && !v.decoding.has(row.key));
  for (const row of decoded) v.decoding.add(row.key);
  Promise.all(
    decoded.map((row) =>
      decodeRow(row)
        .then((frame) => {
          if (v.signedOut === null) v.cache.put(frame); // not a frame that arrives after a sign-out
        })
        .catch((error: unknown) => v.missing.set(row.key, String(error)))
        .finally(() => v.decoding.delete(row.key)),
    ),
  ).then(() => {
    viewerpaint.paint(v);
    sync(v, decoded.length > 0);
  });
  viewerpaint.layout(v);
  viewerpaint.paint(v);
  sync(v, false);
  announce(v);
}

/** The sign-in ended: drop every pixel and overlay, stop asking, keep the unsaved reads shown. */
export function signOut(v: Viewer, reason: string): void {
  v.signedOut = reason || "signed out";
  v.fetcher = null; // a batch on its way is dropped (its frames check the sign-in)
  v.pending.signOut();
  v.leaving?.();
  v.leaving = null;
  viewerkeys.stopCine(v);
  v.cache.clear();
  v.overlays.clear();
  v.drag = null;
  v.current = null;
  v.shown = null;
  v.painted = null;
  for (const pane of v.panes) {
    pane.renderer.clear();
    pane.annotate(null, null, null);
  }
  v.root.dataset.signedOut = "true";
  delete v.root.dataset.paintedImage;
  viewerpaint.paint(v);
}

/**
 * Frames over HTTP (fetcher.ts, ui/frame_route.py) where the server gives a frame URL: a scroll
 * through a series then costs no run of the page. Null: the frames are asked for in the reports.
 */
function useFrameUrl(v: Viewer, url: string | null): void {
  if (url === null) {
    v.fetcher = null;
    return;
  }
  if (v.fetcher) {
    v.fetcher.setUrl(url);
    return;
  }
  v.fetcher = new FrameFetcher(url, {
    frame: (frame) => {
      if (v.signedOut === null) v.cache.put(frame); // not a frame that arrives after a sign-out
    },
    missing: (key, reason) => v.missing.set(key, reason),
    batch: () => {
      v.requestPaint();
      pumpFrames(v);
    },
    broken: () => sync(v, true), // through the reports from now on
  });
}

/** Whether the frames come over HTTP now. */
function fetching(v: Viewer): boolean {
  return v.fetcher !== null && v.fetcher.broken === null && v.signedOut === null;
}

/** The frame on screen first (it does not wait behind prefetches), then the rest of wanted(). */
function pumpFrames(v: Viewer): void {
  if (fetching(v)) v.fetcher?.pump(wanted(v), 1);
}

/** A pending read as the reader knows it: the image's name and what they chose. */
export function readText(v: Viewer, save: PendingSave): string {
  const name = v.infos.get(save.imageId)?.name || `image ${save.imageId}`;
  const chosen = save.label ?? (save.labels ?? []).join(", ");
  return `${name}: ${chosen || "no label"}${save.unsure ? " (unsure)" : ""}`;
}

/** Frames wanted, most urgent first: the frame on screen, then what the reader goes to next. */
export function wanted(v: Viewer): string[] {
  const keys: string[] = [];
  const add = (imageId: number | null | undefined, frame = 0): void => {
    if (imageId === null || imageId === undefined || imageId < 0) return;
    const key = frameKey(imageId, frame);
    const held = v.cache.has(key) || v.decoding.has(key) || v.missing.has(key) || (v.fetcher?.fetching(key) ?? false);
    if (!held && !keys.includes(key)) keys.push(key);
  };
  add(v.shown, v.frame);
  const info = v.info(v.shown);
  if (info && info.frames > 1) {
    for (let step = 1; step < Math.min(info.frames, 32); step++) add(v.shown, (v.frame + step * v.scrollDirection + info.frames) % info.frames);
  }
  add(v.current);
  for (const next of v.worklist.upcoming(v.current, PREFETCH_IMAGES)) add(next);
  const series = info?.series;
  if (series && v.shown !== null) {
    // Ahead in the scroll direction first, and behind too: a reader who opens a stack at one end
    // scrolls away from it, whichever direction that is.
    const index = series.indexOf(v.shown);
    for (let step = 1; step <= PREFETCH_SLICES; step++) {
      add(series[index + step * v.scrollDirection]);
      add(series[index - step * v.scrollDirection]);
    }
  }
  return keys.slice(0, MAX_WANTED);
}

/**
 * Tell the server what changed; `more` asks again (a new tick) for frames still wanted after a
 * delivery, `resend` sends the same report again (it had no answer, or the reads in it none).
 * Never once the page is being left.
 */
export function sync(v: Viewer, more: boolean, resend = false): void {
  if (!v.data || !v.root.isConnected || v.signedOut !== null || v.left) return;
  announce(v);
  pumpFrames(v);
  const want = fetching(v) ? [] : wanted(v);
  const body = { position: v.current, want, pending: [...v.pending.items], view: viewReport(v) };
  const text = JSON.stringify(body);
  const askAgain = resend || (more && want.length > 0);
  if (text === v.lastSync && !askAgain) return;
  v.tick += 1;
  v.lastSync = text;
  v.lastSyncAt = performance.now();
  v.unanswered = true;
  const state: SyncState = { ...body, tick: v.tick };
  v.setState("sync", state);
}

/** Tell the worklist beside the viewer (follower.ts) where the reader is and what is saved. */
export function announce(v: Viewer): void {
  if (v.data?.mode !== "label" || v.left || v.signedOut !== null) return;
  announceProgress({ viewer: "label", position: v.current, saved: v.savedCount });
}

/**
 * What is on screen, for pages that act on it (the map of the frame and window shown, the header of
 * the slice shown). The window is reported once it settles (a drag reports when released).
 */
export function viewReport(v: Viewer): { imageId: number; frame: number; window: Window | null } | null {
  if (v.data?.mode !== "view" || v.shown === null) return null;
  const info = v.info(v.shown);
  const state = info && !info.color ? v.windowState(info) : null;
  const window = v.drag?.mode === "window" ? v.settledWindow : (state?.window ?? null);
  v.settledWindow = window;
  return { imageId: v.shown, frame: v.frame, window };
}
