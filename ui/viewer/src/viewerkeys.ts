/** Keys of the worklist viewer: classes, navigation, tools, window presets, cine. */

import { isTextEntry } from "./keyboard";
import type { Viewer } from "./viewer";
import * as viewernav from "./viewernav";
import * as viewerpaint from "./viewerpaint";
import * as viewersync from "./viewersync";

export function classKey(v: Viewer, index: number, eventTime: number): void {
  const data = v.data;
  if (!data || data.mode !== "label") return;
  const name = data.classes[index];
  if (name === undefined) return;
  if (data.multi) {
    if (v.multiSelection.has(name)) v.multiSelection.delete(name);
    else v.multiSelection.add(name);
    viewerpaint.renderStatus(v);
    return;
  }
  viewernav.save(v, name, null, true, eventTime);
}

/**
 * Enter in aided mode: the model's suggestion for the image on screen, saved as the reader's read
 * (a class key overrides it). False when there is none to accept (outside the training data, read
 * already, another mode).
 */
export function acceptSuggestion(v: Viewer, eventTime: number): boolean {
  const info = v.info(v.shown);
  const call = info?.model;
  if (!info || !call || !call.suggest || info.read || call.label === null || v.data?.multi) return false;
  if (!v.data?.classes.includes(call.label)) return false;
  viewernav.save(v, call.label, null, true, eventTime);
  return true;
}

