/**
 * One viewer instance, a thin composition (Cornerstone3D's split): its state is here, what is on
 * screen (image, slice, frame, window, camera), the frames held in the browser (frames.ts), the
 * worklist (worklist.ts: the links that make "next" instant, the way back), the tools (tools.ts) and
 * the reads waiting for the server (pending.ts, navigation.ts); the work on that state is in modules
 * of its own: the server protocol (viewersync.ts), moving and labelling (viewernav.ts), painting
 * (viewerpaint.ts), pointer input (viewerpointer.ts) and keys (viewerkeys.ts). The fields are open
 * to those modules, not to pages.
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

import { ActiveClock } from "./activetime";
import { escapeHtml, pageTop } from "./dom";
import type { FrameFetcher } from "./fetcher";
import { type Frame, FrameCache } from "./frames";
import { guard } from "./navigation";
import { Pane } from "./pane";
import { PendingReads, type TabStorage } from "./pending";
import type { Renderer } from "./renderer";
import { Tools } from "./tools";
import type { Box, ImageInfo, SignedOutData, ViewerData } from "./types";
import * as viewerkeys from "./viewerkeys";
import * as viewerpaint from "./viewerpaint";
import * as viewerpointer from "./viewerpointer";
import * as viewersync from "./viewersync";
import type { Point } from "./viewport";
import type { DisplayParams, Window } from "./windowing";
import { Worklist } from "./worklist";

export type SetState = (name: string, value: unknown) => void;

/** Frames kept in the browser: a 500-slice 512x512 CT is 250 MB as int16. */
export const CACHE_BYTES = 768 * 1024 * 1024;
/** Frames asked for at once (the server sends what fits its per-run budget). */
export const MAX_WANTED = 128;
/** Worklist images prefetched after the current one. */
export const PREFETCH_IMAGES = 12;
/** Slices prefetched ahead of the current one in the scroll direction (and half as many behind). */
export const PREFETCH_SLICES = 48;
/** A report the server has not answered after this long is sent again (ms). */
export const UNANSWERED_MS = 2000;

export function tabStorage(): TabStorage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: reads are held in memory only
  }
}

export interface WindowState {
  window: Window | null;
  /** The preset the window came from (Shift+1-9, or the first one offered), null once dragged. */
  name: string | null;
  invert: boolean;
}

let activeViewer: Viewer | null = null;
/** What tells the active clock the reader is there. */
const INPUT_EVENTS = ["keydown", "pointermove", "pointerdown", "wheel"] as const;

window.addEventListener("keydown", (event) => activeViewer?.onKey(event), true);

