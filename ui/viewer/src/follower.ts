/**
 * The Label worklist's link to the viewer. The viewer moves on in the browser and its reports rerun
 * only the viewer; the worklist beside it (counts, the row on screen, the rows done) is a fragment of
 * its own, which this invisible component reruns when the viewer says the reader moved or reads were
 * saved. Debounced, and after the viewer's own report has gone, so that a burst of keys reruns the
 * list once the reader pauses, and the two reports never travel in one message (Streamlit sends a
 * batch of widget changes as one fragment's rerun: the other fragment's would be lost).
 */

import { guard } from "./navigation";

type SetState = (name: string, value: unknown) => void;

/** The viewer's news for the list (a window event, so the two need not know each other). */
export const PROGRESS_EVENT = "medreview:progress";

export interface Progress {
  /** The viewer's component key (ui/viewer.py): a follower follows one viewer. */
  viewer: string;
  position: number | null;
  /** Reads the server has acknowledged since the viewer was mounted. */
  saved: number;
}

/** Quiet time before the list follows (ms): keys closer than this rerun it once. */
export const FOLLOW_DELAY_MS = 300;

export function announceProgress(progress: Progress): void {
  window.dispatchEvent(new CustomEvent<Progress>(PROGRESS_EVENT, { detail: progress }));
}

export class Follower {
  private setState: SetState = () => {};
  private viewer = "";
  private timer: number | null = null;
  private last = "";
  private tick = 0;
  private left = false;
  private readonly unguard = guard({
    busy: () => false,
    finish: (done) => done(),
    leave: () => {
      this.left = true;
      this.cancel();
    },
  });

  constructor() {
    window.addEventListener(PROGRESS_EVENT, this.onProgress);
  }

  update(viewer: string, setState: SetState): void {
    this.viewer = viewer;
    this.setState = setState;
  }

  destroy(): void {
    this.cancel();
    this.unguard();
    window.removeEventListener(PROGRESS_EVENT, this.onProgress);
  }

  private readonly onProgress = (event: Event): void => {
    const progress = (event as CustomEvent<Progress>).detail;
    if (this.left || progress.viewer !== this.viewer) return;
    const text = JSON.stringify(progress);
    if (text === this.last) return;
    this.cancel();
    this.timer = window.setTimeout(() => {
      this.timer = null;
      if (this.left) return;
      this.last = text;
      this.tick += 1;
      this.setState("progress", { position: progress.position, saved: progress.saved, tick: this.tick });
    }, FOLLOW_DELAY_MS);
  };

  private cancel(): void {
    if (this.timer !== null) window.clearTimeout(this.timer);
    this.timer = null;
  }
}
