/** The camera of one viewport: how image pixels map to canvas pixels (zoom, pan, fit, 1:1). */

export interface Point {
  x: number;
  y: number;
}

export class Camera {
  /** Canvas pixels per image pixel. */
  scale = 1;
  /** Canvas position of the image's top-left corner. */
  offsetX = 0;
  offsetY = 0;
  /** Whether the camera follows the canvas size (fit) or the reader zoomed or panned. */
  fitted = true;

  fit(imageWidth: number, imageHeight: number, canvasWidth: number, canvasHeight: number): void {
    this.scale = Math.min(canvasWidth / imageWidth, canvasHeight / imageHeight);
    this.offsetX = (canvasWidth - imageWidth * this.scale) / 2;
    this.offsetY = (canvasHeight - imageHeight * this.scale) / 2;
    this.fitted = true;
  }

  /** One image pixel per canvas pixel, centred on the canvas centre's image point. */
  actualSize(canvasWidth: number, canvasHeight: number): void {
    this.zoomAt({ x: canvasWidth / 2, y: canvasHeight / 2 }, 1 / this.scale);
  }

  /** Zoom by `factor` keeping the image point under `anchor` (canvas pixels) in place. */
  zoomAt(anchor: Point, factor: number): void {
    const scale = Math.min(64, Math.max(0.02, this.scale * factor));
    const applied = scale / this.scale;
    this.offsetX = anchor.x - (anchor.x - this.offsetX) * applied;
    this.offsetY = anchor.y - (anchor.y - this.offsetY) * applied;
    this.scale = scale;
    this.fitted = false;
  }

  pan(dx: number, dy: number): void {
    this.offsetX += dx;
    this.offsetY += dy;
    this.fitted = false;
  }

  toImage(point: Point): Point {
    return { x: (point.x - this.offsetX) / this.scale, y: (point.y - this.offsetY) / this.scale };
  }

  toCanvas(point: Point): Point {
    return { x: point.x * this.scale + this.offsetX, y: point.y * this.scale + this.offsetY };
  }
}
