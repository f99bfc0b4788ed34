/**
 * One viewer instance: what is on screen (image, slice, frame, window, camera), the frames held in
 * the browser, the worklist (worklist.ts: the links that make "next" instant, the way back), the
 * tools (tools.ts) and the reads waiting for the server (pending.ts).
 *
 * The server is asked for frames and told about reads through one state value (`sync`): the frames
 * wanted in priority order, the reads not yet acknowledged, the image on screen. A read stays pending
 * until the server acknowledges it, so an interrupted rerun or a failed save loses nothing: it is
 * sent again with each report, again after a report went unanswered, and, kept in the tab's storage,
 * by the next Label viewer of the same sign-in when this one is gone. A click on another page waits
 * for the acknowledgement (navigation.ts); after it the viewer sends nothing more.
 * A viewer whose sign-in ended (the server answers with `signedOut`) is signed out for good: its
 * pixels go, it sends nothing more, and its pending reads stay on screen marked as not saved.
 */

import { cornerText } from "./annotations";
import { announceProgress } from "./follower";
import { decodeRow, type Frame, FrameCache, frameKey, fromBase64 } from "./frames";
import { isTextEntry, LEGEND_LABEL, LEGEND_VIEW, legendHtml } from "./keyboard";
import { KEY_MARK, mark, PAINT_MARK } from "./marks";
import { guard, navigationHeld } from "./navigation";
import { PendingReads, type TabStorage } from "./pending";
import { type Edges, Pane } from "./pane";
import { overlayCanvas, type Renderer } from "./renderer";
import { Tools } from "./tools";
import type { Box, ImageInfo, PendingSave, SignedOutData, SyncState, ViewerData } from "./types";
import type { Point } from "./viewport";
import { type DisplayParams, draggedWindow, type Window } from "./windowing";
import { END, Worklist } from "./worklist";

type SetState = (name: string, value: unknown) => void;

/** Frames kept in the browser: a 500-slice 512x512 CT is 250 MB as int16. */
const CACHE_BYTES = 768 * 1024 * 1024;
/** Frames asked for at once (the server sends what fits its per-run budget). */
const MAX_WANTED = 128;
/** Worklist images prefetched after the current one. */
const PREFETCH_IMAGES = 12;
/** Slices prefetched ahead of the current one in the scroll direction (and half as many behind). */
const PREFETCH_SLICES = 48;
/** A report the server has not answered after this long is sent again (ms). */
const UNANSWERED_MS = 2000;

function tabStorage(): TabStorage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: reads are held in memory only
  }
}

interface WindowState {
  window: Window | null;
  /** The preset the window came from (Shift+1-9, or the first one offered), null once dragged. */
  name: string | null;
  invert: boolean;
}

let activeViewer: Viewer | null = null;

window.addEventListener("keydown", (event) => activeViewer?.onKey(event), true);

export class Viewer {
  private data: ViewerData | null = null;
  private setState: SetState = () => {};
  private readonly root: HTMLDivElement;
  private readonly header: HTMLDivElement;
  private readonly status: HTMLDivElement;
  /** Where the viewports sit: one, or the image and its map side by side (`ViewerData.split`). */
  private readonly stages: HTMLDivElement;
  private readonly message: HTMLDivElement;
  /** The viewports: the first shows the image, a second (split) the image under its map. */
  private readonly panes: Pane[] = [];
  private readonly cache = new FrameCache(CACHE_BYTES);
  private readonly infos = new Map<number, ImageInfo>();
  private readonly decoding = new Set<string>();
  private readonly missing = new Map<string, string>();
  private readonly overlays = new Map<string, HTMLCanvasElement>();
  private readonly overlayLabels = new Map<string, string>();
  private readonly worklist = new Worklist();
  private lastJump = -1;
  /** The worklist image the reader is on, the series image shown (a slice of it) and its frame. */
  private current: number | null = null;
  private shown: number | null = null;
  private frame = 0;
  private scrollDirection = 1;
  /** Past the list's last image (label mode): what the server says is left to do on it, once known. */
  private atEnd: { count: number; first: number | null } | "unknown" | null = null;
  private readonly windowStates = new Map<number, WindowState>();
  private lockedWindow: { modality: string; state: WindowState } | null = null;
  /** The image whose pixels are on the canvas, and since when (performance.now()). */
  private painted: { imageId: number; frame: number; at: number; firstAt: number } | null = null;
  private readonly pending = new PendingReads(tabStorage());
  /** Reads the server acknowledged since the viewer was mounted (the worklist follows the count). */
  private savedCount = 0;
  private readonly failed = new Map<number, string>();
  /** Why the server refused this viewer's last report (its sign-in ended); null while signed in. */
  private signedOut: string | null = null;
  private tick = 0;
  private lastSync = "";
  /** Whether the last report has had no answer yet (any data from the server answers it). */
  private unanswered = false;
  /** The page is being left (navigation.ts): nothing is sent any more. */
  private left = false;
  private readonly tools = new Tools();
  private drag: { button: number; start: Point; last: Point; window: Window | null; mode: Tools["tool"]; boxIndex: number | null; handle: string } | null = null;
  private selectedBox: number | null = null;
  private draftBox: Box | null = null;
  private ruler: { from: Point; to: Point } | null = null;
  private unsure = false;
  private multiSelection = new Set<string>();
  private overlayOn = true;
  private overlayOpacity = 0.45;
  private cineTimer: number | null = null;
  private cineFps = 10;
  private frameRequested = false;
  private readonly resizeObserver: ResizeObserver;

  constructor(private readonly parent: HTMLElement | ShadowRoot) {
    this.root = document.createElement("div");
    this.root.className = "mrv-root";
    this.root.tabIndex = -1;
    this.root.innerHTML = `
      <div class="mrv-header"></div>
      <div class="mrv-stages"><div class="mrv-message"></div></div>
      <div class="mrv-status"></div>
      <details class="mrv-legend"><summary>Keys</summary><div class="mrv-keys"></div></details>`;
    parent.appendChild(this.root);
    this.header = this.root.querySelector(".mrv-header") as HTMLDivElement;
    this.stages = this.root.querySelector(".mrv-stages") as HTMLDivElement;
    this.status = this.root.querySelector(".mrv-status") as HTMLDivElement;
    this.message = this.root.querySelector(".mrv-message") as HTMLDivElement;
    // The keys stay listed where the window leaves room for them; the reader opens or closes them.
    (this.root.querySelector(".mrv-legend") as HTMLDetailsElement).open = window.innerHeight >= 860;
    this.addPane();
    this.bindButtons();
    this.resizeObserver = new ResizeObserver(() => this.layout());
    this.resizeObserver.observe(this.root);
    window.addEventListener("resize", this.layoutHandler);
    activeViewer = this;
    this.root.addEventListener("pointerenter", () => (activeViewer = this));
    window.addEventListener("beforeunload", this.beforeUnload);
    // A delivery can be lost with an interrupted app run (and a report, sent in one batch with
    // another fragment's): ask again for frames still missing, send again what had no answer.
    this.retryTimer = window.setInterval(() => {
      // A viewer whose page was left must never report again: its report would rerun that page.
      if (!this.root.isConnected) this.destroy();
      else if (this.data?.mode === "label" && performance.now() - this.lastSyncAt > UNANSWERED_MS && (this.unanswered || this.unacknowledged() > 0)) this.sync(false, true);
      else if (performance.now() - this.lastSyncAt > 1500 && this.wanted().length > 0) this.sync(true);
    }, 1000);
  }

