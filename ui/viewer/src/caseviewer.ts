/**
 * A case in a grid of viewports (Cornerstone3D's split): one frame cache shared by the viewports
 * (frames.ts), viewports that each show, window and prefetch their own series (seriesviewport.ts), the
 * links between them (linking.ts) and the labelling controller (controller.ts) that turns a class key
 * into one read of the case, whichever viewport is active.
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

import { CaseLabels } from "./controller";
import { decodeRow, FrameCache, frameKey } from "./frames";
import { isTextEntry, legendHtml } from "./keyboard";
import { layoutOf, linkedSlices, nextViewport, windowTargets } from "./linking";
import { FrameFetcher } from "./fetcher";
import { SeriesViewport } from "./seriesviewport";
import type { TabStorage } from "./pending";
import type { CaseData, ImageInfo } from "./types";
import { escapeHtml, pageTop } from "./dom";
import { draggedWindow, type Window } from "./windowing";

type SetState = (name: string, value: unknown) => void;

/** Frames kept in the browser for the case: four 100-slice 512x512 series are 200 MB as int16. */
const CACHE_BYTES = 768 * 1024 * 1024;
/** Frames asked for at once (the server sends what fits its per-run budget). */
const MAX_WANTED = 128;
/** Slices of each viewport of the next case prefetched before it opens (the first one comes unasked). */
const NEXT_CASE_SLICES = 4;

type CaseSpec = CaseData["case"];

function tabStorage(): TabStorage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: reads are held in memory only
  }
}

