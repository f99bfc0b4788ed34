/**
 * A case in a grid of viewports (Cornerstone3D's split): one frame cache shared by the viewports
 * (frames.ts), viewports that each show, window and prefetch their own series (seriesviewport.ts), the
 * links between them (linking.ts) and the labelling controller (controller.ts) that turns a class key
 * into one read of the case, whichever viewport is active. This class holds the case viewer's state;
 * the work on it is in modules of its own: frames and reports (casesync.ts), pointer and keys
 * (caseinput.ts) and painting (casepaint.ts). The fields are open to those modules, not to pages.
 *
 * Tab / Shift+Tab or a click makes a viewport active (outlined); the wheel and Up/Down scroll it, and
 * with the scroll link on (Y; on by default) the viewports sharing its frame of reference go to the
 * slice nearest its position. Window/level is per viewport; L links it across the viewports.
 *
 * The server is told what was read through one state value (`sync`), as the worklist viewer does
 * (viewer.ts): the case reads not yet acknowledged, the slice each viewport shows and which one is
 * active. The frames wanted, most urgent first, are fetched over HTTP in parallel batches
 * (fetcher.ts, ui/frame_route.py) where the server gives a frame URL; else (or once that URL is
 * refused) they are asked for in `sync` and arrive with the page's next run.
 *
 * The next case opens at once: the server sends the worklist's next case (`next`) with the one on
 * screen, and the first slice of each of its viewports unasked; the viewer prefetches a few more. A
 * class key that reads the case opens the next one from the browser's cache there and then, and the
 * read is saved in the background (pending until acknowledged, kept in the tab's storage as the
 * worklist viewer's reads are). Should the server refuse the read, the viewer goes back to its case.
 * A viewer whose sign-in ended is signed out for good: its frames go and its reads stay unsent.
 */

import * as caseinput from "./caseinput";
import * as casepaint from "./casepaint";
import * as casesync from "./casesync";
import { CaseLabels } from "./controller";
import { FrameFetcher } from "./fetcher";
import { decodeRow, FrameCache } from "./frames";
import { legendHtml } from "./keyboard";
import { layoutOf, linkedSlices, windowTargets } from "./linking";
import type { TabStorage } from "./pending";
import { SeriesViewport } from "./seriesviewport";
import type { CaseData, ImageInfo } from "./types";
import type { Window } from "./windowing";

export type SetState = (name: string, value: unknown) => void;

/** Frames kept in the browser for the case: four 100-slice 512x512 series are 200 MB as int16. */
export const CACHE_BYTES = 768 * 1024 * 1024;
/** Frames asked for at once (the server sends what fits its per-run budget). */
export const MAX_WANTED = 256;
/** Slices of each viewport of the next case prefetched before it opens (the first one comes unasked). */
export const NEXT_CASE_SLICES = 4;

export type CaseSpec = CaseData["case"];

export function tabStorage(): TabStorage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: reads are held in memory only
  }
}

export function caseKeyOf(spec: CaseSpec): string {
  return JSON.stringify([spec.id, spec.layout, spec.viewports]);
}

export const LEGEND_CASE = [
  ["Tab / click", "next viewport"],
  ["wheel / ↑ ↓", "slices"],
  ["← →", "frames"],
  ["Y", "link scroll"],
  ["L", "link W/L"],
  ["left-drag", "window"],
  ["right-drag", "pan"],
  ["Ctrl+wheel / + −", "zoom"],
  ["Shift+1-9", "window presets"],
  ["I", "invert"],
  ["F", "fit"],
  ["R", "reset"],
];

let activeCase: CaseViewer | null = null;
window.addEventListener("keydown", (event) => activeCase?.onKey(event), true);

export class CaseViewer {
  data: CaseData | null = null;
  setState: SetState = () => {};
  readonly root: HTMLDivElement;
  readonly header: HTMLDivElement;
  readonly grid: HTMLDivElement;
  readonly status: HTMLDivElement;
  readonly cache = new FrameCache(CACHE_BYTES);
  readonly decoding = new Set<string>();
  readonly missing = new Map<string, string>();
  /** Frames over HTTP (null: through the runs). */
  fetcher: FrameFetcher | null = null;
  /** Facts by image id: a series' first image speaks for its slices. */
  readonly infos = new Map<number, ImageInfo>();
  viewports: SeriesViewport[] = [];
  caseKey = "";
  active = 0;
  linkScroll = true;
  linkWindow = false;
  readonly labels = new CaseLabels(0, tabStorage());
  /** The case on screen: the server's, or the next one opened ahead of it after a class key. */
  shown: CaseSpec | null = null;
  /** Opened ahead: the case a class key read (`from`) and the read's seq, until the server follows. */
  ahead: { from: string; seq: number } | null = null;
  /** Why the sign-in ended (null: signed in). */
  signedOut: string | null = null;
  drag: { viewport: SeriesViewport; mode: "window" | "pan"; start: { x: number; y: number }; last: { x: number; y: number }; window: Window | null } | null = null;
  tick = 0;
  lastSync = "";
  lastSyncAt = 0;
  flash = "";
  frameRequested = false;
  readonly resizeObserver: ResizeObserver;
  readonly retryTimer: number;