export function onKey(v: Viewer, event: KeyboardEvent): void {
  if (!v.root.isConnected || !v.data || v.signedOut !== null || v.left) return;
  // The reader clicked another page and the viewer finishes its saves: keys wait for the page.
  if (v.leaving) return void event.preventDefault();
  if (event.altKey || event.metaKey) return;
  const active = document.activeElement;
  if (isTextEntry(active)) return;
  const key = event.key;
  const label = v.data.mode === "label";
  let handled = true;
  if (event.ctrlKey) {
    if (key.toLowerCase() === "z" && label) viewernav.back(v);
    else handled = false;
  } else if (event.shiftKey && /^Digit[1-9]$/.test(event.code)) {
    const info = v.info(v.shown);
    const number = Number(event.code.slice(5));
    const preset = info?.windows[number - 1];
    if (preset) v.setWindow({ center: preset.center, width: preset.width }, preset.name);
    else if (info && !info.color) viewerpaint.flashStatus(v, `No window preset ${number}: this image has ${info.windows.length} (Shift+1-${info.windows.length}).`);
  } else if (/^[1-9]$/.test(key) && label) {
    if (event.repeat) return void event.preventDefault(); // a held key labels once
    classKey(v, Number(key) - 1, event.timeStamp);
  } else {
    switch (key) {
      case "Enter":
        if (label && v.current === null && v.atEnd !== null) viewernav.openFirstLeft(v);
        else if (label && v.data.multi) viewernav.save(v, null, [...v.multiSelection], true, event.timeStamp);
        else if (!label || !acceptSuggestion(v, event.timeStamp)) handled = false;
        break;
      case "Backspace":
        if (v.tools.tool === "box" && v.selectedBox !== null) deleteSelectedBox(v);
        else if (label) viewernav.back(v);
        else handled = false;
        break;
      case "Delete":
        deleteSelectedBox(v);
        break;
      case "n":
      case "N":
      case "PageDown":
        if (label) viewernav.advance(v);
        else handled = false;
        break;
      case "PageUp":
        if (label) viewernav.back(v);
        else handled = false;
        break;
      case "u":
      case "U":
        v.unsure = !v.unsure;
        v.requestPaint();
        break;
      case "ArrowUp":
        viewernav.stepSlice(v, -1);
        break;
      case "ArrowDown":
        viewernav.stepSlice(v, 1);
        break;
      case "ArrowLeft":
        viewernav.stepFrame(v, -1);
        break;
      case "ArrowRight":
        viewernav.stepFrame(v, 1);
        break;
      case "+":
      case "=":
        zoomCentre(v, 1.25);
        break;
      case "-":
      case "_":
        zoomCentre(v, 1 / 1.25);
        break;
      case "f":
      case "F":
        v.renderer.camera.fitted = true;
        v.requestPaint();
        break;
      case "a":
      case "A":
        v.renderer.camera.actualSize(v.renderer.canvas.width, v.renderer.canvas.height);
        v.requestPaint();
        break;
      case "i":
      case "I": {
        const current = v.currentWindowState();
        if (current) current.state.invert = !current.state.invert;
        v.requestPaint();
        break;
      }
      case "r":
      case "R":
        reset(v);
        break;
      case "l":
      case "L":
        toggleLock(v);
        break;
      case "o":
      case "O":
        v.overlayOn = !v.overlayOn;
        v.requestPaint();
        break;
      case "[":
        v.overlayOpacity = Math.max(0.05, v.overlayOpacity - 0.1);
        v.requestPaint();
        break;
      case "]":
        v.overlayOpacity = Math.min(1, v.overlayOpacity + 0.1);
        v.requestPaint();
        break;
      case " ":
        toggleCine(v);
        break;
      case ",":
      case ".":
        setCineRate(v, key === "." ? 1 : -1);
        break;
      case "w":
      case "W":
        v.tools.tool = "window";
        v.requestPaint();
        break;
      case "p":
      case "P":
        v.tools.tool = "pan";
        v.requestPaint();
        break;
      case "b":
      case "B":
        if (v.data.boxesEnabled) v.tools.boxKey(v.data.classes);
        v.requestPaint();
        break;
      case "m":
      case "M":
        v.tools.rulerKey();
        if (v.tools.tool !== "ruler") v.ruler = null;
        v.requestPaint();
        break;
      case "s":
      case "S":
        if (label && v.data.boxesEnabled) saveBoxes(v, event.timeStamp);
        else handled = false;
        break;
      case "Escape":
        // Esc leaves what is being done: a box being drawn or selected, the ruler, the tool.
        v.selectedBox = null;
        v.draftBox = null;
        v.ruler = null;
        v.tools.escape();
        v.requestPaint();
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
export function saveBoxes(v: Viewer, eventTime: number): void {
  const info = v.info(v.shown);
  if (!info || !v.data) return;
  const multi = v.data.multi;
  const label = multi ? null : info.label;
  const labels = multi ? [...v.multiSelection] : null;
  if (label === null && !labels?.length && !v.data.boxOnly) {
    viewerpaint.flashStatus(v, `Not saved: choose a class for this image (${multi ? "1-9, then Enter" : "1-9"}); its boxes go with it.`);
    return;
  }
  if (label === null && !labels?.length && viewernav.boxesOf(v, info.id).length === 0) {
    viewerpaint.flashStatus(v, "Not saved: draw a box first, or choose a class (1-9).");
    return;
  }
  viewernav.save(v, label, labels, false, eventTime);
}

export function deleteSelectedBox(v: Viewer): void {
  if (v.shown === null || v.selectedBox === null) return;
  const boxes = viewernav.boxesOf(v, v.shown).filter((_, index) => index !== v.selectedBox);
  v.tools.edit(v.shown, boxes);
  v.selectedBox = null;
  v.requestPaint();
  viewerpaint.renderStatus(v);
}

export function zoomCentre(v: Viewer, factor: number): void {
  const canvas = v.renderer.canvas;
  v.renderer.camera.zoomAt({ x: canvas.width / 2, y: canvas.height / 2 }, factor);
  v.requestPaint();
}

export function reset(v: Viewer): void {
  const current = v.currentWindowState();
  if (current) {
    current.state.window = current.info.voiLut ? null : current.info.defaultWindow;
    current.state.name = current.info.voiLut ? null : (current.info.windows[0]?.name ?? null);
    current.state.invert = false;
  }
  v.renderer.camera.fitted = true;
  v.ruler = null;
  v.requestPaint();
  viewersync.sync(v, false);
}

export function toggleLock(v: Viewer): void {
  const current = v.currentWindowState();
  if (v.lockedWindow || !current) v.lockedWindow = null;
  else v.lockedWindow = { modality: current.info.modality, state: { ...current.state } };
  v.requestPaint();
}

export function toggleCine(v: Viewer): void {
  if (v.cineTimer !== null) {
    stopCine(v);
    v.requestPaint();
    return;
  }
  const info = v.info(v.shown);
  if (!info) return;
  const slices = (info.series?.length ?? 0) > 1;
  if (!slices && info.frames < 2) return;
  v.cineTimer = window.setInterval(() => {
    const now = v.info(v.shown);
    if (!now) return;
    if (slices && now.series && v.shown !== null) {
      const index = now.series.indexOf(v.shown);
      viewernav.stepSlice(v, index >= now.series.length - 1 ? -index : 1);
    } else viewernav.stepFrame(v, 1);
  }, 1000 / v.cineFps);
  v.requestPaint();
}

/** Cine frame rate one step up or down (2-60 frames a second), applied at once when playing. */
export function setCineRate(v: Viewer, direction: number): void {
  const rates = [2, 5, 10, 15, 20, 25, 30, 60];
  const index = rates.indexOf(v.cineFps);
  v.cineFps = rates[Math.min(rates.length - 1, Math.max(0, (index < 0 ? 2 : index) + direction))] ?? 10;
  if (v.cineTimer !== null) {
    stopCine(v);
    toggleCine(v);
  }
  viewerpaint.flashStatus(v, `cine ${v.cineFps} frames a second`);
  v.requestPaint();
}

export function stopCine(v: Viewer): void {
  if (v.cineTimer !== null) window.clearInterval(v.cineTimer);
  v.cineTimer = null;
}
