/** The case viewer's frames and reports: frames over HTTP or asked for in `sync`, what is wanted, the reports. */

import { type CaseViewer, MAX_WANTED, NEXT_CASE_SLICES } from "./caseviewer";
import { FrameFetcher } from "./fetcher";
import { frameKey } from "./frames";
import { SeriesViewport } from "./seriesviewport";

export function useFrameUrl(c: CaseViewer, url: string | null): void {
  if (url === null) {
    c.fetcher = null;
    return;
  }
  if (c.fetcher) {
    c.fetcher.setUrl(url);
    return;
  }
  c.fetcher = new FrameFetcher(url, {
    frame: (frame) => {
      if (c.signedOut === null) c.cache.put(frame); // not a frame that arrives after a sign-out
    },
    missing: (key, reason) => c.missing.set(key, reason),
    batch: () => {
      c.requestPaint();
      pumpFrames(c);
    },
    broken: () => sync(c, true), // through the runs from now on
  });
}

/** Frames over HTTP: whether they come that way now. */
export function isFetching(c: CaseViewer): boolean {
  return c.fetcher !== null && c.fetcher.broken === null && c.signedOut === null;
}

export function pumpFrames(c: CaseViewer): void {
  // The frame on screen of each viewport comes first in wanted(): those do not wait behind prefetches.
  if (isFetching(c)) c.fetcher?.pump(wanted(c), c.viewports.length);
}

/** Frames wanted: every viewport's frame on screen (the active one first), then each one's prefetch in turn. */
export function wanted(c: CaseViewer): string[] {
  const has = (key: string): boolean =>
    c.cache.has(key) || c.decoding.has(key) || c.missing.has(key) || (c.fetcher?.fetching(key) ?? false);
  const order = [c.active, ...c.viewports.map((_, index) => index).filter((index) => index !== c.active)];
  const lists = order.map((index) => {
    const viewport = c.viewports[index] as SeriesViewport;
    return viewport.wanted(has, c.info(viewport));
  });
  const next = c.data?.next && c.data.next.id !== c.shown?.id ? c.data.next : null;
  const nextLists = (next?.viewports ?? []).map((spec) =>
    spec.images
      .slice(0, NEXT_CASE_SLICES)
      .map((imageId) => frameKey(imageId, 0))
      .filter((key) => !has(key)),
  );
  const keys: string[] = [];
  const take = (list: string[], step: number): void => {
    const key = list[step];
    if (key !== undefined && !keys.includes(key)) keys.push(key);
  };
  // The next case's first slice of each viewport (sent unasked with the case, so seldom missing)
  // comes right after the frames on screen; its next few after this case's own prefetch.
  for (const list of lists) take(list, 0);
  for (const list of nextLists) take(list, 0);
  for (let step = 1; keys.length < MAX_WANTED && lists.some((list) => step < list.length); step++) {
    for (const list of lists) take(list, step);
  }
  for (let step = 1; step < NEXT_CASE_SLICES; step++) for (const list of nextLists) take(list, step);
  return keys.slice(0, MAX_WANTED);
}

export function sync(c: CaseViewer, more: boolean): void {
  if (!c.data || !c.root.isConnected || c.signedOut !== null) return;
  pumpFrames(c);
  const want = isFetching(c) ? [] : wanted(c);
  const body = {
    want,
    active: c.active,
    linkScroll: c.linkScroll,
    view: c.viewports.map((viewport) => ({ imageId: viewport.imageId, index: viewport.index, frame: viewport.frame })),
    pending: [...c.labels.pending],
  };
  const text = JSON.stringify(body);
  if (text === c.lastSync && !(more && (want.length > 0 || body.pending.length > 0))) return;
  c.tick += 1;
  c.lastSync = text;
  c.lastSyncAt = performance.now();
  c.setState("sync", { ...body, tick: c.tick });
}