  constructor(parent: HTMLElement | ShadowRoot) {
    this.root = document.createElement("div");
    this.root.className = "mrv-root mrv-case";
    this.root.tabIndex = -1; // focusable: a click in a viewport takes the keys (Tab) from the page's controls
    this.root.innerHTML = `
      <div class="mrv-header"></div>
      <div class="mrv-grid"></div>
      <div class="mrv-status"></div>
      <details class="mrv-legend"><summary>Keys</summary><div class="mrv-keys">${legendHtml(LEGEND_CASE)}</div></details>`;
    parent.appendChild(this.root);
    this.header = this.root.querySelector(".mrv-header") as HTMLDivElement;
    this.grid = this.root.querySelector(".mrv-grid") as HTMLDivElement;
    this.status = this.root.querySelector(".mrv-status") as HTMLDivElement;
    (this.root.querySelector(".mrv-legend") as HTMLDetailsElement).open = window.innerHeight >= 860;
    this.header.addEventListener("click", (event) => {
      const button = (event.target as HTMLElement).closest("button");
      if (button?.dataset.toggle === "scroll") this.toggleScrollLink();
      else if (button?.dataset.toggle === "window") this.toggleWindowLink();
    });
    this.status.addEventListener("click", (event) => {
      const button = (event.target as HTMLElement).closest("button");
      if (button?.dataset.classIndex !== undefined) caseinput.classKey(this, Number(button.dataset.classIndex), event.timeStamp);
    });
    this.resizeObserver = new ResizeObserver(() => casepaint.layout(this));
    this.resizeObserver.observe(this.root);
    this.activate();
    this.root.addEventListener("pointerenter", () => (activeCase = this));
    // A delivery lost with an interrupted app run: ask again for what is still missing.
    this.retryTimer = window.setInterval(() => {
      if (!this.root.isConnected) this.destroy();
      else if (performance.now() - this.lastSyncAt > 1500 && (casesync.wanted(this).length > 0 || this.labels.pending.length > 0)) casesync.sync(this, true);
    }, 1000);
  }

  /** This case viewer takes the keys (the last one the pointer entered or pressed in). */
  activate(): void {
    activeCase = this;
  }

  destroy(): void {
    window.clearInterval(this.retryTimer);
    this.resizeObserver.disconnect();
    if (activeCase === this) activeCase = null;
    this.root.remove();
  }

  update(data: CaseData, setState: SetState): void {
    if (this.signedOut !== null) return; // for good: nothing more is sent or shown
    this.data = data;
    this.setState = setState;
    this.labels.minSecondsOnScreen = data.minSecondsOnScreen;
    casesync.useFrameUrl(this, data.frameUrl ?? null);
    if (data.owner) {
      // Case reads this sign-in left unsent in this tab go with the next report; another's are dropped.
      try {
        this.labels.adopt(data.owner);
      } catch {
        return this.signOut("signed in again as someone else");
      }
    }
    for (const info of data.images) this.infos.set(info.id, info);
    for (const [key, reason] of Object.entries(data.missing)) this.missing.set(key, reason);
    this.labels.answer(data.acked, data.failed);
    // Ahead of the server: data still naming the case just read is not a reason to go back to it,
    // unless the server refused that read.
    const ahead = this.ahead;
    if (ahead && (data.case.id !== ahead.from || String(ahead.seq) in data.failed)) this.ahead = null;
    if (!this.ahead && caseKeyOf(data.case) !== this.caseKey) this.open(data.case);
    const rows = data.pixels.filter((row) => !this.cache.has(row.key) && !this.decoding.has(row.key));
    for (const row of rows) this.decoding.add(row.key);
    Promise.all(
      rows.map((row) =>
        decodeRow(row)
          .then((frame) => {
            if (this.signedOut === null) this.cache.put(frame); // not a frame that arrives after a sign-out
          })
          .catch((error: unknown) => this.missing.set(row.key, String(error)))
          .finally(() => this.decoding.delete(row.key)),
      ),
    ).then(() => {
      casepaint.paint(this);
      casesync.sync(this, rows.length > 0);
    });
    casepaint.layout(this);
    casepaint.paint(this);
    casesync.sync(this, false);
  }

