/**
 * One viewport of a case: a series of its own, with its own slice, frame, window and camera (the
 * Cornerstone3D StackViewport's share of the work). It paints from the case's shared frame cache and
 * says which of its own frames it wants next (its prefetch); the case viewer (caseviewer.ts) decides
 * what moves together.
 */

import { cornerText } from "./annotations";
import { type Frame, frameKey } from "./frames";
import type { LinkedSeries } from "./linking";
import { type Edges, Pane } from "./pane";
import type { ImageInfo, ViewportSpec } from "./types";
import type { DisplayParams, Window } from "./windowing";

/**
 * Slices prefetched ahead of the one on screen in the scroll direction (and half as many behind):
 * four viewports scrolled together at 30 slices a second need 120 frames a second, more than this
 * machine's server decodes, so the time a reader looks at a case goes to getting well ahead.
 */
const PREFETCH_SLICES = 48;

export interface WindowState {
  window: Window | null;
  /** The preset the window came from, null once dragged. */
  name: string | null;
  invert: boolean;
}

export class SeriesViewport {
  readonly pane: Pane;
  private readonly message: HTMLDivElement;
  /** The slice on screen (index into the series) and its frame. */
  index = 0;
  frame = 0;
  /** +1 scrolling towards the series' end, -1 back: the prefetch looks that way first. */
  direction = 1;
  windowState: WindowState | null = null;
  /** When this viewport first painted a frame of its series (performance.now()), null before. */
  paintedAt: number | null = null;

  constructor(
    parent: HTMLElement,
    readonly spec: ViewportSpec,
    readonly number: number,
  ) {
    this.pane = new Pane(parent, undefined, "mrv-viewport");
    this.pane.stage.dataset.viewport = String(number);
    this.message = document.createElement("div");
    this.message.className = "mrv-message";
    this.pane.stage.appendChild(this.message);
    // Mirrored (a left mammogram view facing the right one): the canvas is flipped on screen; the
    // pointer handlers flip their x back (`canvasPoint`).
    if (spec.mirror) this.pane.renderer.canvas.style.transform = "scaleX(-1)";
  }

  get imageId(): number | null {
    return this.spec.images[this.index] ?? null;
  }

  get slices(): number {
    return this.spec.images.length;
  }

  linked(): LinkedSeries {
    return { frameOfReference: this.spec.frameOfReference, positions: this.spec.positions, index: this.index };
  }

  /** Go to slice `index` (clamped); whether the slice changed. */
  show(index: number): boolean {
    const clamped = Math.min(this.slices - 1, Math.max(0, index));
    if (clamped === this.index) return false;
    this.direction = clamped > this.index ? 1 : -1;
    this.index = clamped;
    this.frame = 0;
    return true;
  }

  /** A pointer's canvas point, flipped back when the viewport is mirrored. */
  canvasPoint(clientX: number, clientY: number): { x: number; y: number } {
    const point = this.pane.renderer.canvasPoint(clientX, clientY);
    return this.spec.mirror ? { x: this.pane.renderer.canvas.width - point.x, y: point.y } : point;
  }

  /** The window this viewport opens with: its preset by name when it has one, else the image's own. */
  initialWindow(info: ImageInfo): WindowState {
    const preset = this.spec.preset ? info.windows.find((window) => window.name.toLowerCase() === this.spec.preset?.toLowerCase()) : undefined;
    if (preset) return { window: { center: preset.center, width: preset.width }, name: preset.name, invert: false };
    return { window: info.voiLut ? null : info.defaultWindow, name: info.voiLut ? null : (info.windows[0]?.name ?? null), invert: false };
  }

  windowOf(info: ImageInfo): WindowState {
    if (!this.windowState) this.windowState = this.initialWindow(info);
    return this.windowState;
  }

  /** The window a drag starts from (a VOI LUT's range, or the default, when no window is set). */
  effectiveWindow(info: ImageInfo): Window {
    const state = this.windowOf(info);
    if (state.window) return state.window;
    if (info.voiLut) return { center: info.voiLut.firstMapped + info.voiLut.table.length / 2, width: info.voiLut.table.length };
    return info.defaultWindow ?? { center: 127.5, width: 256 };
  }

