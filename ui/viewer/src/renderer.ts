/**
 * Painting one viewport on a 2D canvas. The windowed frame is kept in an offscreen canvas at image
 * resolution (re-windowed only when the frame or the window changes); zoom and pan redraw it with a
 * transform; the overlay, boxes and ruler are drawn on top in the same image coordinates.
 *
 * A 2D canvas is enough: the server already decoded and applied the modality LUT, so the browser's
 * work is one lookup-table pass per window change (about 1-2 ms for 512x512) and a drawImage.
 */

import type { Frame } from "./frames";
import type { Box } from "./types";
import { Camera, type Point } from "./viewport";
import { type DisplayParams, renderColour, renderGrey } from "./windowing";

export interface OverlayLayer {
  canvas: HTMLCanvasElement;
  opacity: number;
}

export interface Scene {
  frame: Frame;
  params: DisplayParams;
  overlay: OverlayLayer | null;
  boxes: Box[];
  selectedBox: number | null;
  draftBox: Box | null;
  ruler: { from: Point; to: Point; text: string } | null;
}

const BOX_COLOUR = "#ffc107";
const SELECTED_COLOUR = "#4fc3f7";

export class Renderer {
  private readonly context: CanvasRenderingContext2D;
  private readonly offscreen = document.createElement("canvas");
  private readonly offscreenContext: CanvasRenderingContext2D;
  private image: ImageData | null = null;
  private windowedKey = "";

  /** `camera`: shared by viewports that move together (the image beside its map). */
  constructor(
    readonly canvas: HTMLCanvasElement,
    readonly camera = new Camera(),
  ) {
    const context = canvas.getContext("2d");
    const offscreenContext = this.offscreen.getContext("2d");
    if (!context || !offscreenContext) throw new Error("this browser has no 2D canvas");
    this.context = context;
    this.offscreenContext = offscreenContext;
  }

