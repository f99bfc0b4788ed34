/** Pointer input of the worklist viewer: window, pan, zoom, rulers and boxes, and the status bar's buttons. */

import type { Renderer } from "./renderer";
import type { Box } from "./types";
import type { Viewer } from "./viewer";
import * as viewerkeys from "./viewerkeys";
import * as viewernav from "./viewernav";
import * as viewerpaint from "./viewerpaint";
import * as viewersync from "./viewersync";
import type { Point } from "./viewport";
import { draggedWindow } from "./windowing";

/** Mouse and wheel on one viewport's canvas (every viewport shares the camera). */
export function bindPointer(v: Viewer, renderer: Renderer): void {
  const canvas = renderer.canvas;
  canvas.addEventListener("contextmenu", (event) => event.preventDefault());
  canvas.addEventListener("dblclick", () => {
    v.renderer.camera.fitted = true;
    v.requestPaint();
  });
  canvas.addEventListener("pointerdown", (event) => {
    v.activate();
    canvas.setPointerCapture(event.pointerId);
    const start = renderer.canvasPoint(event.clientX, event.clientY);
    let mode = v.tools.tool;
    if (event.button === 2 || event.button === 1 || event.shiftKey || event.ctrlKey) mode = "pan";
    const current = v.currentWindowState();
    let boxIndex: number | null = null;
    let handle = "";
    if (mode === "box" && v.shown !== null) {
      const hit = hitBox(v, start);
      boxIndex = hit?.index ?? null;
      handle = hit?.handle ?? "";
      v.selectedBox = boxIndex;
      if (boxIndex === null && !v.tools.canDraw()) viewerpaint.flashStatus(v, "Choose the box class first: B, then B again for the next class.");
    }
    if (mode === "ruler") {
      const point = v.renderer.camera.toImage(start);
      v.ruler = { from: point, to: point };
    }
    v.drag = {
      button: event.button,
      start,
      last: start,
      window: current ? v.effectiveWindow(current.info, current.state) : null,
      mode,
      boxIndex,
      handle,
    };
    event.preventDefault();
  });
  canvas.addEventListener("pointermove", (event) => {
    const drag = v.drag;
    if (!drag) return;
    const point = renderer.canvasPoint(event.clientX, event.clientY);
    const dx = point.x - drag.last.x;
    const dy = point.y - drag.last.y;
    drag.last = point;
    if (drag.mode === "pan") {
      v.renderer.camera.pan(dx, dy);
    } else if (drag.mode === "window" && drag.window) {
      const current = v.currentWindowState();
      if (current) {
        const unitsPerPixel = Math.max(drag.window.width, 16) / 256;
        v.setWindow(draggedWindow(drag.window, point.x - drag.start.x, point.y - drag.start.y, unitsPerPixel));
      }
    } else if (drag.mode === "box") {
      dragBox(v, drag, point);
    } else if (drag.mode === "ruler" && v.ruler) {
      v.ruler.to = v.renderer.camera.toImage(point);
    }
    v.requestPaint();
  });
  const end = (): void => {
    const drag = v.drag;
    v.drag = null;
    if (drag?.mode === "window") viewersync.sync(v, false);
    if (drag?.mode === "box" && v.draftBox && v.shown !== null) {
      if (v.draftBox.width >= 2 && v.draftBox.height >= 2) {
        const boxes = [...viewernav.boxesOf(v, v.shown), v.draftBox];
        v.tools.edit(v.shown, boxes);
        v.selectedBox = boxes.length - 1;
      }
      v.draftBox = null;
      v.requestPaint();
      viewerpaint.renderStatus(v);
    }
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  canvas.addEventListener(
    "wheel",
    (event) => {
      event.preventDefault();
      const info = v.info(v.shown);
      const stack = !!info && ((info.series?.length ?? 0) > 1 || info.frames > 1);
      if (stack && !event.ctrlKey) {
        const step = event.deltaY > 0 ? 1 : -1;
        if ((info?.series?.length ?? 0) > 1) viewernav.stepSlice(v, step);
        else viewernav.stepFrame(v, step);
        return;
      }
      const anchor = renderer.canvasPoint(event.clientX, event.clientY);
      v.renderer.camera.zoomAt(anchor, event.deltaY < 0 ? 1.15 : 1 / 1.15);
      v.requestPaint();
    },
    { passive: false },
  );
}

/** The status row's buttons (classes, save, retry) and the message's (the end of a list). */
export function bindButtons(v: Viewer): void {
  v.status.addEventListener("click", (event) => {
    const target = (event.target as HTMLElement).closest("button");
    if (!target || !v.data || v.signedOut !== null) return;
    if (target.classList.contains("mrv-retry")) {
      v.failed.clear();
      viewersync.sync(v, false, true);
      viewerpaint.renderStatus(v);
    } else if (target.classList.contains("mrv-save-multi")) {
      viewernav.save(v, null, [...v.multiSelection], true, event.timeStamp);
    } else if (target.dataset.classIndex !== undefined) {
      viewerkeys.classKey(v, Number(target.dataset.classIndex), event.timeStamp);
    }
  });
  v.message.addEventListener("click", (event) => {
    if ((event.target as HTMLElement).closest(".mrv-first-left") && v.signedOut === null && !v.left) viewernav.openFirstLeft(v);
  });
}

export function hitBox(v: Viewer, point: Point): { index: number; handle: string } | null {
  if (v.shown === null) return null;
  const boxes = viewernav.boxesOf(v, v.shown);
  const tolerance = 8 * (window.devicePixelRatio || 1);
  for (let index = boxes.length - 1; index >= 0; index--) {
    const box = boxes[index] as Box;
    if (box.frame !== v.frame) continue;
    const a = v.renderer.camera.toCanvas({ x: box.x, y: box.y });
    const b = v.renderer.camera.toCanvas({ x: box.x + box.width, y: box.y + box.height });
    const near = (x: number, y: number): boolean => Math.abs(point.x - x) < tolerance && Math.abs(point.y - y) < tolerance;
    if (near(b.x, b.y)) return { index, handle: "se" };
    if (near(a.x, a.y)) return { index, handle: "nw" };
    if (near(b.x, a.y)) return { index, handle: "ne" };
    if (near(a.x, b.y)) return { index, handle: "sw" };
    if (point.x >= a.x && point.x <= b.x && point.y >= a.y && point.y <= b.y) return { index, handle: "move" };
  }
  return null;
}

export function dragBox(v: Viewer, drag: NonNullable<Viewer["drag"]>, point: Point): void {
  if (v.shown === null) return;
  const info = v.info(v.shown);
  if (!info) return;
  const clampX = (x: number): number => Math.min(info.width, Math.max(0, x));
  const clampY = (y: number): number => Math.min(info.height, Math.max(0, y));
  const from = v.renderer.camera.toImage(drag.start);
  const to = v.renderer.camera.toImage(point);
  if (drag.boxIndex === null) {
    if (!v.tools.canDraw()) return;
    const x0 = clampX(Math.min(from.x, to.x));
    const y0 = clampY(Math.min(from.y, to.y));
    v.draftBox = {
      label: v.tools.boxClass,
      x: x0,
      y: y0,
      width: clampX(Math.max(from.x, to.x)) - x0,
      height: clampY(Math.max(from.y, to.y)) - y0,
      frame: v.frame,
    };
    return;
  }
  const boxes = viewernav.boxesOf(v, v.shown).map((box) => ({ ...box }));
  const box = boxes[drag.boxIndex];
  if (!box) return;
  const scale = v.renderer.camera.scale;
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
  v.tools.edit(v.shown, boxes);
}
