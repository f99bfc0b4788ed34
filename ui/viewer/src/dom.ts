/** Small DOM helpers shared by the viewers. */

/**
 * An element's top in the page (scrolling does not change it) and the height of the window it is
 * scrolled in: Streamlit scrolls its main area, not the document.
 */
export function pageTop(element: HTMLElement): { top: number; height: number } {
  const rect = element.getBoundingClientRect();
  for (let parent = element.parentElement; parent; parent = parent.parentElement) {
    const overflow = getComputedStyle(parent).overflowY;
    if ((overflow === "auto" || overflow === "scroll") && parent.scrollHeight > parent.clientHeight) {
      const box = parent.getBoundingClientRect();
      return { top: rect.top - box.top + parent.scrollTop, height: Math.min(parent.clientHeight, window.innerHeight - box.top) };
    }
  }
  return { top: rect.top + window.scrollY, height: window.innerHeight };
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => `&#${character.charCodeAt(0)};`);
}
