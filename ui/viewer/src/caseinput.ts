/** Pointer and keys of the case viewer: the active viewport, scrolling, window/level, class keys. */

import * as casepaint from "./casepaint";
import * as casesync from "./casesync";
import type { CaseViewer } from "./caseviewer";
import { isTextEntry } from "./keyboard";
import { nextViewport } from "./linking";
import { SeriesViewport } from "./seriesviewport";
import { draggedWindow } from "./windowing";

export function bindPointer(c: CaseViewer, viewport: SeriesViewport): void {
  const canvas = viewport.pane.renderer.canvas;
  const camera = viewport.pane.renderer.camera;
  canvas.addEventListener("contextmenu", (event) => event.preventDefault());
  canvas.addEventListener("dblclick", () => {
    camera.fitted = true;
    c.requestPaint();
  });
  canvas.addEventListener("pointerdown", (event) => {
    c.activate();
    c.root.focus({ preventScroll: true });
    if (viewport.number !== c.active) c.setActive(viewport.number);
    canvas.setPointerCapture(event.pointerId);
    const start = viewport.canvasPoint(event.clientX, event.clientY);
    const info = c.info(viewport);
    const pan = event.button !== 0 || event.shiftKey || event.ctrlKey;
    c.drag = { viewport, mode: pan ? "pan" : "window", start, last: start, window: info && !info.color ? viewport.effectiveWindow(info) : null };
    event.preventDefault();
  });
  canvas.addEventListener("pointermove", (event) => {
    const drag = c.drag;
    if (!drag || drag.viewport !== viewport) return;
    const point = viewport.canvasPoint(event.clientX, event.clientY);
    if (drag.mode === "pan") camera.pan((viewport.spec.mirror ? -1 : 1) * (point.x - drag.last.x), point.y - drag.last.y);
    else if (drag.window) {
      const unitsPerPixel = Math.max(drag.window.width, 16) / 256;
      c.setWindow(viewport, draggedWindow(drag.window, point.x - drag.start.x, point.y - drag.start.y, unitsPerPixel), null);
    }
    drag.last = point;
    c.requestPaint();
  });
  const end = (): void => {
    if (c.drag?.mode === "window") casesync.sync(c, false);
    c.drag = null;
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  canvas.addEventListener(
    "wheel",
    (event) => {
      event.preventDefault();
      c.activate();
      if (viewport.number !== c.active) c.setActive(viewport.number);
      const frames = c.info(viewport)?.frames ?? 1;
      if (!event.ctrlKey && viewport.slices < 2 && frames > 1) return c.stepFrame(viewport, event.deltaY > 0 ? 1 : -1);
      if (event.ctrlKey || viewport.slices < 2) {
        const anchor = viewport.canvasPoint(event.clientX, event.clientY);
        camera.zoomAt(anchor, event.deltaY < 0 ? 1.15 : 1 / 1.15);
        c.requestPaint();
        return;
      }
      c.scroll(viewport, event.deltaY > 0 ? 1 : -1);
    },
    { passive: false },
  );
}

export function onKey(c: CaseViewer, event: KeyboardEvent): void {
  if (!c.root.isConnected || !c.data || event.altKey || event.metaKey) return;
  const focused = document.activeElement;
  if (isTextEntry(focused)) return;
  const viewport = c.activeViewport;
  if (!viewport) return;
  const key = event.key;
  let handled = true;
  if (key === "Tab") {
    // Tab moves between viewports unless the reader is on one of the page's controls.
    const onPage = focused && focused !== document.body && !c.root.contains(focused);
    if (onPage || event.ctrlKey) return;
    c.setActive(nextViewport(c.active, c.viewports.length, event.shiftKey));
  } else if (event.ctrlKey) {
    handled = false;
  } else if (event.shiftKey && /^Digit[1-9]$/.test(event.code)) {
    const info = c.info(viewport);
    const preset = info?.windows[Number(event.code.slice(5)) - 1];
    if (preset) c.setWindow(viewport, { center: preset.center, width: preset.width }, preset.name);
  } else if (/^[1-9]$/.test(key) && c.data.classes.length) {
    if (event.repeat) return void event.preventDefault();
    classKey(c, Number(key) - 1, event.timeStamp);
  } else {
    switch (key) {
      case "ArrowUp":
        c.scroll(viewport, -1);
        break;
      case "ArrowDown":
        c.scroll(viewport, 1);
        break;
      case "ArrowLeft":
        c.stepFrame(viewport, -1);
        break;
      case "ArrowRight":
        c.stepFrame(viewport, 1);
        break;
      case "y":
      case "Y":
        c.toggleScrollLink();
        break;
      case "l":
      case "L":
        c.toggleWindowLink();
        break;
      case "i":
      case "I": {
        const info = c.info(viewport);
        if (info && !info.color) {
          const state = viewport.windowOf(info);
          c.setWindow(viewport, state.window, state.name, !state.invert);
        }
        break;
      }
      case "f":
      case "F":
        viewport.pane.renderer.camera.fitted = true;
        c.requestPaint();
        break;
      case "+":
      case "=":
      case "-":
      case "_": {
        const canvas = viewport.pane.renderer.canvas;
        viewport.pane.renderer.camera.zoomAt({ x: canvas.width / 2, y: canvas.height / 2 }, key === "+" || key === "=" ? 1.25 : 1 / 1.25);
        c.requestPaint();
        break;
      }
      case "r":
      case "R": {
        const info = c.info(viewport);
        if (info && !info.color) {
          const initial = viewport.initialWindow(info);
          c.setWindow(viewport, initial.window, initial.name, false);
        }
        viewport.pane.renderer.camera.fitted = true;
        c.requestPaint();
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
export function classKey(c: CaseViewer, index: number, eventTime: number): void {
  const data = c.data;
  const painted = c.viewports.map((viewport) => viewport.paintedAt).filter((at): at is number => at !== null);
  if (!data || c.signedOut !== null || !c.shown) return;
  const caseId = c.shown.id;
  const outcome = c.labels.classKey(caseId, data.classes, index, eventTime, painted.length ? Math.min(...painted) : null, c.active, data.owner);
  if ("refused" in outcome) casepaint.flashStatus(c, outcome.refused);
  else if (data.next && data.next.id !== caseId && c.ahead === null) {
    // The next case opens now, from the frames already here; the read is saved behind it.
    c.ahead = { from: caseId, seq: outcome.read.seq };
    c.open(data.next);
  }
  casepaint.renderStatus(c);
  casesync.sync(c, false);
}