  private readonly retryTimer: number;
  private lastSyncAt = 0;

  /** The first viewport's renderer: its camera is every viewport's. */
  private get renderer(): Renderer {
    return (this.panes[0] as Pane).renderer;
  }

  private addPane(): void {
    const pane = new Pane(this.stages, this.panes[0]?.renderer.camera, this.panes.length ? "mrv-map-pane" : "");
    this.stages.insertBefore(pane.stage, this.message);
    this.panes.push(pane);
    this.bindPointer(pane.renderer);
  }

  /** Side by side (the image and its map) or one viewport, as the page asks. */
  private setSplit(split: boolean): void {
    if (split && this.panes.length === 1) this.addPane();
    else if (!split && this.panes.length > 1) this.panes.splice(1).forEach((pane) => pane.stage.remove());
    else return;
    this.root.dataset.split = String(split);
    this.layout();
  }

  private readonly layoutHandler = (): void => this.layout();

  /** Closing or reloading the tab with reads the server has not acknowledged asks first. */
  private readonly beforeUnload = (event: BeforeUnloadEvent): void => {
    if (this.signedOut !== null || this.pending.length === 0) return;
    event.preventDefault();
    event.returnValue = ""; // older browsers ask only when this is set
  };

  /** A click on another page waits for the reads still on their way (navigation.ts). */
  private readonly unguard = guard({
    busy: () => this.signedOut === null && !this.left && this.unacknowledged() > 0 && this.root.isConnected,
    finish: (done) => {
      this.leaving = done;
      this.sync(false, true); // once more, in case the last report was lost
      this.renderStatus();
    },
    leave: () => {
      this.left = true;
      this.leaving = null;
      this.stopCine();
      this.renderStatus();
    },
  });
  /** Called when the pending reads are acknowledged, while a click on another page waits for it. */
  private leaving: (() => void) | null = null;

  /** Reads on their way that the server has neither saved nor refused (those wait for Retry). */
  private unacknowledged(): number {
    return this.pending.items.filter((save) => !this.failed.has(save.seq)).length;
  }

  destroy(): void {
    this.stopCine();
    this.left = true;
    this.unguard();
    window.clearInterval(this.retryTimer);
    this.resizeObserver.disconnect();
    window.removeEventListener("resize", this.layoutHandler);
    window.removeEventListener("beforeunload", this.beforeUnload);
    if (activeViewer === this) activeViewer = null;
    this.root.remove();
  }

  // --- data from the server -------------------------------------------------------------------

  update(data: ViewerData | SignedOutData, setState: SetState): void {
    // Signed out is for good: data after it (if any) must not make this viewer send the reads of the
    // user who was signed in to whoever is signed in now.
    if (this.signedOut !== null) return;
    if ("signedOut" in data) {
      this.signOut(data.signedOut);
      return;
    }
    if (this.left) return; // the page is being left: this data is the page's last word
    this.data = data;
    this.setState = setState;
    this.unanswered = false;
    this.setSplit(data.split === true);
    if (data.mode === "label" && data.owner) {
      // Reads this sign-in left unsent in this tab (a page left before the answer, a reload) go
      // with the next report; another sign-in's are dropped unsent.
      let recovered: PendingSave[];
      try {
        recovered = this.pending.adopt(data.owner);
      } catch {
        return this.signOut("signed in again as someone else"); // never their reads under another sign-in
      }
      for (const save of recovered) this.worklist.markLabelled(save.imageId);
    }
    for (const info of data.images) {
      const known = this.infos.get(info.id);
      this.infos.set(info.id, info);
      // A read made here and not yet acknowledged: the server's copy does not have it yet.
      if (known && this.pending.items.some((save) => save.imageId === info.id)) {
        Object.assign(info, { label: known.label, labels: known.labels, read: known.read });
      }
      for (const sliceId of info.series ?? []) if (!this.seriesSibling.has(sliceId)) this.seriesSibling.set(sliceId, info);
    }
    if (data.listVersion !== this.worklist.listVersion) this.root.dataset.listVersion = data.listVersion;
    this.worklist.update(data.listVersion, data.order, data.order.length < PREFETCH_IMAGES + 1);
    const before = this.pending.length;
    this.pending.acknowledge(data.acked);
    this.savedCount += before - this.pending.length;
    for (const seq of data.acked) this.failed.delete(seq);
    for (const [seq, reason] of Object.entries(data.failed)) this.failed.set(Number(seq), reason);
    if (this.leaving && this.unacknowledged() === 0) {
      const done = this.leaving;
      this.leaving = null;
      done();
      return;
    }
    if (data.mode === "label" && this.current === null && data.position === null && data.left) this.atEnd = data.left;
    for (const [key, reason] of Object.entries(data.missing)) this.missing.set(key, reason);
    for (const row of data.overlays) {
      this.overlays.set(row.key, overlayCanvas(fromBase64(row.data), row.width, row.height, data.colormap));
      this.overlayLabels.set(row.key, row.label);
    }
    // The server moves the viewer when it jumps (a click in the list, a new filter) and to open the
    // first image; not otherwise: data answering an earlier report names where the reader was then.
    if (data.jump !== this.lastJump) {
      this.lastJump = data.jump;
      if (data.position !== null && data.position !== this.current) this.open(data.position, false);
    }
    const decoded = data.pixels.filter((row) => !this.cache.has(row.key) && !this.decoding.has(row.key));
    for (const row of decoded) this.decoding.add(row.key);
    Promise.all(
      decoded.map((row) =>
        decodeRow(row)
          .then((frame) => {
            if (this.signedOut === null) this.cache.put(frame); // not a frame that arrives after a sign-out
          })
          .catch((error: unknown) => this.missing.set(row.key, String(error)))
          .finally(() => this.decoding.delete(row.key)),
      ),
    ).then(() => {
      this.paint();
      this.sync(decoded.length > 0);
    });
    this.layout();
    this.paint();
    this.sync(false);
    this.announce();
  }

  /** The sign-in ended: drop every pixel and overlay, stop asking, keep the unsaved reads shown. */
  private signOut(reason: string): void {
    this.signedOut = reason || "signed out";
    this.pending.signOut();
    this.leaving?.();
    this.leaving = null;
    this.stopCine();
    this.cache.clear();
    this.overlays.clear();
    this.drag = null;
    this.current = null;
    this.shown = null;
    this.painted = null;
    for (const pane of this.panes) {
      pane.renderer.clear();
      pane.annotate(null, null, null);
    }
    this.root.dataset.signedOut = "true";
    delete this.root.dataset.paintedImage;
    this.paint();
  }

