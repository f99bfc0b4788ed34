/** Painting the worklist viewer: the frame on screen, its header, status, annotations and layout. */

import { cornerText } from "./annotations";
import { escapeHtml, pageTop } from "./dom";
import { frameKey } from "./frames";
import { LEGEND_LABEL, LEGEND_VIEW, legendHtml } from "./keyboard";
import { mark, PAINT_MARK } from "./marks";
import { navigationHeld } from "./navigation";
import { type Edges, Pane } from "./pane";
import type { ImageInfo } from "./types";
import type { Viewer } from "./viewer";
import * as viewernav from "./viewernav";
import * as viewersync from "./viewersync";
import type { Point } from "./viewport";

export function paint(v: Viewer): void {
  if (v.signedOut !== null) {
    renderHeader(v, undefined);
    renderStatus(v);
    showMessage(v, "Signed out: log in again to go on reading.");
    return;
  }
  if (v.waitingForNext && viewernav.nextImage(v) !== null) {
    v.waitingForNext = false;
    viewernav.advance(v);
    return;
  }
  const info = v.info(v.shown);
  renderHeader(v, info);
  renderStatus(v);
  if (!info || v.shown === null) {
    if (v.atEnd !== null) showEnd(v);
    else if (v.current === null && v.data?.order.length === 0) showMessage(v, "Nothing to show on this list.");
    return;
  }
  const key = frameKey(v.shown, v.frame);
  const frame = v.cache.get(key);
  if (!frame) {
    const reason = v.missing.get(key);
    showMessage(v, reason ? `Cannot show this image: ${reason}` : "Loading…");
    return;
  }
  showMessage(v, "");
  if (v.renderer.camera.fitted) v.renderer.fit(frame);
  const overlay = v.overlays.get(key);
  const params = v.displayParams(info);
  const boxes = viewernav.boxesOf(v, v.shown).filter((box) => box.frame === v.frame);
  const ruler = v.ruler ? { ...v.ruler, text: rulerText(v, info, v.ruler) } : null;
  // Split: the image alone on the left, the image under its map on the right (O hides the map).
  const mapPane = v.panes.length - 1;
  v.panes.forEach((pane, index) => {
    const withMap = index === mapPane && !!overlay && v.overlayOn;
    pane.renderer.paint({
      frame,
      params,
      overlay: withMap ? { canvas: overlay, opacity: v.overlayOpacity } : null,
      boxes,
      selectedBox: v.selectedBox,
      draftBox: v.draftBox,
      ruler,
    });
  });
  annotate(v, info);
  renderHeader(v, info); // after the paint: a fit changes the zoom it shows
  const now = performance.now();
  const sameImage = v.painted?.imageId === v.shown;
  if (!sameImage || !v.painted) v.clock.restart(now);
  v.painted = { imageId: v.shown, frame: v.frame, at: now, firstAt: sameImage && v.painted ? v.painted.firstAt : now };
  v.root.dataset.paintedImage = String(v.shown);
  v.root.dataset.paintedFrame = String(v.frame);
  v.root.dataset.paints = String(Number(v.root.dataset.paints ?? "0") + 1);
  mark(PAINT_MARK, { imageId: v.shown, frame: v.frame });
}

/** Past the list's last image: says so, and offers the images of the list still to do. */
export function showEnd(v: Viewer): void {
  const end = v.atEnd;
  if (end === "unknown" || end === null) {
    showMessage(v, "End of this list.");
  } else if (end.count === 0 || end.first === null) {
    showMessage(v, "Every image on this list is done.");
  } else {
    const images = end.count === 1 ? "1 image" : `${end.count} images`;
    showMessage(v, `End of this list: ${images} on it still to do.`, "Go to the first (Enter)");
  }
}

/** The corners, edge letters and scale bar of each viewport (annotations.ts). */
export function annotate(v: Viewer, info: ImageInfo): void {
  const state = info.color ? null : v.windowState(info);
  const ratio = window.devicePixelRatio || 1;
  const slices = info.series && info.series.length > 1 && v.shown !== null ? info.series : null;
  const facts = {
    slice: slices ? { index: slices.indexOf(v.shown as number) + 1, count: slices.length } : null,
    frame: info.frames > 1 ? { index: v.frame + 1, count: info.frames } : null,
    window: state?.window ?? null,
    windowName: state?.name ?? null,
    voiLut: !!info.voiLut && !state?.window,
    inverted: !!state?.invert,
    zoom: v.renderer.camera.scale * 100,
    modality: info.modality,
    series: info.seriesDescription ?? "",
  };
  // A millimetre on screen: along a row, a column's spacing (mm between columns) apart.
  const columnSpacing = info.pixelSpacing?.[1] ?? null;
  const pixelsPerMm = columnSpacing ? v.renderer.camera.scale / ratio / columnSpacing : null;
  const edges: Edges | null = info.orientation ?? null;
  const mapPane = v.panes.length - 1;
  const label = v.overlayLabels.get(frameKey(v.shown as number, v.frame));
  v.panes.forEach((pane, index) => {
    let map: string | null = null;
    if (v.panes.length > 1 && index === mapPane) map = label ? (v.overlayOn ? label : `${label} (hidden: O)`) : "map: not computed yet";
    pane.annotate(cornerText({ ...facts, map }), edges, pixelsPerMm);
  });
}