export class Viewer {
  data: ViewerData | null = null;
  setState: SetState = () => {};
  readonly root: HTMLDivElement;
  readonly header: HTMLDivElement;
  readonly status: HTMLDivElement;
  /** Where the viewports sit: one, or the image and its map side by side (`ViewerData.split`). */
  readonly stages: HTMLDivElement;
  readonly message: HTMLDivElement;
  /** The viewports: the first shows the image, a second (split) the image under its map. */
  readonly panes: Pane[] = [];
  readonly cache = new FrameCache(CACHE_BYTES);
  /** Frames over HTTP (viewersync.ts; null: asked for in the reports). */
  fetcher: FrameFetcher | null = null;
  readonly infos = new Map<number, ImageInfo>();
  readonly decoding = new Set<string>();
  readonly missing = new Map<string, string>();
  readonly overlays = new Map<string, HTMLCanvasElement>();
  readonly overlayLabels = new Map<string, string>();
  readonly worklist = new Worklist();
  lastJump = -1;
  /** The worklist image the reader is on, the series image shown (a slice of it) and its frame. */
  current: number | null = null;
  shown: number | null = null;
  frame = 0;
  scrollDirection = 1;
  /** Past the list's last image (label mode): what the server says is left to do on it, once known. */
  atEnd: { count: number; first: number | null } | "unknown" | null = null;
  readonly windowStates = new Map<number, WindowState>();
  lockedWindow: { modality: string; state: WindowState } | null = null;
  /** The image whose pixels are on the canvas, and since when (performance.now()). */
  painted: { imageId: number; frame: number; at: number; firstAt: number } | null = null;
  /** The active reading time of the image on screen (activetime.ts): restarted when it is first painted. */
  readonly clock = new ActiveClock(performance.now(), document.visibilityState !== "hidden");
  readonly pending = new PendingReads(tabStorage());
  /** Reads the server acknowledged since the viewer was mounted (the worklist follows the count). */
  savedCount = 0;
  readonly failed = new Map<number, string>();
  /** Why the server refused this viewer's last report (its sign-in ended); null while signed in. */
  signedOut: string | null = null;
  tick = 0;
  lastSync = "";
  /** Whether the last report has had no answer yet (any data from the server answers it). */
  unanswered = false;
  /** The page is being left (navigation.ts): nothing is sent any more. */
  left = false;
  readonly tools = new Tools();
  drag: { button: number; start: Point; last: Point; window: Window | null; mode: Tools["tool"]; boxIndex: number | null; handle: string } | null = null;
  selectedBox: number | null = null;
  draftBox: Box | null = null;
  ruler: { from: Point; to: Point } | null = null;
  unsure = false;
  multiSelection = new Set<string>();
  overlayOn = true;
  overlayOpacity = 0.45;
  cineTimer: number | null = null;
  cineFps = 10;
  frameRequested = false;
  readonly resizeObserver: ResizeObserver;

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
    viewerpointer.bindButtons(this);
    this.resizeObserver = new ResizeObserver(() => viewerpaint.layout(this));
    this.resizeObserver.observe(this.root);
    window.addEventListener("resize", this.layoutHandler);
    activeViewer = this;
    this.root.addEventListener("pointerenter", () => (activeViewer = this));
    // A reader study's rating form sits beside the viewer: the active seconds so far go to the server
    // when the reader leaves the image for it (pointer, keyboard focus, a press outside the viewer),
    // as a beacon to the frame route: a report would rerun the page under the form being filled.
    this.root.addEventListener("pointerleave", this.sendActive);
    this.root.addEventListener("focusout", this.sendActive);
    window.addEventListener("pointerdown", this.onPressOutside, true);
    window.addEventListener("beforeunload", this.beforeUnload);
    for (const type of INPUT_EVENTS) window.addEventListener(type, this.onInput, { capture: true, passive: true });
    document.addEventListener("visibilitychange", this.onVisibility);
    // A delivery can be lost with an interrupted app run (and a report, sent in one batch with
    // another fragment's): ask again for frames still missing, send again what had no answer.
    this.retryTimer = window.setInterval(() => {
      // A viewer whose page was left must never report again: its report would rerun that page.
      if (!this.root.isConnected) this.destroy();
      else if (this.data?.mode === "label" && performance.now() - this.lastSyncAt > UNANSWERED_MS && (this.unanswered || this.unacknowledged() > 0)) viewersync.sync(this, false, true);
      else if (performance.now() - this.lastSyncAt > 1500 && viewersync.wanted(this).length > 0) viewersync.sync(this, true);
    }, 1000);
  }

  readonly retryTimer: number;

  /** A key, pointer move, wheel turn or click: the reader is at the screen (activetime.ts). */
  readonly onInput = (event: Event): void => this.clock.input(event.timeStamp);
  readonly onVisibility = (event: Event): void => this.clock.visibility(document.visibilityState !== "hidden", event.timeStamp);

  /** The active seconds of the image on screen to `ViewerData.activeUrl`, if the page asked for them. */
  readonly sendActive = (): void => {
    const url = this.data?.mode === "view" ? this.data.activeUrl : null;
    if (!url || this.shown === null || !this.painted) return;
    const seconds = Math.round(this.clock.seconds(performance.now()) * 10) / 10;
    navigator.sendBeacon(url, new Blob([JSON.stringify({ imageId: this.shown, seconds })], { type: "application/json" }));
  };
  readonly onPressOutside = (event: Event): void => {
    if (!this.root.contains(event.target as Node)) this.sendActive();
  };

  /** This viewer takes the keys (the last one the pointer entered or pressed in). */
  activate(): void {
    activeViewer = this;
  }
  lastSyncAt = 0;

  /** The first viewport's renderer: its camera is every viewport's. */
  get renderer(): Renderer {
    return (this.panes[0] as Pane).renderer;
  }

  addPane(): void {
    const pane = new Pane(this.stages, this.panes[0]?.renderer.camera, this.panes.length ? "mrv-map-pane" : "");
    this.stages.insertBefore(pane.stage, this.message);
    this.panes.push(pane);
    viewerpointer.bindPointer(this, pane.renderer);
  }

  /** Side by side (the image and its map) or one viewport, as the page asks. */
  setSplit(split: boolean): void {
    if (split && this.panes.length === 1) this.addPane();
    else if (!split && this.panes.length > 1) this.panes.splice(1).forEach((pane) => pane.stage.remove());
    else return;
    this.root.dataset.split = String(split);
    viewerpaint.layout(this);
  }

  readonly layoutHandler = (): void => viewerpaint.layout(this);

  /** Closing or reloading the tab with reads the server has not acknowledged asks first. */
  readonly beforeUnload = (event: BeforeUnloadEvent): void => {
    if (this.signedOut !== null || this.pending.length === 0) return;
    event.preventDefault();
    event.returnValue = ""; // older browsers ask only when this is set
  };

  /** A click on another page waits for the reads still on their way (navigation.ts). */
  readonly unguard = guard({
    busy: () => this.signedOut === null && !this.left && this.unacknowledged() > 0 && this.root.isConnected,
    finish: (done) => {
      this.leaving = done;
      viewersync.sync(this, false, true); // once more, in case the last report was lost
      viewerpaint.renderStatus(this);
    },
    leave: () => {
      this.left = true;
      this.leaving = null;
      viewerkeys.stopCine(this);
      viewerpaint.renderStatus(this);
    },
  });
  /** Called when the pending reads are acknowledged, while a click on another page waits for it. */
  leaving: (() => void) | null = null;

  /** Reads on their way that the server has neither saved nor refused (those wait for Retry). */
  unacknowledged(): number {
    return this.pending.items.filter((save) => !this.failed.has(save.seq)).length;
  }

  destroy(): void {
    viewerkeys.stopCine(this);
    this.left = true;
    this.unguard();
    window.clearInterval(this.retryTimer);
    this.resizeObserver.disconnect();
    window.removeEventListener("resize", this.layoutHandler);
    window.removeEventListener("beforeunload", this.beforeUnload);
    for (const type of INPUT_EVENTS) window.removeEventListener(type, this.onInput, { capture: true });
    document.removeEventListener("visibilitychange", this.onVisibility);
    window.removeEventListener("pointerdown", this.onPressOutside, true);
    if (activeViewer === this) activeViewer = null;
    this.root.remove();
  }

  // --- data from the server -------------------------------------------------------------------

  update(data: ViewerData | SignedOutData, setState: SetState): void {
    viewersync.update(this, data, setState);
  }

  /** The sign-in ended: drop every pixel and overlay, stop asking, keep the unsaved reads shown. */
  signOut(reason: string): void {
    viewersync.signOut(this, reason);
  }

  // --- navigation -----------------------------------------------------------------------------

  /**
   * What is known of an image. A slice of a series the server described through another of its
   * images borrows that image's display facts (a series shares its geometry and windows): the
   * viewer scrolls a 500-slice series with the details of one slice.
   */
  info(imageId: number | null): ImageInfo | undefined {
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

  readonly seriesSibling = new Map<number, ImageInfo>();

  waitingForNext = false;

  // --- labelling ------------------------------------------------------------------------------

  // --- server sync ----------------------------------------------------------------------------

  settledWindow: Window | null = null;

  // --- painting -------------------------------------------------------------------------------

  requestPaint(): void {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => {
      this.frameRequested = false;
      viewerpaint.paint(this);
    });
  }

  windowState(info: ImageInfo): WindowState {
    const seriesKey = info.series ? (info.series[0] as number) : info.id;
    let state = this.windowStates.get(seriesKey);
    if (!state) {
      if (this.lockedWindow && this.lockedWindow.modality === info.modality) state = { ...this.lockedWindow.state };
      else state = { window: info.voiLut ? null : info.defaultWindow, name: info.voiLut ? null : (info.windows[0]?.name ?? null), invert: false };
      this.windowStates.set(seriesKey, state);
    }
    return state;
  }

  displayParams(info: ImageInfo): DisplayParams {
    const state = this.windowState(info);
    return {
      window: state.window,
      voiLut: info.voiLut,
      monochrome1: info.photometric === "MONOCHROME1",
      invert: state.invert,
    };
  }

  statusFlash = "";

  // --- window, camera, tools ------------------------------------------------------------------

  currentWindowState(): { info: ImageInfo; state: WindowState } | null {
    const info = this.info(this.shown);
    if (!info || info.color) return null;
    return { info, state: this.windowState(info) };
  }

  /** `name`: the preset chosen (Shift+1-9); a drag's window has none. */
  setWindow(window: Window | null, name: string | null = null): void {
    const current = this.currentWindowState();
    if (!current) return;
    current.state.window = window;
    current.state.name = name;
    if (this.lockedWindow && this.lockedWindow.modality === current.info.modality) this.lockedWindow.state = { ...current.state };
    this.requestPaint();
    if (!this.drag) viewersync.sync(this, false);
  }

  effectiveWindow(info: ImageInfo, state: WindowState): Window {
    if (state.window) return state.window;
    const lut = info.voiLut;
    if (lut) {
      return { center: lut.firstMapped + lut.table.length / 2, width: lut.table.length };
    }
    return info.defaultWindow ?? { center: 127.5, width: 256 };
  }

  // --- keyboard -------------------------------------------------------------------------------

  onKey(event: KeyboardEvent): void {
    viewerkeys.onKey(this, event);
  }

}

export { escapeHtml, pageTop } from "./dom";
export type { Frame };