  /** A pending read as the reader knows it: the image's name and what they chose. */
  private readText(save: PendingSave): string {
    const name = this.infos.get(save.imageId)?.name || `image ${save.imageId}`;
    const chosen = save.label ?? (save.labels ?? []).join(", ");
    return `${name}: ${chosen || "no label"}${save.unsure ? " (unsure)" : ""}`;
  }

  // --- navigation -----------------------------------------------------------------------------

  /**
   * What is known of an image. A slice of a series the server described through another of its
   * images borrows that image's display facts (a series shares its geometry and windows): the
   * viewer scrolls a 500-slice series with the details of one slice.
   */
  private info(imageId: number | null): ImageInfo | undefined {
    if (imageId === null) return undefined;
    const own = this.infos.get(imageId);
    if (own) return own;
    const sibling = this.seriesSibling.get(imageId);
    if (!sibling) return undefined;
    // Its own name is not known yet: the header's "slice n/N" names it meanwhile.
    const borrowed: ImageInfo = { ...sibling, id: imageId, name: "", label: null, labels: [], boxes: [] };
    this.infos.set(imageId, borrowed);
    return borrowed;
  }

  private readonly seriesSibling = new Map<number, ImageInfo>();

  /** Go to a worklist image. */
  private open(imageId: number, remember: boolean): void {
    if (remember && this.current !== null && this.current !== imageId) this.worklist.leave(this.current);
    if (imageId !== this.current) this.tools.imageChanged(); // a tool does not carry over to the next image
    this.current = imageId;
    this.shown = imageId;
    this.atEnd = null;
    this.waitingForNext = false;
    this.frame = 0;
    this.unsure = false;
    this.multiSelection = new Set(this.info(imageId)?.labels ?? []);
    this.selectedBox = null;
    this.draftBox = null;
    this.ruler = null;
    this.renderer.camera.fitted = true;
    this.paint();
    this.sync(false);
  }

  private nextImage(): number | null {
    if (this.current === null) return null;
    return this.worklist.next(this.current, this.data?.mode === "label");
  }

  private advance(): void {
    if (this.current === null && this.atEnd !== null) return this.openFirstLeft();
    const next = this.nextImage();
    if (next === END) {
      // Past the last image: the server says what is left to do on the list (the report below
      // carries the reads still pending, saved before it counts).
      if (this.current !== null) this.worklist.leave(this.current);
      this.current = null;
      this.shown = null;
      this.atEnd = "unknown";
      this.tools.imageChanged();
      // Nothing is on screen past the end: not the last image under the message.
      this.painted = null;
      for (const pane of this.panes) {
        pane.renderer.clear();
        pane.annotate(null, null, null);
      }
      delete this.root.dataset.paintedImage;
      this.paint();
      this.sync(false);
      return;
    }
    if (next === null) {
      // The next link has not arrived yet: it will, with the next data from the server.
      this.showMessage("Loading the next image…");
      this.waitingForNext = true;
      return;
    }
    this.open(next, true);
  }

  private waitingForNext = false;

  private back(): void {
    const previous = this.worklist.back();
    if (previous !== undefined) this.open(previous, false);
    else this.flashStatus("Back: this is the first image you opened on this list.");
  }

  /** Past the list's end: open the first image of the list still to do. */
  private openFirstLeft(): void {
    const first = this.atEnd !== null && this.atEnd !== "unknown" ? this.atEnd.first : null;
    if (first !== null) this.open(first, false);
  }

  private stepSlice(delta: number): void {
    const info = this.info(this.shown);
    const series = info?.series;
    if (!series || series.length < 2 || this.shown === null) return;
    const index = series.indexOf(this.shown);
    const target = series[Math.min(series.length - 1, Math.max(0, index + delta))];
    if (target === undefined || target === this.shown) return;
    this.scrollDirection = delta > 0 ? 1 : -1;
    this.shown = target;
    this.frame = 0;
    this.requestPaint();
    this.sync(false);
  }

  private stepFrame(delta: number): void {
    const info = this.info(this.shown);
    if (!info || info.frames < 2) return;
    this.frame = (this.frame + delta + info.frames) % info.frames;
    this.scrollDirection = delta > 0 ? 1 : -1;
    this.requestPaint();
    this.sync(false);
  }

  // --- labelling ------------------------------------------------------------------------------

  /**
   * The image a key made at `eventTime` (the event's own timeStamp, on performance.now()'s clock)
   * labels: the one on screen, when its pixels had been painted for the bounce guard's time by
   * then. The key's own time, not the time it is handled: a key held up behind a busy page must not
   * label an image painted after it was pressed, or just before.
   */
  private labelTarget(eventTime: number): number | null {
    if (!this.painted || this.shown === null || this.painted.imageId !== this.shown) return null;
    const minimum = (this.data?.minSecondsOnScreen ?? 0) * 1000;
    if (eventTime - this.painted.firstAt < minimum) return null;
    return this.shown;
  }

  private boxesOf(imageId: number): Box[] {
    return this.tools.boxesOf(imageId, this.info(imageId)?.boxes ?? []);
  }

  private save(label: string | null, labels: string[] | null, thenNext: boolean, eventTime: number): void {
    if (this.signedOut !== null || this.left || !this.data) return;
    const target = this.labelTarget(eventTime);
    if (target === null) {
      this.flashStatus("Not saved: the image was not on screen yet.");
      return;
    }
    mark(KEY_MARK, { imageId: target });
    const painted = this.painted;
    const seconds = painted ? Math.max(0, eventTime - painted.firstAt) / 1000 : 0;
    const save: PendingSave = {
      seq: Date.now() * 1000 + Math.floor(Math.random() * 1000),
      imageId: target,
      label,
      labels,
      boxes: this.data.boxesEnabled ? this.boxesOf(target) : null,
      seconds: Math.round(seconds * 100) / 100,
      unsure: this.unsure,
      owner: this.data.owner,
    };
    this.pending.add(save);
    this.worklist.markLabelled(target);
    if (this.data.boxesEnabled) this.tools.taken(target);
    const info = this.info(target);
    if (info) {
      if (label !== null) info.label = label;
      if (labels !== null) info.labels = labels;
      info.read = true;
    }
    if (thenNext) this.advance();
    else this.paint();
    // The read shows as saving at once: past the list's last image nothing is painted, and the
    // status would go on saying "all reads saved" until the server answered.
    this.renderStatus();
    this.sync(false);
  }

  // --- server sync ----------------------------------------------------------------------------