export function rulerText(v: Viewer, info: ImageInfo, ruler: { from: Point; to: Point }): string {
  const dx = ruler.to.x - ruler.from.x;
  const dy = ruler.to.y - ruler.from.y;
  if (info.pixelSpacing) {
    const [rowSpacing, columnSpacing] = info.pixelSpacing;
    return `${Math.hypot(dx * columnSpacing, dy * rowSpacing).toFixed(1)} mm`;
  }
  return `${Math.hypot(dx, dy).toFixed(1)} px (no pixel spacing)`;
}

/** A message over the stage, with a button under it when `action` names one (the end of a list). */
export function showMessage(v: Viewer, text: string, action = ""): void {
  const html = escapeHtml(text) + (action ? `<button class="mrv-first-left">${escapeHtml(action)}</button>` : "");
  if (v.message.innerHTML !== html) v.message.innerHTML = html;
  v.message.style.display = text ? "flex" : "none";
}

export function flashStatus(v: Viewer, text: string): void {
  v.statusFlash = text;
  renderStatus(v);
  window.setTimeout(() => {
    if (v.statusFlash === text) {
      v.statusFlash = "";
      renderStatus(v);
    }
  }, 2500);
}

export function renderHeader(v: Viewer, info: ImageInfo | undefined): void {
  if (!info) {
    v.header.textContent = "";
    return;
  }
  const state = info.color ? null : v.windowState(info);
  const window = state?.window;
  // The read state comes first and is never cut off (the rest of the line may be).
  let read = "";
  if (v.data?.mode === "label") {
    const mine = v.data.multi ? info.labels.join(", ") : info.label;
    if (mine) read = `my label: <strong class="mrv-label">${escapeHtml(mine)}</strong>`;
    else if (info.read) read = `my read: <strong class="mrv-label">boxes only</strong>`;
    else read = "not read by me yet";
    if (v.unsure) read += " · unsure";
    const badge = modelBadge(info);
    if (badge) read += ` ${badge}`;
  }
  const parts = info.name ? [`<b>${escapeHtml(info.name)}</b>`] : [];
  parts.push(escapeHtml(info.caption));
  if (info.series && info.series.length > 1 && v.shown !== null) {
    parts.push(`slice <b class="mrv-slice">${info.series.indexOf(v.shown) + 1}</b>/${info.series.length}`);
  }
  if (info.frames > 1) parts.push(`frame <b class="mrv-frame">${v.frame + 1}</b>/${info.frames}${v.cineTimer !== null ? ` ▶ ${v.cineFps} fps` : ""}`);
  if (window) parts.push(`W ${Math.round(window.width)} / L ${Math.round(window.center)}${state?.name ? ` (${escapeHtml(state.name)})` : ""}`);
  else if (info.voiLut) parts.push("VOI LUT");
  if (state?.invert) parts.push("inverted");
  if (v.lockedWindow) parts.push("🔒 window locked");
  parts.push(`zoom ${Math.round(v.renderer.camera.scale * 100)}%`);
  parts.push(`<span class="mrv-tool">${toolText(v)}</span>`);
  const rest = `<span class="mrv-header-rest">${parts.join(" · ")}</span>`;
  const html = read ? `<span class="mrv-read">${read}</span>${rest}` : rest;
  if (v.header.innerHTML !== html) v.header.innerHTML = html;
}

/**
 * The model's call as the assist mode lets the reader see it (medreview/reading/assist.py): a
 * suggestion Enter accepts (never the read until the reader saves it), the call after the reader's
 * own read, or why there is no suggestion (outside the model's training data).
 */
export function modelBadge(info: ImageInfo): string {
  const call = info.model;
  if (!call) return "";
  if (call.outside || call.label === null) {
    return `<span class="mrv-model" data-suggest="false">model: no suggestion (${escapeHtml(call.reason ?? "outside its training data")})</span>`;
  }
  const percent = call.probability === null ? "" : ` ${Math.round(call.probability * 100)}%`;
  const hint = call.suggest && !info.read ? " · <kbd>Enter</kbd> accepts" : "";
  const suggest = call.suggest && !info.read;
  return `<span class="mrv-model" data-suggest="${suggest}">model: ${escapeHtml(call.label)}${percent}${hint}</span>`;
}

