/**
 * One viewport on the page: its stage (a black box), canvas and renderer, and what is written over
 * the image (annotations.ts): the four corners, the patient direction at each edge and the scale bar.
 * Panes that show the same image side by side share one camera (renderer.ts), so a zoom or pan in
 * either moves both; the window, slice and frame are the viewer's, shared by construction.
 */

import { type Corners, scaleBar } from "./annotations";
import { Renderer } from "./renderer";
import type { Camera } from "./viewport";

export type Edges = { left: string; right: string; top: string; bottom: string };

const CORNERS = ["topLeft", "topRight", "bottomLeft", "bottomRight"] as const;
const EDGES = ["left", "right", "top", "bottom"] as const;

export class Pane {
  readonly stage: HTMLDivElement;
  readonly renderer: Renderer;
  private readonly corners = new Map<string, HTMLDivElement>();
  private readonly edges = new Map<string, HTMLDivElement>();
  private readonly scale: HTMLDivElement;
  private written = "";

  constructor(parent: HTMLElement, camera?: Camera, extraClass = "") {
    this.stage = document.createElement("div");
    this.stage.className = `mrv-stage ${extraClass}`.trim();
    this.stage.innerHTML = `<canvas class="mrv-canvas"></canvas>${CORNERS.map((corner) => `<div class="mrv-corner mrv-${corner}"></div>`).join("")}${EDGES.map((edge) => `<div class="mrv-edge mrv-edge-${edge}"></div>`).join("")}<div class="mrv-scale"><div class="mrv-scale-bar"></div><span></span></div>`;
    parent.appendChild(this.stage);
    this.renderer = new Renderer(this.stage.querySelector("canvas") as HTMLCanvasElement, camera);
    for (const corner of CORNERS) this.corners.set(corner, this.stage.querySelector(`.mrv-${corner}`) as HTMLDivElement);
    for (const edge of EDGES) this.edges.set(edge, this.stage.querySelector(`.mrv-edge-${edge}`) as HTMLDivElement);
    this.scale = this.stage.querySelector(".mrv-scale") as HTMLDivElement;
  }

  /**
   * Write the corners, the edge letters (none when the image has no orientation) and a scale bar of
   * at most a quarter of the viewport's width (none without a pixel spacing). `cssPixelsPerMm`: the
   * image's millimetre on screen at the current zoom (null: unknown).
   */
  annotate(corners: Corners | null, edges: Edges | null, cssPixelsPerMm: number | null): void {
    const bar = corners ? scaleBar(cssPixelsPerMm, this.stage.clientWidth / 4) : null;
    const written = JSON.stringify([corners, edges, bar]);
    if (written === this.written) return;
    this.written = written;
    for (const corner of CORNERS) {
      const element = this.corners.get(corner) as HTMLDivElement;
      element.replaceChildren(...(corners?.[corner] ?? []).map((line) => lineElement(line)));
    }
    for (const edge of EDGES) (this.edges.get(edge) as HTMLDivElement).textContent = corners && edges ? edges[edge] : "";
    this.scale.style.display = bar ? "flex" : "none";
    if (bar) {
      (this.scale.firstElementChild as HTMLDivElement).style.width = `${Math.round(bar.pixels)}px`;
      (this.scale.lastElementChild as HTMLSpanElement).textContent = `${bar.mm} mm`;
    }
  }
}

function lineElement(text: string): HTMLDivElement {
  const line = document.createElement("div");
  line.textContent = text; // plain text: a series description never becomes markup
  return line;
}