  /** Frames wanted, most urgent first: the frame on screen, then what the reader goes to next. */
  private wanted(): string[] {
    const keys: string[] = [];
    const add = (imageId: number | null | undefined, frame = 0): void => {
      if (imageId === null || imageId === undefined || imageId < 0) return;
      const key = frameKey(imageId, frame);
      if (!this.cache.has(key) && !this.decoding.has(key) && !this.missing.has(key) && !keys.includes(key)) keys.push(key);
    };
    add(this.shown, this.frame);
    const info = this.info(this.shown);
    if (info && info.frames > 1) {
      for (let step = 1; step < Math.min(info.frames, 32); step++) add(this.shown, (this.frame + step * this.scrollDirection + info.frames) % info.frames);
    }
    add(this.current);
    for (const next of this.worklist.upcoming(this.current, PREFETCH_IMAGES)) add(next);
    const series = info?.series;
    if (series && this.shown !== null) {
      // Ahead in the scroll direction first, and behind too: a reader who opens a stack at one end
      // scrolls away from it, whichever direction that is.
      const index = series.indexOf(this.shown);
      for (let step = 1; step <= PREFETCH_SLICES; step++) {
        add(series[index + step * this.scrollDirection]);
        add(series[index - step * this.scrollDirection]);
      }
    }
    return keys.slice(0, MAX_WANTED);
  }

  /**
   * Tell the server what changed; `more` asks again (a new tick) for frames still wanted after a
   * delivery, `resend` sends the same report again (it had no answer, or the reads in it none).
   * Never once the page is being left.
   */
  private sync(more: boolean, resend = false): void {
    if (!this.data || !this.root.isConnected || this.signedOut !== null || this.left) return;
    this.announce();
    const want = this.wanted();
    const body = { position: this.current, want, pending: [...this.pending.items], view: this.viewReport() };
    const text = JSON.stringify(body);
    const askAgain = resend || (more && want.length > 0);
    if (text === this.lastSync && !askAgain) return;
    this.tick += 1;
    this.lastSync = text;
    this.lastSyncAt = performance.now();
    this.unanswered = true;
    const state: SyncState = { ...body, tick: this.tick };
    this.setState("sync", state);
  }

  /** Tell the worklist beside the viewer (follower.ts) where the reader is and what is saved. */
  private announce(): void {
    if (this.data?.mode !== "label" || this.left || this.signedOut !== null) return;
    announceProgress({ viewer: "label", position: this.current, saved: this.savedCount });
  }

  /**
   * What is on screen, for pages that act on it (the map of the frame and window shown, the header of
   * the slice shown). The window is reported once it settles (a drag reports when released).
   */
  private viewReport(): { imageId: number; frame: number; window: Window | null } | null {
    if (this.data?.mode !== "view" || this.shown === null) return null;
    const info = this.info(this.shown);
    const state = info && !info.color ? this.windowState(info) : null;
    const window = this.drag?.mode === "window" ? this.settledWindow : (state?.window ?? null);
    this.settledWindow = window;
    return { imageId: this.shown, frame: this.frame, window };
  }

  private settledWindow: Window | null = null;

  // --- painting -------------------------------------------------------------------------------