  /** Canvas size in device pixels for a CSS size; the camera refits when it follows the size. */
  resize(cssWidth: number, cssHeight: number, frame: Frame | null): void {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(cssWidth * ratio));
    const height = Math.max(1, Math.round(cssHeight * ratio));
    if (this.canvas.width === width && this.canvas.height === height) return;
    this.canvas.width = width;
    this.canvas.height = height;
    this.canvas.style.width = `${cssWidth}px`;
    this.canvas.style.height = `${cssHeight}px`;
    if (frame && this.camera.fitted) this.fit(frame);
  }

  fit(frame: Frame): void {
    this.camera.fit(frame.width, frame.height, this.canvas.width, this.canvas.height);
  }

  /** CSS pixels of a pointer event -> canvas pixels. */
  canvasPoint(clientX: number, clientY: number): Point {
    const rect = this.canvas.getBoundingClientRect();
    const ratio = rect.width > 0 ? this.canvas.width / rect.width : 1;
    return { x: (clientX - rect.left) * ratio, y: (clientY - rect.top) * ratio };
  }

  /** Black, and forget the windowed image (a signed-out viewer keeps no pixels). */
  clear(): void {
    this.image = null;
    this.windowedKey = "";
    this.offscreen.width = 1;
    this.offscreen.height = 1;
    this.context.setTransform(1, 0, 0, 1, 0, 0);
    this.context.fillStyle = "#000";
    this.context.fillRect(0, 0, this.canvas.width, this.canvas.height);
  }

  paint(scene: Scene): void {
    const { frame, params } = scene;
    const windowedKey = `${frame.key}|${JSON.stringify(params.window)}|${params.invert}|${params.monochrome1}`;
    if (!this.image || this.image.width !== frame.width || this.image.height !== frame.height) {
      this.image = new ImageData(frame.width, frame.height);
      this.offscreen.width = frame.width;
      this.offscreen.height = frame.height;
      this.windowedKey = "";
    }
    if (windowedKey !== this.windowedKey) {
      if (frame.channels === 3) renderColour(frame.values as Uint8Array, this.image.data, params.invert);
      else renderGrey(frame.values, this.image.data, params);
      this.offscreenContext.putImageData(this.image, 0, 0);
      this.windowedKey = windowedKey;
    }
    const context = this.context;
    const camera = this.camera;
    context.setTransform(1, 0, 0, 1, 0, 0);
    context.fillStyle = "#000";
    context.fillRect(0, 0, this.canvas.width, this.canvas.height);
    context.setTransform(camera.scale, 0, 0, camera.scale, camera.offsetX, camera.offsetY);
    // Magnified pixels stay square blocks (a reader judges edges), shrunk ones are smoothed.
    context.imageSmoothingEnabled = camera.scale < 1;
    context.drawImage(this.offscreen, 0, 0);
    if (scene.overlay && scene.overlay.opacity > 0) {
      context.imageSmoothingEnabled = true;
      context.globalAlpha = scene.overlay.opacity;
      context.drawImage(scene.overlay.canvas, 0, 0, frame.width, frame.height);
      context.globalAlpha = 1;
    }
    context.setTransform(1, 0, 0, 1, 0, 0);
    const ratio = window.devicePixelRatio || 1;
    scene.boxes.forEach((box, index) => this.strokeBox(box, index === scene.selectedBox, ratio));
    if (scene.draftBox) this.strokeBox(scene.draftBox, true, ratio);
    if (scene.ruler) this.strokeRuler(scene.ruler, ratio);
  }

  private strokeBox(box: Box, selected: boolean, ratio: number): void {
    const context = this.context;
    const topLeft = this.camera.toCanvas({ x: box.x, y: box.y });
    const width = box.width * this.camera.scale;
    const height = box.height * this.camera.scale;
    context.lineWidth = 2 * ratio;
    context.strokeStyle = selected ? SELECTED_COLOUR : BOX_COLOUR;
    context.strokeRect(topLeft.x, topLeft.y, width, height);
    context.font = `${12 * ratio}px sans-serif`;
    context.fillStyle = context.strokeStyle;
    context.fillText(box.label, topLeft.x + 3 * ratio, topLeft.y - 4 * ratio);
    if (selected) {
      const handle = 5 * ratio;
      for (const corner of [
        topLeft,
        { x: topLeft.x + width, y: topLeft.y },
        { x: topLeft.x, y: topLeft.y + height },
        { x: topLeft.x + width, y: topLeft.y + height },
      ]) {
        context.fillRect(corner.x - handle, corner.y - handle, 2 * handle, 2 * handle);
      }
    }
  }

  private strokeRuler(ruler: { from: Point; to: Point; text: string }, ratio: number): void {
    const context = this.context;
    const from = this.camera.toCanvas(ruler.from);
    const to = this.camera.toCanvas(ruler.to);
    context.lineWidth = 2 * ratio;
    context.strokeStyle = "#76ff03";
    context.beginPath();
    context.moveTo(from.x, from.y);
    context.lineTo(to.x, to.y);
    context.stroke();
    context.font = `${13 * ratio}px sans-serif`;
    context.fillStyle = "#76ff03";
    context.fillText(ruler.text, to.x + 6 * ratio, to.y - 6 * ratio);
  }
}

/** A heat map (0..255 intensities) coloured through `colormap` into a canvas at its own size. */
export function overlayCanvas(intensities: Uint8Array, width: number, height: number, colormap: number[][]): HTMLCanvasElement {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  if (!context) return canvas;
  const image = context.createImageData(width, height);
  for (let pixel = 0; pixel < width * height; pixel++) {
    const colour = colormap[intensities[pixel] ?? 0] ?? [0, 0, 0];
    image.data[pixel * 4] = colour[0] ?? 0;
    image.data[pixel * 4 + 1] = colour[1] ?? 0;
    image.data[pixel * 4 + 2] = colour[2] ?? 0;
    image.data[pixel * 4 + 3] = 255;
  }
  context.putImageData(image, 0, 0);
  return canvas;
}
