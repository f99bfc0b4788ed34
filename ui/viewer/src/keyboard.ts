/** Which keys belong to the viewer, and the legend that shows them. */

const NON_TEXT_INPUT_TYPES = new Set(["button", "checkbox", "radio", "range", "submit", "reset", "color", "file", "image"]);

/**
 * Whether keys typed now go into a text box. A closed select box (Streamlit's selectbox is an
 * input with role="combobox") keeps focus after the reader picks a filter; it is not a text box
 * until its menu is open, so the viewer's keys keep working after a sidebar filter changes.
 */
export function isTextEntry(element: Element | null): boolean {
  if (!element) return false;
  if (element instanceof HTMLTextAreaElement || element instanceof HTMLSelectElement) return true;
  if (element instanceof HTMLInputElement) {
    if (element.getAttribute("role") === "combobox") return element.getAttribute("aria-expanded") === "true";
    return !NON_TEXT_INPUT_TYPES.has(element.type);
  }
  return element instanceof HTMLElement && element.isContentEditable;
}

export const LEGEND_LABEL = [
  ["1-9", "label & next"],
  ["⌫ / Ctrl+Z", "back"],
  ["N", "skip"],
  ["U", "unsure"],
  ["S", "save boxes"],
];

export const LEGEND_VIEW = [
  ["left-drag", "window"],
  ["right-drag", "pan"],
  ["wheel / + −", "zoom (stacks: wheel scrolls, Ctrl+wheel zooms)"],
  ["dbl-click / F", "fit"],
  ["A", "1:1"],
  ["I", "invert"],
  ["R", "reset"],
  ["Shift+1-9", "window presets"],
  ["L", "lock window"],
  ["↑ ↓", "slices"],
  ["← →", "frames"],
  ["Space", "cine"],
  [", .", "cine rate"],
  ["B", "box tool (again: next class)"],
  ["M", "ruler"],
  ["Esc", "leave tool"],
  ["O", "overlay"],
];

export function legendHtml(entries: string[][]): string {
  return entries.map(([key, action]) => `<span class="mrv-key"><kbd>${key}</kbd> ${action}</span>`).join("");
}