function caseKeyOf(spec: CaseSpec): string {
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
  private data: CaseData | null = null;
  private setState: SetState = () => {};
  private readonly root: HTMLDivElement;
  private readonly header: HTMLDivElement;
  private readonly grid: HTMLDivElement;
  private readonly status: HTMLDivElement;
  private readonly cache = new FrameCache(CACHE_BYTES);
  private readonly decoding = new Set<string>();
  private readonly missing = new Map<string, string>();
  /** Frames over HTTP (null: through the runs). */
  private fetcher: FrameFetcher | null = null;
  /** Facts by image id: a series' first image speaks for its slices. */
  private readonly infos = new Map<number, ImageInfo>();
  private viewports: SeriesViewport[] = [];
  private caseKey = "";
  private active = 0;
  linkScroll = true;
  linkWindow = false;
  private readonly labels = new CaseLabels(0, tabStorage());
  /** The case on screen: the server's, or the next one opened ahead of it after a class key. */
  private shown: CaseSpec | null = null;
  /** Opened ahead: the case a class key read (`from`) and the read's seq, until the server follows. */
  private ahead: { from: string; seq: number } | null = null;
  /** Why the sign-in ended (null: signed in). */
  private signedOut: string | null = null;
  private drag: { viewport: SeriesViewport; mode: "window" | "pan"; start: { x: number; y: number }; last: { x: number; y: number }; window: Window | null } | null = null;
  private tick = 0;
  private lastSync = "";
  private lastSyncAt = 0;
  private flash = "";
  private frameRequested = false;
  private readonly resizeObserver: ResizeObserver;
  private readonly retryTimer: number;

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
      if (button?.dataset.classIndex !== undefined) this.classKey(Number(button.dataset.classIndex), event.timeStamp);
    });
    this.resizeObserver = new ResizeObserver(() => this.layout());
    this.resizeObserver.observe(this.root);
    activeCase = this;
    this.root.addEventListener("pointerenter", () => (activeCase = this));
    // A delivery lost with an interrupted app run: ask again for what is still missing.
    this.retryTimer = window.setInterval(() => {
      if (!this.root.isConnected) this.destroy();
      else if (performance.now() - this.lastSyncAt > 1500 && (this.wanted().length > 0 || this.labels.pending.length > 0)) this.sync(true);
    }, 1000);
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
    this.useFrameUrl(data.frameUrl ?? null);
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
      this.paint();
      this.sync(rows.length > 0);
    });
    this.layout();
    this.paint();
    this.sync(false);
  }

  /** A new case (or layout): new viewports over the same cache; the frames already held stay. */
  private open(spec: CaseSpec): void {
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
      this.bindPointer(viewport);
      return viewport;
    });
    this.setActive(0);
    this.layout();
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
    this.renderStatus();
  }

  /** Facts of the slice a viewport shows: its own, or its series' first image's. */
  private info(viewport: SeriesViewport): ImageInfo | undefined {
    const own = viewport.imageId === null ? undefined : this.infos.get(viewport.imageId);
    if (own) return own;
    for (const imageId of viewport.spec.images) {
      const known = this.infos.get(imageId);
      if (known) return known;
    }
    return undefined;
  }

  // --- active viewport, scrolling, window -----------------------------------------------------

  private setActive(index: number): void {
    this.active = Math.min(Math.max(0, index), Math.max(0, this.viewports.length - 1));
    this.root.dataset.active = String(this.active);
    this.requestPaint();
    this.sync(false);
  }

  private get activeViewport(): SeriesViewport | undefined {
    return this.viewports[this.active];
  }

  /** Scroll viewport `viewport` by `delta` slices; the linked ones follow by slice position. */
  scroll(viewport: SeriesViewport, delta: number): void {
    if (!viewport.show(viewport.index + delta)) return;
    this.followPosition(viewport);
    this.requestPaint();
    this.sync(false);
  }

  /** The frames of a multi-frame image, round and round. */
  private stepFrame(viewport: SeriesViewport, delta: number): void {
    const frames = this.info(viewport)?.frames ?? 1;
    if (frames < 2) return;
    viewport.frame = (viewport.frame + delta + frames) % frames;
    viewport.direction = delta > 0 ? 1 : -1;
    this.requestPaint();
    this.sync(false);
  }

  private followPosition(source: SeriesViewport): void {
    if (!this.linkScroll) return;
    const moves = linkedSlices(
      this.viewports.map((viewport) => viewport.linked()),
      source.number,
    );
    for (const [index, slice] of moves) this.viewports[index]?.show(slice);
  }

  private toggleScrollLink(): void {
    this.linkScroll = !this.linkScroll;
    if (this.linkScroll && this.activeViewport) this.followPosition(this.activeViewport);
    this.flashStatus(this.linkScroll ? "Scroll linked: series sharing a frame of reference follow by slice position (Y)." : "Scroll unlinked: each viewport scrolls alone (Y).");
    this.requestPaint();
    this.sync(false);
  }

  private toggleWindowLink(): void {
    this.linkWindow = !this.linkWindow;
    this.flashStatus(this.linkWindow ? "W/L linked: a window change reaches every viewport (L)." : "W/L per viewport (L).");
    this.requestPaint();
  }

  /** Set a viewport's window (and, linked, every greyscale viewport's); `name`: the preset's. */
  private setWindow(source: SeriesViewport, window: Window | null, name: string | null, invert?: boolean): void {
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

  private bindPointer(viewport: SeriesViewport): void {
    const canvas = viewport.pane.renderer.canvas;
    const camera = viewport.pane.renderer.camera;
    canvas.addEventListener("contextmenu", (event) => event.preventDefault());
    canvas.addEventListener("dblclick", () => {
      camera.fitted = true;
      this.requestPaint();
    });
    canvas.addEventListener("pointerdown", (event) => {
      activeCase = this;
      this.root.focus({ preventScroll: true });
      if (viewport.number !== this.active) this.setActive(viewport.number);
      canvas.setPointerCapture(event.pointerId);
      const start = viewport.canvasPoint(event.clientX, event.clientY);
      const info = this.info(viewport);
      const pan = event.button !== 0 || event.shiftKey || event.ctrlKey;
      this.drag = { viewport, mode: pan ? "pan" : "window", start, last: start, window: info && !info.color ? viewport.effectiveWindow(info) : null };
      event.preventDefault();
    });
    canvas.addEventListener("pointermove", (event) => {
      const drag = this.drag;
      if (!drag || drag.viewport !== viewport) return;
      const point = viewport.canvasPoint(event.clientX, event.clientY);
      if (drag.mode === "pan") camera.pan((viewport.spec.mirror ? -1 : 1) * (point.x - drag.last.x), point.y - drag.last.y);
      else if (drag.window) {
        const unitsPerPixel = Math.max(drag.window.width, 16) / 256;
        this.setWindow(viewport, draggedWindow(drag.window, point.x - drag.start.x, point.y - drag.start.y, unitsPerPixel), null);
      }
      drag.last = point;
      this.requestPaint();
    });
    const end = (): void => {
      if (this.drag?.mode === "window") this.sync(false);
      this.drag = null;
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    canvas.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        activeCase = this;
        if (viewport.number !== this.active) this.setActive(viewport.number);
        const frames = this.info(viewport)?.frames ?? 1;
        if (!event.ctrlKey && viewport.slices < 2 && frames > 1) return this.stepFrame(viewport, event.deltaY > 0 ? 1 : -1);
        if (event.ctrlKey || viewport.slices < 2) {
          const anchor = viewport.canvasPoint(event.clientX, event.clientY);
          camera.zoomAt(anchor, event.deltaY < 0 ? 1.15 : 1 / 1.15);
          this.requestPaint();
          return;
        }
        this.scroll(viewport, event.deltaY > 0 ? 1 : -1);
      },
      { passive: false },
    );
  }

  // --- keyboard -------------------------------------------------------------------------------

  onKey(event: KeyboardEvent): void {
    if (!this.root.isConnected || !this.data || event.altKey || event.metaKey) return;
    const focused = document.activeElement;
    if (isTextEntry(focused)) return;
    const viewport = this.activeViewport;
    if (!viewport) return;
    const key = event.key;
    let handled = true;
    if (key === "Tab") {
      // Tab moves between viewports unless the reader is on one of the page's controls.
      const onPage = focused && focused !== document.body && !this.root.contains(focused);
      if (onPage || event.ctrlKey) return;
      this.setActive(nextViewport(this.active, this.viewports.length, event.shiftKey));
    } else if (event.ctrlKey) {
      handled = false;
    } else if (event.shiftKey && /^Digit[1-9]$/.test(event.code)) {
      const info = this.info(viewport);
      const preset = info?.windows[Number(event.code.slice(5)) - 1];
      if (preset) this.setWindow(viewport, { center: preset.center, width: preset.width }, preset.name);
    } else if (/^[1-9]$/.test(key) && this.data.classes.length) {
      if (event.repeat) return void event.preventDefault();
      this.classKey(Number(key) - 1, event.timeStamp);
    } else {
      switch (key) {
        case "ArrowUp":
          this.scroll(viewport, -1);
          break;
        case "ArrowDown":
          this.scroll(viewport, 1);
          break;
        case "ArrowLeft":
          this.stepFrame(viewport, -1);
          break;
        case "ArrowRight":
          this.stepFrame(viewport, 1);
          break;
        case "y":
        case "Y":
          this.toggleScrollLink();
          break;
        case "l":
        case "L":
          this.toggleWindowLink();
          break;
        case "i":
        case "I": {
          const info = this.info(viewport);
          if (info && !info.color) {
            const state = viewport.windowOf(info);
            this.setWindow(viewport, state.window, state.name, !state.invert);
          }
          break;
        }
        case "f":
        case "F":
          viewport.pane.renderer.camera.fitted = true;
          this.requestPaint();
          break;
        case "+":
        case "=":
        case "-":
        case "_": {
          const canvas = viewport.pane.renderer.canvas;
          viewport.pane.renderer.camera.zoomAt({ x: canvas.width / 2, y: canvas.height / 2 }, key === "+" || key === "=" ? 1.25 : 1 / 1.25);
          this.requestPaint();
          break;
        }
        case "r":
        case "R": {
          const info = this.info(viewport);
          if (info && !info.color) {
            const initial = viewport.initialWindow(info);
            this.setWindow(viewport, initial.window, initial.name, false);
          }
          viewport.pane.renderer.camera.fitted = true;
          this.requestPaint();
          break;
        }
        default:
          handled = false;
      }
    }
    if (handled) {
      event.preventDefault();
      event.stopPropagation();
    }
  }

  /** A class key: one read of the case, whichever viewport is active. */
  private classKey(index: number, eventTime: number): void {
    const data = this.data;
    const painted = this.viewports.map((viewport) => viewport.paintedAt).filter((at): at is number => at !== null);
    if (!data || this.signedOut !== null || !this.shown) return;
    const caseId = this.shown.id;
    const outcome = this.labels.classKey(caseId, data.classes, index, eventTime, painted.length ? Math.min(...painted) : null, this.active, data.owner);
    if ("refused" in outcome) this.flashStatus(outcome.refused);
    else if (data.next && data.next.id !== caseId && this.ahead === null) {
      // The next case opens now, from the frames already here; the read is saved behind it.
      this.ahead = { from: caseId, seq: outcome.read.seq };
      this.open(data.next);
    }
    this.renderStatus();
    this.sync(false);
  }

  // --- server sync ----------------------------------------------------------------------------

  private useFrameUrl(url: string | null): void {
    if (url === null) {
      this.fetcher = null;
      return;
    }
    if (this.fetcher) {
      this.fetcher.setUrl(url);
      return;
    }
    this.fetcher = new FrameFetcher(url, {
      frame: (frame) => {
        if (this.signedOut === null) this.cache.put(frame); // not a frame that arrives after a sign-out
      },
      missing: (key, reason) => this.missing.set(key, reason),
      batch: () => {
        this.requestPaint();
        this.pumpFrames();
      },
      broken: () => this.sync(true), // through the runs from now on
    });
  }

  /** Frames over HTTP: whether they come that way now. */
  private get fetching(): boolean {
    return this.fetcher !== null && this.fetcher.broken === null && this.signedOut === null;
  }

  private pumpFrames(): void {
    // The frame on screen of each viewport comes first in wanted(): those do not wait behind prefetches.
    if (this.fetching) this.fetcher?.pump(this.wanted(), this.viewports.length);
  }

  /** Frames wanted: every viewport's frame on screen (the active one first), then each one's prefetch in turn. */
  private wanted(): string[] {
    const has = (key: string): boolean =>
      this.cache.has(key) || this.decoding.has(key) || this.missing.has(key) || (this.fetcher?.fetching(key) ?? false);
    const order = [this.active, ...this.viewports.map((_, index) => index).filter((index) => index !== this.active)];
    const lists = order.map((index) => {
      const viewport = this.viewports[index] as SeriesViewport;
      return viewport.wanted(has, this.info(viewport));
    });
    const next = this.data?.next && this.data.next.id !== this.shown?.id ? this.data.next : null;
    const nextLists = (next?.viewports ?? []).map((spec) =>
      spec.images
        .slice(0, NEXT_CASE_SLICES)
        .map((imageId) => frameKey(imageId, 0))
        .filter((key) => !has(key)),
    );
    const keys: string[] = [];
    const take = (list: string[], step: number): void => {
      const key = list[step];
      if (key !== undefined && !keys.includes(key)) keys.push(key);
    };
    // The next case's first slice of each viewport (sent unasked with the case, so seldom missing)
    // comes right after the frames on screen; its next few after this case's own prefetch.
    for (const list of lists) take(list, 0);
    for (const list of nextLists) take(list, 0);
    for (let step = 1; keys.length < MAX_WANTED && lists.some((list) => step < list.length); step++) {
      for (const list of lists) take(list, step);
    }
    for (let step = 1; step < NEXT_CASE_SLICES; step++) for (const list of nextLists) take(list, step);
    return keys.slice(0, MAX_WANTED);
  }

  private sync(more: boolean): void {
    if (!this.data || !this.root.isConnected || this.signedOut !== null) return;
    this.pumpFrames();
    const want = this.fetching ? [] : this.wanted();
    const body = {
      want,
      active: this.active,
      linkScroll: this.linkScroll,
      view: this.viewports.map((viewport) => ({ imageId: viewport.imageId, index: viewport.index, frame: viewport.frame })),
      pending: [...this.labels.pending],
    };
    const text = JSON.stringify(body);
    if (text === this.lastSync && !(more && (want.length > 0 || body.pending.length > 0))) return;
    this.tick += 1;
    this.lastSync = text;
    this.lastSyncAt = performance.now();
    this.setState("sync", { ...body, tick: this.tick });
  }

  // --- painting -------------------------------------------------------------------------------

  private requestPaint(): void {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => {
      this.frameRequested = false;
      this.paint();
    });
  }

  private paint(): void {
    let painted = 0;
    for (const viewport of this.viewports) {
      const key = viewport.imageId === null ? "" : frameKey(viewport.imageId, viewport.frame);
      if (viewport.paint(this.info(viewport), this.cache.get(key), this.missing.get(key), viewport.number === this.active)) painted += 1;
    }
    this.root.dataset.painted = String(painted);
    // Opened ahead and every viewport painted while the read was still on its way (the tests' proof
    // that the next case did not wait for the save).
    const filled = this.viewports.filter((viewport) => viewport.slices > 0).length;
    if (this.ahead && painted === filled && this.root.dataset.paintedAheadOfSave === undefined) {
      const unsaved = this.labels.pending.some((read) => read.seq === this.ahead?.seq);
      this.root.dataset.paintedAheadOfSave = String(unsaved);
    }
    this.root.dataset.pendingReads = String(this.labels.pending.length);
    this.root.dataset.framesHeld = String(this.cache.size);
    this.root.dataset.linkScroll = String(this.linkScroll);
    this.root.dataset.linkWindow = String(this.linkWindow);
    this.renderHeader();
    this.renderStatus();
  }

  private renderHeader(): void {
    const toggle = (name: string, on: boolean, text: string, key: string): string =>
      `<button class="mrv-toggle${on ? " mrv-on" : ""}" data-toggle="${name}" aria-pressed="${on}">${text}: ${on ? "linked" : "off"} <kbd>${key}</kbd></button>`;
    const viewport = this.activeViewport;
    const info = viewport ? this.info(viewport) : undefined;
    const what = info ? `viewport ${this.active + 1}/${this.viewports.length}: ${escapeHtml(info.seriesDescription || info.modality)}` : "";
    const html = `<span class="mrv-header-rest">${what}</span>${toggle("scroll", this.linkScroll, "Scroll", "Y")}${toggle("window", this.linkWindow, "W/L", "L")}`;
    if (this.header.innerHTML !== html) this.header.innerHTML = html;
  }

  private renderStatus(): void {
    const data = this.data;
    const parts: string[] = [];
    if (data?.classes.length) {
      const mine = this.shown ? this.labels.labelOf(this.shown.id) : null;
      const classes = data.classes
        .map((name, index) => `<button class="mrv-class${mine === name ? " mrv-chosen" : ""}" data-class-index="${index}"><kbd>${index + 1}</kbd> ${escapeHtml(name)}</button>`)
        .join("");
      parts.push(`<span class="mrv-classes">${classes}</span>`);
      const failed = this.labels.failed;
      if (failed.size) parts.push(`<span class="mrv-error">not saved: ${[...new Set(failed.values())].map(escapeHtml).join("; ")}</span>`);
      else if (this.labels.pending.length) parts.push(`<span class="mrv-pending">saving the case read…</span>`);
    }
    if (this.signedOut !== null) {
      const unsaved = this.labels.pending.length;
      parts.push(`<span class="mrv-error mrv-signed-out">Signed out (${escapeHtml(this.signedOut)}): ${unsaved ? `${unsaved} case read${unsaved === 1 ? "" : "s"} not saved` : "nothing unsaved"}.</span>`);
    }
    if (this.flash) parts.push(`<span class="mrv-error">${escapeHtml(this.flash)}</span>`);
    const html = parts.join(" ");
    if (this.status.innerHTML !== html) this.status.innerHTML = html;
  }

  private flashStatus(text: string): void {
    this.flash = text;
    this.renderStatus();
    window.setTimeout(() => {
      if (this.flash === text) {
        this.flash = "";
        this.renderStatus();
      }
    }, 2500);
  }

  /** Rows share the height left below the viewer's top, as the worklist viewer's one viewport does. */
  private layout(): void {
    if (!this.data || !this.shown || this.viewports.length === 0) return;
    const { rows, columns } = layoutOf(this.shown.layout, this.shown.viewports.length);
    const legend = this.root.querySelector(".mrv-legend") as HTMLDivElement;
    const below = this.status.offsetHeight + legend.offsetHeight + 24 + (this.data.below ?? 0);
    const { top, height: windowHeight } = pageTop(this.grid);
    const available = windowHeight - top - below;
    const maxHeight = this.data.maxHeight || 0;
    const total = Math.max(240, maxHeight > 0 ? Math.min(maxHeight, available) : available);
    const gap = 4;
    const height = Math.max(120, (total - gap * (rows - 1)) / rows);
    const width = (this.grid.clientWidth - gap * (columns - 1)) / columns;
    for (const viewport of this.viewports) {
      const key = viewport.imageId === null ? "" : frameKey(viewport.imageId, viewport.frame);
      viewport.resize(width, height, this.cache.get(key));
    }
    this.requestPaint();
  }
}