/** The tool in the header; the box tool with its class, or that none is chosen yet. */
export function toolText(v: Viewer): string {
  const tool = v.tools.tool;
  if (tool !== "box") return `tool: ${tool}`;
  const boxClass = v.tools.boxClass;
  return boxClass ? `tool: box <b>${escapeHtml(boxClass)}</b>` : "tool: box, <b>no class yet</b> (B)";
}

export function renderStatus(v: Viewer): void {
  const parts: string[] = [];
  if (v.signedOut !== null) {
    const unsaved = v.pending.length;
    const count = unsaved ? `${unsaved} read(s) not saved:` : "no read was waiting to be saved.";
    parts.push(`<span class="mrv-error mrv-signed-out">Signed out (${escapeHtml(v.signedOut)}): ${count}</span>`);
    if (unsaved) {
      const reads = v.pending.items.map((save) => `<li>${escapeHtml(viewersync.readText(v, save))}</li>`).join("");
      parts.push(`<ul class="mrv-unsaved">${reads}</ul>`);
    }
  } else if (v.data?.mode === "label") {
    const classes = v.data.classes
      .map((name, index) => {
        const chosen = v.data?.multi && v.multiSelection.has(name) ? " mrv-chosen" : "";
        return `<button class="mrv-class${chosen}" data-class-index="${index}"><kbd>${index + 1}</kbd> ${escapeHtml(name)}</button>`;
      })
      .join("");
    parts.push(`<span class="mrv-classes">${classes}${v.data.multi ? '<button class="mrv-save-multi"><kbd>Enter</kbd> save & next</button>' : ""}</span>`);
    const waiting = v.pending.length;
    const unsavedBoxes = v.tools.unsavedImages();
    if (v.failed.size) {
      const reasons = [...new Set(v.failed.values())].map(escapeHtml).join("; ");
      parts.push(`<span class="mrv-error">${v.failed.size} read(s) not saved: ${reasons} <button class="mrv-retry">Retry</button></span>`);
    } else if (waiting && (navigationHeld() || v.leaving)) parts.push(`<span class="mrv-pending">saving ${waiting} before leaving…</span>`);
    else if (waiting) parts.push(`<span class="mrv-pending">saving ${waiting}…</span>`);
    if (unsavedBoxes.length) {
      const where = unsavedBoxes.length === 1 && unsavedBoxes[0] === v.current ? "on this image" : `on ${unsavedBoxes.length} image(s)`;
      parts.push(`<span class="mrv-error mrv-unsaved-boxes">boxes not saved ${where}: a class key or S saves them</span>`);
    }
    if (!v.failed.size && !waiting && !unsavedBoxes.length) parts.push(`<span class="mrv-saved">all reads saved</span>`);
  }
  if (v.statusFlash) parts.push(`<span class="mrv-error">${escapeHtml(v.statusFlash)}</span>`);
  const html = parts.join(" ");
  if (v.status.innerHTML !== html) v.status.innerHTML = html;
  const legend = v.root.querySelector(".mrv-keys") as HTMLDivElement;
  const legendText = legendHtml(v.data?.mode === "label" ? [...LEGEND_LABEL, ...LEGEND_VIEW] : LEGEND_VIEW);
  if (legend.innerHTML !== legendText) legend.innerHTML = legendText;
}

/**
 * The viewports' height follows the window: what is left below the viewer's top, minus the rows
 * under it and the room the page keeps for its own controls there (`ViewerData.below`). The top is
 * measured in the page, not on screen: a page scrolled (a comment box opened below) must not make
 * the viewer taller, which scrolled its header away for good.
 */
export function layout(v: Viewer): void {
  const stage = (v.panes[0] as Pane).stage;
  const legend = v.root.querySelector(".mrv-legend") as HTMLDivElement;
  const below = v.status.offsetHeight + legend.offsetHeight + 24 + (v.data?.below ?? 0);
  const { top, height: windowHeight } = pageTop(stage);
  const available = windowHeight - top - below;
  const maxHeight = v.data?.maxHeight || 0;
  let height = Math.max(240, maxHeight > 0 ? Math.min(maxHeight, available) : available);
  const width = Math.max(120, stage.clientWidth);
  const info = v.info(v.shown);
  // Side by side, the viewports are narrow: no taller than the image fills them.
  if (v.panes.length > 1 && info) height = Math.max(240, Math.min(height, (width * info.height) / info.width));
  const frame = v.shown === null ? null : (v.cache.get(frameKey(v.shown, v.frame)) ?? null);
  for (const pane of v.panes) {
    pane.stage.style.height = `${Math.round(height)}px`;
    pane.renderer.resize(Math.max(120, pane.stage.clientWidth), Math.round(height), frame);
  }
  v.requestPaint();
}
