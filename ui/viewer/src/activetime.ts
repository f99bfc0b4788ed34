/**
 * Active reading time of one image: the time the tab was visible, without idle gaps. The clock
 * counts the time between the reader's inputs (a key, a pointer move, a wheel turn, a click); a gap
 * between two inputs longer than `IDLE_LIMIT_MS` is not counted at all (the reader was away), nor
 * is any time while the tab was hidden (`document.visibilityState`). Hiding the tab ends a gap as
 * an input does (the reader was there until then); showing it starts a new one. Times are
 * performance.now() / event.timeStamp milliseconds. Pure: the viewer feeds it the events.
 */

export const IDLE_LIMIT_MS = 60_000;

export class ActiveClock {
  private counted = 0;
  private lastInput: number;
  private visibleFrom: number;
  /** Visible milliseconds since the last input (counted at the next input unless the gap was idle). */
  private gapVisible = 0;

  constructor(
    now: number,
    private visible = true,
  ) {
    this.lastInput = now;
    this.visibleFrom = now;
  }

  /** A new image on screen: the count starts again from `now`. */
  restart(now: number): void {
    this.counted = 0;
    this.gapVisible = 0;
    this.lastInput = now;
    this.visibleFrom = now;
  }

  /** The reader did something at `now`. */
  input(now: number): void {
    if (now < this.lastInput) return; // an event stamped before the last one (already counted)
    this.counted += this.gapContribution(now);
    this.gapVisible = 0;
    this.lastInput = now;
    this.visibleFrom = now;
  }

  /** The tab became visible or hidden at `now`. */
  visibility(visible: boolean, now: number): void {
    if (visible === this.visible) return;
    if (!visible) this.input(now);
    this.visible = visible;
    if (visible) {
      this.gapVisible = 0;
      this.lastInput = Math.max(this.lastInput, now);
      this.visibleFrom = this.lastInput;
    }
  }

  /** Active seconds up to `now` (a save at `now` is an input: the gap before it counts unless idle). */
  seconds(now: number): number {
    return (this.counted + (now >= this.lastInput ? this.gapContribution(now) : 0)) / 1000;
  }

  private gapContribution(now: number): number {
    if (now - this.lastInput > IDLE_LIMIT_MS) return 0;
    return this.gapVisible + (this.visible ? Math.max(0, now - this.visibleFrom) : 0);
  }
}