  /** A new case (or layout): new viewports over the same cache; the frames already held stay. */
  open(spec: CaseSpec): void {
    this.caseKey = caseKeyOf(spec);
    this.shown = spec;
    for (const viewport of this.viewports) viewport.pane.stage.remove();
    const { rows, columns } = layoutOf(spec.layout, spec.viewports.length);
    this.grid.style.gridTemplateColumns = `repeat(${columns}, minmax(0, 1fr))`;
    this.root.dataset.layout = `${rows}x${columns}`;
    this.root.dataset.caseId = spec.id;
    this.root.dataset.openedAhead = String(this.ahead !== null);
    delete this.root.dataset.paintedAheadOfSave;
    this.viewports = spec.viewports.slice(0, rows * columns).map((viewportSpec, number) => {
      const viewport = new SeriesViewport(this.grid, viewportSpec, number);
      caseinput.bindPointer(this, viewport);
      return viewport;
    });
    this.setActive(0);
    casepaint.layout(this);
  }

  /** The sign-in ended: drop every frame, stop reporting, show the reads not saved. */
  signOut(reason: string): void {
    this.signedOut = reason || "signed out";
    this.fetcher = null; // a batch on its way is dropped (frame() checks the sign-in)
    this.labels.signOut();
    this.cache.clear();
    this.drag = null;
    for (const viewport of this.viewports) viewport.pane.renderer.clear();
    this.root.dataset.signedOut = "true";
    casepaint.renderStatus(this);
  }

  /** Facts of the slice a viewport shows: its own, or its series' first image's. */
  info(viewport: SeriesViewport): ImageInfo | undefined {
    const own = viewport.imageId === null ? undefined : this.infos.get(viewport.imageId);
    if (own) return own;
    for (const imageId of viewport.spec.images) {
      const known = this.infos.get(imageId);
      if (known) return known;
    }
    return undefined;
  }

  // --- active viewport, scrolling, window -----------------------------------------------------

  setActive(index: number): void {
    this.active = Math.min(Math.max(0, index), Math.max(0, this.viewports.length - 1));
    this.root.dataset.active = String(this.active);
    this.requestPaint();
    casesync.sync(this, false);
  }

  get activeViewport(): SeriesViewport | undefined {
    return this.viewports[this.active];
  }

  /** Scroll viewport `viewport` by `delta` slices; the linked ones follow by slice position. */
  scroll(viewport: SeriesViewport, delta: number): void {
    if (!viewport.show(viewport.index + delta)) return;
    this.followPosition(viewport);
    this.requestPaint();
    casesync.sync(this, false);
  }

  /** The frames of a multi-frame image, round and round. */
  stepFrame(viewport: SeriesViewport, delta: number): void {
    const frames = this.info(viewport)?.frames ?? 1;
    if (frames < 2) return;
    viewport.frame = (viewport.frame + delta + frames) % frames;
    viewport.direction = delta > 0 ? 1 : -1;
    this.requestPaint();
    casesync.sync(this, false);
  }

  followPosition(source: SeriesViewport): void {
    if (!this.linkScroll) return;
    const moves = linkedSlices(
      this.viewports.map((viewport) => viewport.linked()),
      source.number,
    );
    for (const [index, slice] of moves) this.viewports[index]?.show(slice);
  }

  toggleScrollLink(): void {
    this.linkScroll = !this.linkScroll;
    if (this.linkScroll && this.activeViewport) this.followPosition(this.activeViewport);
    casepaint.flashStatus(this, this.linkScroll ? "Scroll linked: series sharing a frame of reference follow by slice position (Y)." : "Scroll unlinked: each viewport scrolls alone (Y).");
    this.requestPaint();
    casesync.sync(this, false);
  }

  toggleWindowLink(): void {
    this.linkWindow = !this.linkWindow;
    casepaint.flashStatus(this, this.linkWindow ? "W/L linked: a window change reaches every viewport (L)." : "W/L per viewport (L).");
    this.requestPaint();
  }

  /** Set a viewport's window (and, linked, every greyscale viewport's); `name`: the preset's. */
  setWindow(source: SeriesViewport, window: Window | null, name: string | null, invert?: boolean): void {
    const colour = this.viewports.map((viewport) => this.info(viewport)?.color ?? true);
    for (const index of windowTargets(colour, source.number, this.linkWindow)) {
      const viewport = this.viewports[index] as SeriesViewport;
      const info = this.info(viewport);
      if (!info || info.color) continue;
      const state = viewport.windowOf(info);
      state.window = window;
      state.name = name;
      if (invert !== undefined) state.invert = invert;
    }
    this.requestPaint();
  }

  // --- pointer --------------------------------------------------------------------------------

  // --- keyboard -------------------------------------------------------------------------------

  onKey(event: KeyboardEvent): void {
    caseinput.onKey(this, event);
  }

  // --- server sync ----------------------------------------------------------------------------

  // --- painting -------------------------------------------------------------------------------

  requestPaint(): void {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => {
      this.frameRequested = false;
      casepaint.paint(this);
    });
  }

}
