/** Painting the case viewer: each viewport's slice, the header, the status and the layout. */

import type { CaseViewer } from "./caseviewer";
import { escapeHtml, pageTop } from "./dom";
import { frameKey } from "./frames";
import { layoutOf } from "./linking";

export function paint(c: CaseViewer): void {
  let painted = 0;
  for (const viewport of c.viewports) {
    const key = viewport.imageId === null ? "" : frameKey(viewport.imageId, viewport.frame);
    if (viewport.paint(c.info(viewport), c.cache.get(key), c.missing.get(key), viewport.number === c.active)) painted += 1;
  }
  c.root.dataset.painted = String(painted);
  // Opened ahead and every viewport painted while the read was still on its way (the tests' proof
  // that the next case did not wait for the save).
  const filled = c.viewports.filter((viewport) => viewport.slices > 0).length;
  if (c.ahead && painted === filled && c.root.dataset.paintedAheadOfSave === undefined) {
    const unsaved = c.labels.pending.some((read) => read.seq === c.ahead?.seq);
    c.root.dataset.paintedAheadOfSave = String(unsaved);
  }
  c.root.dataset.pendingReads = String(c.labels.pending.length);
  c.root.dataset.framesHeld = String(c.cache.size);
  c.root.dataset.linkScroll = String(c.linkScroll);
  c.root.dataset.linkWindow = String(c.linkWindow);
  renderHeader(c);
  renderStatus(c);
}

export function renderHeader(c: CaseViewer): void {
  const toggle = (name: string, on: boolean, text: string, key: string): string =>
    `<button class="mrv-toggle${on ? " mrv-on" : ""}" data-toggle="${name}" aria-pressed="${on}">${text}: ${on ? "linked" : "off"} <kbd>${key}</kbd></button>`;
  const viewport = c.activeViewport;
  const info = viewport ? c.info(viewport) : undefined;
  const what = info ? `viewport ${c.active + 1}/${c.viewports.length}: ${escapeHtml(info.seriesDescription || info.modality)}` : "";
  const html = `<span class="mrv-header-rest">${what}</span>${toggle("scroll", c.linkScroll, "Scroll", "Y")}${toggle("window", c.linkWindow, "W/L", "L")}`;
  if (c.header.innerHTML !== html) c.header.innerHTML = html;
}

export function renderStatus(c: CaseViewer): void {
  const data = c.data;
  const parts: string[] = [];
  if (data?.classes.length) {
    const mine = c.shown ? c.labels.labelOf(c.shown.id) : null;
    const classes = data.classes
      .map((name, index) => `<button class="mrv-class${mine === name ? " mrv-chosen" : ""}" data-class-index="${index}"><kbd>${index + 1}</kbd> ${escapeHtml(name)}</button>`)
      .join("");
    parts.push(`<span class="mrv-classes">${classes}</span>`);
    const failed = c.labels.failed;
    if (failed.size) parts.push(`<span class="mrv-error">not saved: ${[...new Set(failed.values())].map(escapeHtml).join("; ")}</span>`);
    else if (c.labels.pending.length) parts.push(`<span class="mrv-pending">saving the case read…</span>`);
  }
  if (c.signedOut !== null) {
    const unsaved = c.labels.pending.length;
    parts.push(`<span class="mrv-error mrv-signed-out">Signed out (${escapeHtml(c.signedOut)}): ${unsaved ? `${unsaved} case read${unsaved === 1 ? "" : "s"} not saved` : "nothing unsaved"}.</span>`);
  }
  if (c.flash) parts.push(`<span class="mrv-error">${escapeHtml(c.flash)}</span>`);
  const html = parts.join(" ");
  if (c.status.innerHTML !== html) c.status.innerHTML = html;
}

export function flashStatus(c: CaseViewer, text: string): void {
  c.flash = text;
  renderStatus(c);
  window.setTimeout(() => {
    if (c.flash === text) {
      c.flash = "";
      renderStatus(c);
    }
  }, 2500);
}

/** Rows share the height left below the viewer's top, as the worklist viewer's one viewport does. */
export function layout(c: CaseViewer): void {
  if (!c.data || !c.shown || c.viewports.length === 0) return;
  const { rows, columns } = layoutOf(c.shown.layout, c.shown.viewports.length);
  const legend = c.root.querySelector(".mrv-legend") as HTMLDivElement;
  const below = c.status.offsetHeight + legend.offsetHeight + 24 + (c.data.below ?? 0);
  const { top, height: windowHeight } = pageTop(c.grid);
  const available = windowHeight - top - below;
  const maxHeight = c.data.maxHeight || 0;
  const total = Math.max(240, maxHeight > 0 ? Math.min(maxHeight, available) : available);
  const gap = 4;
  const height = Math.max(120, (total - gap * (rows - 1)) / rows);
  const width = (c.grid.clientWidth - gap * (columns - 1)) / columns;
  for (const viewport of c.viewports) {
    const key = viewport.imageId === null ? "" : frameKey(viewport.imageId, viewport.frame);
    viewport.resize(width, height, c.cache.get(key));
  }
  c.requestPaint();
}