  private requestPaint(): void {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => {
      this.frameRequested = false;
      this.paint();
    });
  }

  private windowState(info: ImageInfo): WindowState {
    const seriesKey = info.series ? (info.series[0] as number) : info.id;
    let state = this.windowStates.get(seriesKey);
    if (!state) {
      if (this.lockedWindow && this.lockedWindow.modality === info.modality) state = { ...this.lockedWindow.state };
      else state = { window: info.voiLut ? null : info.defaultWindow, name: info.voiLut ? null : (info.windows[0]?.name ?? null), invert: false };
      this.windowStates.set(seriesKey, state);
    }
    return state;
  }

  private displayParams(info: ImageInfo): DisplayParams {
    const state = this.windowState(info);
    return {
      window: state.window,
      voiLut: info.voiLut,
      monochrome1: info.photometric === "MONOCHROME1",
      invert: state.invert,
    };
  }

  private paint(): void {
    if (this.signedOut !== null) {
      this.renderHeader(undefined);
      this.renderStatus();
      this.showMessage("Signed out: log in again to go on reading.");
      return;
    }
    if (this.waitingForNext && this.nextImage() !== null) {
      this.waitingForNext = false;
      this.advance();
      return;
    }
    const info = this.info(this.shown);
    this.renderHeader(info);
    this.renderStatus();
    if (!info || this.shown === null) {
      if (this.atEnd !== null) this.showEnd();
      else if (this.current === null && this.data?.order.length === 0) this.showMessage("Nothing to show on this list.");
      return;
    }
    const key = frameKey(this.shown, this.frame);
    const frame = this.cache.get(key);
    if (!frame) {
      const reason = this.missing.get(key);
      this.showMessage(reason ? `Cannot show this image: ${reason}` : "Loading…");
      return;
    }
    this.showMessage("");
    if (this.renderer.camera.fitted) this.renderer.fit(frame);
    const overlay = this.overlays.get(key);
    const params = this.displayParams(info);
    const boxes = this.boxesOf(this.shown).filter((box) => box.frame === this.frame);
    const ruler = this.ruler ? { ...this.ruler, text: this.rulerText(info, this.ruler) } : null;
    // Split: the image alone on the left, the image under its map on the right (O hides the map).
    const mapPane = this.panes.length - 1;
    this.panes.forEach((pane, index) => {
      const withMap = index === mapPane && !!overlay && this.overlayOn;
      pane.renderer.paint({
        frame,
        params,
        overlay: withMap ? { canvas: overlay, opacity: this.overlayOpacity } : null,
        boxes,
        selectedBox: this.selectedBox,
        draftBox: this.draftBox,
        ruler,
      });
    });
    this.annotate(info);
    this.renderHeader(info); // after the paint: a fit changes the zoom it shows
    const now = performance.now();
    const sameImage = this.painted?.imageId === this.shown;
    this.painted = { imageId: this.shown, frame: this.frame, at: now, firstAt: sameImage && this.painted ? this.painted.firstAt : now };
    this.root.dataset.paintedImage = String(this.shown);
    this.root.dataset.paintedFrame = String(this.frame);
    this.root.dataset.paints = String(Number(this.root.dataset.paints ?? "0") + 1);
    mark(PAINT_MARK, { imageId: this.shown, frame: this.frame });
  }

  /** Past the list's last image: says so, and offers the images of the list still to do. */
  private showEnd(): void {
    const end = this.atEnd;
    if (end === "unknown" || end === null) {
      this.showMessage("End of this list.");
    } else if (end.count === 0 || end.first === null) {
      this.showMessage("Every image on this list is done.");
    } else {
      const images = end.count === 1 ? "1 image" : `${end.count} images`;
      this.showMessage(`End of this list: ${images} on it still to do.`, "Go to the first (Enter)");
    }
  }

  /** The corners, edge letters and scale bar of each viewport (annotations.ts). */
  private annotate(info: ImageInfo): void {
    const state = info.color ? null : this.windowState(info);
    const ratio = window.devicePixelRatio || 1;
    const slices = info.series && info.series.length > 1 && this.shown !== null ? info.series : null;
    const facts = {
      slice: slices ? { index: slices.indexOf(this.shown as number) + 1, count: slices.length } : null,
      frame: info.frames > 1 ? { index: this.frame + 1, count: info.frames } : null,
      window: state?.window ?? null,
      windowName: state?.name ?? null,
      voiLut: !!info.voiLut && !state?.window,
      inverted: !!state?.invert,
      zoom: this.renderer.camera.scale * 100,
      modality: info.modality,
      series: info.seriesDescription ?? "",
    };
    // A millimetre on screen: along a row, a column's spacing (mm between columns) apart.
    const columnSpacing = info.pixelSpacing?.[1] ?? null;
    const pixelsPerMm = columnSpacing ? this.renderer.camera.scale / ratio / columnSpacing : null;
    const edges: Edges | null = info.orientation ?? null;
    const mapPane = this.panes.length - 1;
    const label = this.overlayLabels.get(frameKey(this.shown as number, this.frame));
    this.panes.forEach((pane, index) => {
      let map: string | null = null;
      if (this.panes.length > 1 && index === mapPane) map = label ? (this.overlayOn ? label : `${label} (hidden: O)`) : "map: not computed yet";
      pane.annotate(cornerText({ ...facts, map }), edges, pixelsPerMm);
    });
  }

  private rulerText(info: ImageInfo, ruler: { from: Point; to: Point }): string {
    const dx = ruler.to.x - ruler.from.x;
    const dy = ruler.to.y - ruler.from.y;
    if (info.pixelSpacing) {
      const [rowSpacing, columnSpacing] = info.pixelSpacing;
      return `${Math.hypot(dx * columnSpacing, dy * rowSpacing).toFixed(1)} mm`;
    }
    return `${Math.hypot(dx, dy).toFixed(1)} px (no pixel spacing)`;
  }

  /** A message over the stage, with a button under it when `action` names one (the end of a list). */
  private showMessage(text: string, action = ""): void {
    const html = escapeHtml(text) + (action ? `<button class="mrv-first-left">${escapeHtml(action)}</button>` : "");
    if (this.message.innerHTML !== html) this.message.innerHTML = html;
    this.message.style.display = text ? "flex" : "none";
  }

  private statusFlash = "";

  private flashStatus(text: string): void {
    this.statusFlash = text;
    this.renderStatus();
    window.setTimeout(() => {
      if (this.statusFlash === text) {
        this.statusFlash = "";
        this.renderStatus();
      }
    }, 2500);
  }

  private renderHeader(info: ImageInfo | undefined): void {
    if (!info) {
      this.header.textContent = "";
      return;
    }
    const state = info.color ? null : this.windowState(info);
    const window = state?.window;
    // The read state comes first and is never cut off (the rest of the line may be).
    let read = "";
    if (this.data?.mode === "label") {
      const mine = this.data.multi ? info.labels.join(", ") : info.label;
      if (mine) read = `my label: <strong class="mrv-label">${escapeHtml(mine)}</strong>`;
      else if (info.read) read = `my read: <strong class="mrv-label">boxes only</strong>`;
      else read = "not read by me yet";
      if (this.unsure) read += " · unsure";
    }
    const parts = info.name ? [`<b>${escapeHtml(info.name)}</b>`] : [];
    parts.push(escapeHtml(info.caption));
    if (info.series && info.series.length > 1 && this.shown !== null) {
      parts.push(`slice <b class="mrv-slice">${info.series.indexOf(this.shown) + 1}</b>/${info.series.length}`);
    }
    if (info.frames > 1) parts.push(`frame <b class="mrv-frame">${this.frame + 1}</b>/${info.frames}${this.cineTimer !== null ? ` ▶ ${this.cineFps} fps` : ""}`);
    if (window) parts.push(`W ${Math.round(window.width)} / L ${Math.round(window.center)}${state?.name ? ` (${escapeHtml(state.name)})` : ""}`);
    else if (info.voiLut) parts.push("VOI LUT");
    if (state?.invert) parts.push("inverted");
    if (this.lockedWindow) parts.push("🔒 window locked");
    parts.push(`zoom ${Math.round(this.renderer.camera.scale * 100)}%`);
    parts.push(`<span class="mrv-tool">${this.toolText()}</span>`);
    const rest = `<span class="mrv-header-rest">${parts.join(" · ")}</span>`;
    const html = read ? `<span class="mrv-read">${read}</span>${rest}` : rest;
    if (this.header.innerHTML !== html) this.header.innerHTML = html;
  }

  /** The tool in the header; the box tool with its class, or that none is chosen yet. */
  private toolText(): string {
    const tool = this.tools.tool;
    if (tool !== "box") return `tool: ${tool}`;
    const boxClass = this.tools.boxClass;
    return boxClass ? `tool: box <b>${escapeHtml(boxClass)}</b>` : "tool: box, <b>no class yet</b> (B)";
  }

  private renderStatus(): void {
    const parts: string[] = [];
    if (this.signedOut !== null) {
      const unsaved = this.pending.length;
      const count = unsaved ? `${unsaved} read(s) not saved:` : "no read was waiting to be saved.";
      parts.push(`<span class="mrv-error mrv-signed-out">Signed out (${escapeHtml(this.signedOut)}): ${count}</span>`);
      if (unsaved) {
        const reads = this.pending.items.map((save) => `<li>${escapeHtml(this.readText(save))}</li>`).join("");
        parts.push(`<ul class="mrv-unsaved">${reads}</ul>`);
      }
    } else if (this.data?.mode === "label") {
      const classes = this.data.classes
        .map((name, index) => {
          const chosen = this.data?.multi && this.multiSelection.has(name) ? " mrv-chosen" : "";
          return `<button class="mrv-class${chosen}" data-class-index="${index}"><kbd>${index + 1}</kbd> ${escapeHtml(name)}</button>`;
        })
        .join("");
      parts.push(`<span class="mrv-classes">${classes}${this.data.multi ? '<button class="mrv-save-multi"><kbd>Enter</kbd> save & next</button>' : ""}</span>`);
      const waiting = this.pending.length;
      const unsavedBoxes = this.tools.unsavedImages();
      if (this.failed.size) {
        const reasons = [...new Set(this.failed.values())].map(escapeHtml).join("; ");
        parts.push(`<span class="mrv-error">${this.failed.size} read(s) not saved: ${reasons} <button class="mrv-retry">Retry</button></span>`);
      } else if (waiting && (navigationHeld() || this.leaving)) parts.push(`<span class="mrv-pending">saving ${waiting} before leaving…</span>`);
      else if (waiting) parts.push(`<span class="mrv-pending">saving ${waiting}…</span>`);
      if (unsavedBoxes.length) {
        const where = unsavedBoxes.length === 1 && unsavedBoxes[0] === this.current ? "on this image" : `on ${unsavedBoxes.length} image(s)`;
        parts.push(`<span class="mrv-error mrv-unsaved-boxes">boxes not saved ${where}: a class key or S saves them</span>`);
      }
      if (!this.failed.size && !waiting && !unsavedBoxes.length) parts.push(`<span class="mrv-saved">all reads saved</span>`);
    }
    if (this.statusFlash) parts.push(`<span class="mrv-error">${escapeHtml(this.statusFlash)}</span>`);
    const html = parts.join(" ");
    if (this.status.innerHTML !== html) this.status.innerHTML = html;
    const legend = this.root.querySelector(".mrv-keys") as HTMLDivElement;
    const legendText = legendHtml(this.data?.mode === "label" ? [...LEGEND_LABEL, ...LEGEND_VIEW] : LEGEND_VIEW);
    if (legend.innerHTML !== legendText) legend.innerHTML = legendText;
  }

  /**
   * The viewports' height follows the window: what is left below the viewer's top, minus the rows
   * under it and the room the page keeps for its own controls there (`ViewerData.below`). The top is
   * measured in the page, not on screen: a page scrolled (a comment box opened below) must not make
   * the viewer taller, which scrolled its header away for good.
   */
  private layout(): void {
    const stage = (this.panes[0] as Pane).stage;
    const legend = this.root.querySelector(".mrv-legend") as HTMLDivElement;
    const below = this.status.offsetHeight + legend.offsetHeight + 24 + (this.data?.below ?? 0);
    const { top, height: windowHeight } = pageTop(stage);
    const available = windowHeight - top - below;
    const maxHeight = this.data?.maxHeight || 0;
    let height = Math.max(240, maxHeight > 0 ? Math.min(maxHeight, available) : available);
    const width = Math.max(120, stage.clientWidth);
    const info = this.info(this.shown);
    // Side by side, the viewports are narrow: no taller than the image fills them.
    if (this.panes.length > 1 && info) height = Math.max(240, Math.min(height, (width * info.height) / info.width));
    const frame = this.shown === null ? null : (this.cache.get(frameKey(this.shown, this.frame)) ?? null);
    for (const pane of this.panes) {
      pane.stage.style.height = `${Math.round(height)}px`;
      pane.renderer.resize(Math.max(120, pane.stage.clientWidth), Math.round(height), frame);
    }
    this.requestPaint();
  }

  // --- window, camera, tools ------------------------------------------------------------------

  private currentWindowState(): { info: ImageInfo; state: WindowState } | null {
    const info = this.info(this.shown);
    if (!info || info.color) return null;
    return { info, state: this.windowState(info) };
  }

  /** `name`: the preset chosen (Shift+1-9); a drag's window has none. */
  private setWindow(window: Window | null, name: string | null = null): void {
    const current = this.currentWindowState();
    if (!current) return;
    current.state.window = window;
    current.state.name = name;
    if (this.lockedWindow && this.lockedWindow.modality === current.info.modality) this.lockedWindow.state = { ...current.state };
    this.requestPaint();
    if (!this.drag) this.sync(false);
  }

  private effectiveWindow(info: ImageInfo, state: WindowState): Window {
    if (state.window) return state.window;
    const lut = info.voiLut;
    if (lut) {
      return { center: lut.firstMapped + lut.table.length / 2, width: lut.table.length };
    }
    return info.defaultWindow ?? { center: 127.5, width: 256 };
  }

  /** Mouse and wheel on one viewport's canvas (every viewport shares the camera). */
  private bindPointer(renderer: Renderer): void {
    const canvas = renderer.canvas;
    canvas.addEventListener("contextmenu", (event) => event.preventDefault());
    canvas.addEventListener("dblclick", () => {
      this.renderer.camera.fitted = true;
      this.requestPaint();
    });
    canvas.addEventListener("pointerdown", (event) => {
      activeViewer = this;
      canvas.setPointerCapture(event.pointerId);
      const start = renderer.canvasPoint(event.clientX, event.clientY);
      let mode = this.tools.tool;
      if (event.button === 2 || event.button === 1 || event.shiftKey || event.ctrlKey) mode = "pan";
      const current = this.currentWindowState();
      let boxIndex: number | null = null;
      let handle = "";
      if (mode === "box" && this.shown !== null) {
        const hit = this.hitBox(start);
        boxIndex = hit?.index ?? null;
        handle = hit?.handle ?? "";
        this.selectedBox = boxIndex;
        if (boxIndex === null && !this.tools.canDraw()) this.flashStatus("Choose the box class first: B, then B again for the next class.");
      }
      if (mode === "ruler") {
        const point = this.renderer.camera.toImage(start);
        this.ruler = { from: point, to: point };
      }
      this.drag = {
        button: event.button,
        start,
        last: start,
        window: current ? this.effectiveWindow(current.info, current.state) : null,
        mode,
        boxIndex,
        handle,
      };
      event.preventDefault();
    });
    canvas.addEventListener("pointermove", (event) => {
      const drag = this.drag;
      if (!drag) return;
      const point = renderer.canvasPoint(event.clientX, event.clientY);
      const dx = point.x - drag.last.x;
      const dy = point.y - drag.last.y;
      drag.last = point;
      if (drag.mode === "pan") {
        this.renderer.camera.pan(dx, dy);
      } else if (drag.mode === "window" && drag.window) {
        const current = this.currentWindowState();
        if (current) {
          const unitsPerPixel = Math.max(drag.window.width, 16) / 256;
          this.setWindow(draggedWindow(drag.window, point.x - drag.start.x, point.y - drag.start.y, unitsPerPixel));
        }
      } else if (drag.mode === "box") {
        this.dragBox(drag, point);
      } else if (drag.mode === "ruler" && this.ruler) {
        this.ruler.to = this.renderer.camera.toImage(point);
      }
      this.requestPaint();
    });
    const end = (): void => {
      const drag = this.drag;
      this.drag = null;
      if (drag?.mode === "window") this.sync(false);
      if (drag?.mode === "box" && this.draftBox && this.shown !== null) {
        if (this.draftBox.width >= 2 && this.draftBox.height >= 2) {
          const boxes = [...this.boxesOf(this.shown), this.draftBox];
          this.tools.edit(this.shown, boxes);
          this.selectedBox = boxes.length - 1;
        }
        this.draftBox = null;
        this.requestPaint();
        this.renderStatus();
      }
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    canvas.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        const info = this.info(this.shown);
        const stack = !!info && ((info.series?.length ?? 0) > 1 || info.frames > 1);
        if (stack && !event.ctrlKey) {
          const step = event.deltaY > 0 ? 1 : -1;
          if ((info?.series?.length ?? 0) > 1) this.stepSlice(step);
          else this.stepFrame(step);
          return;
        }
        const anchor = renderer.canvasPoint(event.clientX, event.clientY);
        this.renderer.camera.zoomAt(anchor, event.deltaY < 0 ? 1.15 : 1 / 1.15);
        this.requestPaint();
      },
      { passive: false },
    );
  }

  /** The status row's buttons (classes, save, retry) and the message's (the end of a list). */
  private bindButtons(): void {
    this.status.addEventListener("click", (event) => {
      const target = (event.target as HTMLElement).closest("button");
      if (!target || !this.data || this.signedOut !== null) return;
      if (target.classList.contains("mrv-retry")) {
        this.failed.clear();
        this.sync(false, true);
        this.renderStatus();
      } else if (target.classList.contains("mrv-save-multi")) {
        this.save(null, [...this.multiSelection], true, event.timeStamp);
      } else if (target.dataset.classIndex !== undefined) {
        this.classKey(Number(target.dataset.classIndex), event.timeStamp);
      }
    });
    this.message.addEventListener("click", (event) => {
      if ((event.target as HTMLElement).closest(".mrv-first-left") && this.signedOut === null && !this.left) this.openFirstLeft();
    });
  }

  private hitBox(point: Point): { index: number; handle: string } | null {
    if (this.shown === null) return null;
    const boxes = this.boxesOf(this.shown);
    const tolerance = 8 * (window.devicePixelRatio || 1);
    for (let index = boxes.length - 1; index >= 0; index--) {
      const box = boxes[index] as Box;
      if (box.frame !== this.frame) continue;
      const a = this.renderer.camera.toCanvas({ x: box.x, y: box.y });
      const b = this.renderer.camera.toCanvas({ x: box.x + box.width, y: box.y + box.height });
      const near = (x: number, y: number): boolean => Math.abs(point.x - x) < tolerance && Math.abs(point.y - y) < tolerance;
      if (near(b.x, b.y)) return { index, handle: "se" };
      if (near(a.x, a.y)) return { index, handle: "nw" };
      if (near(b.x, a.y)) return { index, handle: "ne" };
      if (near(a.x, b.y)) return { index, handle: "sw" };
      if (point.x >= a.x && point.x <= b.x && point.y >= a.y && point.y <= b.y) return { index, handle: "move" };
    }
    return null;
  }

  private dragBox(drag: NonNullable<Viewer["drag"]>, point: Point): void {
    if (this.shown === null) return;
    const info = this.info(this.shown);
    if (!info) return;
    const clampX = (x: number): number => Math.min(info.width, Math.max(0, x));
    const clampY = (y: number): number => Math.min(info.height, Math.max(0, y));
    const from = this.renderer.camera.toImage(drag.start);
    const to = this.renderer.camera.toImage(point);
    if (drag.boxIndex === null) {
      if (!this.tools.canDraw()) return;
      const x0 = clampX(Math.min(from.x, to.x));
      const y0 = clampY(Math.min(from.y, to.y));
      this.draftBox = {
        label: this.tools.boxClass,
        x: x0,
        y: y0,
        width: clampX(Math.max(from.x, to.x)) - x0,
        height: clampY(Math.max(from.y, to.y)) - y0,
        frame: this.frame,
      };
      return;
    }
    const boxes = this.boxesOf(this.shown).map((box) => ({ ...box }));
    const box = boxes[drag.boxIndex];
    if (!box) return;
    const scale = this.renderer.camera.scale;
    const dx = (point.x - drag.last.x) / scale;
    const dy = (point.y - drag.last.y) / scale;
    let left = box.x;
    let top = box.y;
    let right = box.x + box.width;
    let bottom = box.y + box.height;
    if (drag.handle === "move") {
      const moveX = Math.min(info.width - right, Math.max(-left, dx));
      const moveY = Math.min(info.height - bottom, Math.max(-top, dy));
      left += moveX;
      right += moveX;
      top += moveY;
      bottom += moveY;
    } else {
      if (drag.handle.includes("w")) left = clampX(left + dx);
      if (drag.handle.includes("e")) right = clampX(right + dx);
      if (drag.handle.includes("n")) top = clampY(top + dy);
      if (drag.handle.includes("s")) bottom = clampY(bottom + dy);
    }
    Object.assign(box, {
      x: Math.min(left, right),
      y: Math.min(top, bottom),
      width: Math.max(1, Math.abs(right - left)),
      height: Math.max(1, Math.abs(bottom - top)),
    });
    this.tools.edit(this.shown, boxes);
  }

  // --- keyboard -------------------------------------------------------------------------------

  private classKey(index: number, eventTime: number): void {
    const data = this.data;
    if (!data || data.mode !== "label") return;
    const name = data.classes[index];
    if (name === undefined) return;
    if (data.multi) {
      if (this.multiSelection.has(name)) this.multiSelection.delete(name);
      else this.multiSelection.add(name);
      this.renderStatus();
      return;
    }
    this.save(name, null, true, eventTime);
  }

  onKey(event: KeyboardEvent): void {
    if (!this.root.isConnected || !this.data || this.signedOut !== null || this.left) return;
    // The reader clicked another page and the viewer finishes its saves: keys wait for the page.
    if (this.leaving) return void event.preventDefault();
    if (event.altKey || event.metaKey) return;
    const active = document.activeElement;
    if (isTextEntry(active)) return;
    const key = event.key;
    const label = this.data.mode === "label";
    let handled = true;
    if (event.ctrlKey) {
      if (key.toLowerCase() === "z" && label) this.back();
      else handled = false;
    } else if (event.shiftKey && /^Digit[1-9]$/.test(event.code)) {
      const info = this.info(this.shown);
      const number = Number(event.code.slice(5));
      const preset = info?.windows[number - 1];
      if (preset) this.setWindow({ center: preset.center, width: preset.width }, preset.name);
      else if (info && !info.color) this.flashStatus(`No window preset ${number}: this image has ${info.windows.length} (Shift+1-${info.windows.length}).`);
    } else if (/^[1-9]$/.test(key) && label) {
      if (event.repeat) return void event.preventDefault(); // a held key labels once
      this.classKey(Number(key) - 1, event.timeStamp);
    } else {
      switch (key) {
        case "Enter":
          if (label && this.current === null && this.atEnd !== null) this.openFirstLeft();
          else if (label && this.data.multi) this.save(null, [...this.multiSelection], true, event.timeStamp);
          else handled = false;
          break;
        case "Backspace":
          if (this.tools.tool === "box" && this.selectedBox !== null) this.deleteSelectedBox();
          else if (label) this.back();
          else handled = false;
          break;
        case "Delete":
          this.deleteSelectedBox();
          break;
        case "n":
        case "N":
        case "PageDown":
          if (label) this.advance();
          else handled = false;
          break;
        case "PageUp":
          if (label) this.back();
          else handled = false;
          break;
        case "u":
        case "U":
          this.unsure = !this.unsure;
          this.requestPaint();
          break;
        case "ArrowUp":
          this.stepSlice(-1);
          break;
        case "ArrowDown":
          this.stepSlice(1);
          break;
        case "ArrowLeft":
          this.stepFrame(-1);
          break;
        case "ArrowRight":
          this.stepFrame(1);
          break;
        case "+":
        case "=":
          this.zoomCentre(1.25);
          break;
        case "-":
        case "_":
          this.zoomCentre(1 / 1.25);
          break;
        case "f":
        case "F":
          this.renderer.camera.fitted = true;
          this.requestPaint();
          break;
        case "a":
        case "A":
          this.renderer.camera.actualSize(this.renderer.canvas.width, this.renderer.canvas.height);
          this.requestPaint();
          break;
        case "i":
        case "I": {
          const current = this.currentWindowState();
          if (current) current.state.invert = !current.state.invert;
          this.requestPaint();
          break;
        }
        case "r":
        case "R":
          this.reset();
          break;
        case "l":
        case "L":
          this.toggleLock();
          break;
        case "o":
        case "O":
          this.overlayOn = !this.overlayOn;
          this.requestPaint();
          break;
        case "[":
          this.overlayOpacity = Math.max(0.05, this.overlayOpacity - 0.1);
          this.requestPaint();
          break;
        case "]":
          this.overlayOpacity = Math.min(1, this.overlayOpacity + 0.1);
          this.requestPaint();
          break;
        case " ":
          this.toggleCine();
          break;
        case ",":
        case ".":
          this.setCineRate(key === "." ? 1 : -1);
          break;
        case "w":
        case "W":
          this.tools.tool = "window";
          this.requestPaint();
          break;
        case "p":
        case "P":
          this.tools.tool = "pan";
          this.requestPaint();
          break;
        case "b":
        case "B":
          if (this.data.boxesEnabled) this.tools.boxKey(this.data.classes);
          this.requestPaint();
          break;
        case "m":
        case "M":
          this.tools.rulerKey();
          if (this.tools.tool !== "ruler") this.ruler = null;
          this.requestPaint();
          break;
        case "s":
        case "S":
          if (label && this.data.boxesEnabled) this.saveBoxes(event.timeStamp);
          else handled = false;
          break;
        case "Escape":
          // Esc leaves what is being done: a box being drawn or selected, the ruler, the tool.
          this.selectedBox = null;
          this.draftBox = null;
          this.ruler = null;
          this.tools.escape();
          this.requestPaint();
          break;
        default:
          handled = false;
      }
    }
    if (handled) {
      event.preventDefault();
      event.stopPropagation();
      if (active instanceof HTMLElement && active.getAttribute("role") === "combobox") active.blur();
    }
  }

  /**
   * S: save the image's boxes with the class the reader gave it, staying on the image. Without a
   * class that is a read of boxes alone, which only a project that allows it takes.
   */
  private saveBoxes(eventTime: number): void {
    const info = this.info(this.shown);
    if (!info || !this.data) return;
    const multi = this.data.multi;
    const label = multi ? null : info.label;
    const labels = multi ? [...this.multiSelection] : null;
    if (label === null && !labels?.length && !this.data.boxOnly) {
      this.flashStatus(`Not saved: choose a class for this image (${multi ? "1-9, then Enter" : "1-9"}); its boxes go with it.`);
      return;
    }
    if (label === null && !labels?.length && this.boxesOf(info.id).length === 0) {
      this.flashStatus("Not saved: draw a box first, or choose a class (1-9).");
      return;
    }
    this.save(label, labels, false, eventTime);
  }

  private deleteSelectedBox(): void {
    if (this.shown === null || this.selectedBox === null) return;
    const boxes = this.boxesOf(this.shown).filter((_, index) => index !== this.selectedBox);
    this.tools.edit(this.shown, boxes);
    this.selectedBox = null;
    this.requestPaint();
    this.renderStatus();
  }

  private zoomCentre(factor: number): void {
    const canvas = this.renderer.canvas;
    this.renderer.camera.zoomAt({ x: canvas.width / 2, y: canvas.height / 2 }, factor);
    this.requestPaint();
  }

  private reset(): void {
    const current = this.currentWindowState();
    if (current) {
      current.state.window = current.info.voiLut ? null : current.info.defaultWindow;
      current.state.name = current.info.voiLut ? null : (current.info.windows[0]?.name ?? null);
      current.state.invert = false;
    }
    this.renderer.camera.fitted = true;
    this.ruler = null;
    this.requestPaint();
    this.sync(false);
  }

  private toggleLock(): void {
    const current = this.currentWindowState();
    if (this.lockedWindow || !current) this.lockedWindow = null;
    else this.lockedWindow = { modality: current.info.modality, state: { ...current.state } };
    this.requestPaint();
  }

  private toggleCine(): void {
    if (this.cineTimer !== null) {
      this.stopCine();
      this.requestPaint();
      return;
    }
    const info = this.info(this.shown);
    if (!info) return;
    const slices = (info.series?.length ?? 0) > 1;
    if (!slices && info.frames < 2) return;
    this.cineTimer = window.setInterval(() => {
      const now = this.info(this.shown);
      if (!now) return;
      if (slices && now.series && this.shown !== null) {
        const index = now.series.indexOf(this.shown);
        this.stepSlice(index >= now.series.length - 1 ? -index : 1);
      } else this.stepFrame(1);
    }, 1000 / this.cineFps);
    this.requestPaint();
  }

  /** Cine frame rate one step up or down (2-60 frames a second), applied at once when playing. */
  private setCineRate(direction: number): void {
    const rates = [2, 5, 10, 15, 20, 25, 30, 60];
    const index = rates.indexOf(this.cineFps);
    this.cineFps = rates[Math.min(rates.length - 1, Math.max(0, (index < 0 ? 2 : index) + direction))] ?? 10;
    if (this.cineTimer !== null) {
      this.stopCine();
      this.toggleCine();
    }
    this.flashStatus(`cine ${this.cineFps} frames a second`);
    this.requestPaint();
  }

  private stopCine(): void {
    if (this.cineTimer !== null) window.clearInterval(this.cineTimer);
    this.cineTimer = null;
  }
}

/**
 * An element's top in the page (scrolling does not change it) and the height of the window it is
 * scrolled in: Streamlit scrolls its main area, not the document.
 */
export function pageTop(element: HTMLElement): { top: number; height: number } {
  const rect = element.getBoundingClientRect();
  for (let parent = element.parentElement; parent; parent = parent.parentElement) {
    const overflow = getComputedStyle(parent).overflowY;
    if ((overflow === "auto" || overflow === "scroll") && parent.scrollHeight > parent.clientHeight) {
      const box = parent.getBoundingClientRect();
      return { top: rect.top - box.top + parent.scrollTop, height: Math.min(parent.clientHeight, window.innerHeight - box.top) };
    }
  }
  return { top: rect.top + window.scrollY, height: window.innerHeight };
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => `&#${character.charCodeAt(0)};`);
}

export type { Frame };