  /**
   * This viewport's frames not yet held (`has`), most urgent first: the frame on screen, then its
   * series ahead in the scroll direction and behind, then the frames of a multi-frame image.
   */
  wanted(has: (key: string) => boolean, info: ImageInfo | undefined): string[] {
    const keys: string[] = [];
    const add = (imageId: number | undefined, frame = 0): void => {
      if (imageId === undefined) return;
      const key = frameKey(imageId, frame);
      if (!has(key) && !keys.includes(key)) keys.push(key);
    };
    add(this.imageId ?? undefined, this.frame);
    for (let step = 1; step <= PREFETCH_SLICES; step++) {
      add(this.spec.images[this.index + step * this.direction]);
      if (step <= PREFETCH_SLICES / 2) add(this.spec.images[this.index - step * this.direction]);
    }
    const imageId = this.imageId;
    if (info && info.frames > 1 && imageId !== null) {
      for (let step = 1; step < Math.min(info.frames, 32); step++) add(imageId, (this.frame + step * this.direction + info.frames) % info.frames);
    }
    return keys;
  }

  /** Paint the slice on screen from `frame` (undefined: not here yet, or `missing` says why). */
  paint(info: ImageInfo | undefined, frame: Frame | undefined, missing: string | undefined, active: boolean): boolean {
    this.pane.stage.classList.toggle("mrv-active", active);
    this.pane.stage.dataset.slice = String(this.index);
    const imageId = this.imageId;
    if (imageId !== null) this.pane.stage.dataset.imageId = String(imageId);
    if (this.slices === 0) {
      this.setMessage(this.spec.empty ?? "No series here.");
      this.pane.annotate(null, null, null);
      return false;
    }
    if (!info || !frame) {
      this.setMessage(missing ? `Cannot show this image: ${missing}` : "Loading…");
      return false;
    }
    this.setMessage("");
    const renderer = this.pane.renderer;
    if (renderer.camera.fitted) renderer.fit(frame);
    const state = info.color ? null : this.windowOf(info);
    const params: DisplayParams = {
      window: state?.window ?? null,
      voiLut: info.voiLut,
      monochrome1: info.photometric === "MONOCHROME1",
      invert: state?.invert ?? false,
    };
    renderer.paint({ frame, params, overlay: null, boxes: [], selectedBox: null, draftBox: null, ruler: null });
    this.annotate(info, state);
    if (this.paintedAt === null) this.paintedAt = performance.now();
    this.pane.stage.dataset.painted = String(imageId);
    this.pane.stage.dataset.window = state?.window ? `${Math.round(state.window.width)}/${Math.round(state.window.center)}` : "";
    return true;
  }

  private annotate(info: ImageInfo, state: WindowState | null): void {
    const corners = cornerText({
      slice: this.slices > 1 ? { index: this.index + 1, count: this.slices } : null,
      frame: info.frames > 1 ? { index: this.frame + 1, count: info.frames } : null,
      window: state?.window ?? null,
      windowName: state?.name ?? null,
      voiLut: !!info.voiLut && !state?.window,
      inverted: !!state?.invert,
      zoom: this.pane.renderer.camera.scale * 100,
      modality: info.modality,
      series: info.seriesDescription ?? "",
      map: null,
    });
    const position = this.spec.positions[this.index];
    if (position !== null && position !== undefined) corners.topLeft.push(`Pos ${position.toFixed(1)} mm`);
    // The prior says so first, where the eye starts: a reader must never take it for the current study.
    if (this.spec.prior) corners.topLeft.unshift(this.spec.prior);
    if (this.spec.mirror) corners.bottomRight.push("mirrored");
    const edges: Edges | null = info.orientation
      ? this.spec.mirror
        ? { ...info.orientation, left: info.orientation.right, right: info.orientation.left }
        : info.orientation
      : null;
    const columnSpacing = info.pixelSpacing?.[1] ?? null;
    const ratio = window.devicePixelRatio || 1;
    this.pane.annotate(corners, edges, columnSpacing ? this.pane.renderer.camera.scale / ratio / columnSpacing : null);
  }

  private setMessage(text: string): void {
    if (this.message.textContent !== text) this.message.textContent = text;
    this.message.style.display = text ? "flex" : "none";
  }

  resize(width: number, height: number, frame: Frame | undefined): void {
    this.pane.stage.style.height = `${Math.round(height)}px`;
    this.pane.renderer.resize(Math.max(80, Math.round(width)), Math.round(height), frame ?? null);
  }
}
