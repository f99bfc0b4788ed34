/**
 * Leaving the page the components are on.
 *
 * A component's report reruns the fragment it sits in. One sent after the reader clicked another
 * page reaches the server after the page change: Streamlit finds no such fragment in the new page
 * ("Couldn't find fragment"), or, queued with the page change, folds the two into one rerun of the
 * page being left, which once left a blank page. And a page change carries no component state, so
 * reads still on their way to the server were lost. So, before the click reaches Streamlit:
 *
 * - a component with something to finish (the Label viewer holding reads the server has not
 *   acknowledged) holds the navigation until it is done, at most HOLD_MS (its reads stay in the
 *   tab's storage after that: pending.ts);
 * - when the navigation goes on, every component on the page is told it is left, and sends nothing
 *   more.
 *
 * Going back or forward in the browser's history cannot be held: it only tells the components.
 */

/** Longest a navigation waits for the components to finish (ms). */
export const HOLD_MS = 4000;

export interface PageComponent {
  /** Whether it has something to finish before the page is left. */
  busy(): boolean;
  /** Finish, then call `done` (the navigation goes on after HOLD_MS whatever happens). */
  finish(done: () => void): void;
  /** The page is being left: send nothing more, ever. */
  leave(): void;
}

const components = new Set<PageComponent>();
let held: HTMLAnchorElement | null = null;
let releasing: HTMLAnchorElement | null = null;

/** Put a component under the guard; returns what takes it off (when it is destroyed). */
export function guard(component: PageComponent): () => void {
  components.add(component);
  return () => components.delete(component);
}

/** Whether a click is waiting for the components to finish. */
export function navigationHeld(): boolean {
  return held !== null;
}

function leaveAll(): void {
  for (const component of components) component.leave();
  components.clear();
}

/** The link a click follows to another page of this app, if it does. */
function pageLink(event: MouseEvent): HTMLAnchorElement | null {
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return null;
  const target = event.target instanceof Element ? event.target : null;
  const link = target?.closest("a[href]");
  if (!(link instanceof HTMLAnchorElement) || (link.target && link.target !== "_self")) return null;
  const url = new URL(link.href, window.location.href);
  if (url.origin !== window.location.origin || url.pathname === window.location.pathname) return null;
  return link;
}

function onClick(event: MouseEvent): void {
  const link = pageLink(event);
  if (!link) return;
  if (link === releasing) return; // the held click, going on
  if (held !== null) {
    // Already waiting: this click replaces the one held (the reader changed their mind).
    held = link;
    event.preventDefault();
    event.stopImmediatePropagation();
    return;
  }
  const waiting = [...components].filter((component) => component.busy());
  if (waiting.length === 0) {
    leaveAll();
    return;
  }
  event.preventDefault();
  event.stopImmediatePropagation();
  held = link;
  let remaining = waiting.length;
  const release = (): void => {
    const link = held;
    if (link === null) return;
    held = null;
    window.clearTimeout(timer);
    leaveAll();
    releasing = link;
    try {
      link.click();
    } finally {
      releasing = null;
    }
  };
  const timer = window.setTimeout(release, HOLD_MS);
  for (const component of waiting) {
    component.finish(() => {
      remaining -= 1;
      if (remaining === 0) release();
    });
  }
}

if (typeof window !== "undefined") {
  window.addEventListener("click", onClick, true);
  window.addEventListener("popstate", leaveAll, true);
}
