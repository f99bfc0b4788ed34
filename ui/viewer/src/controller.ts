/**
 * The labelling controller of a case (Cornerstone3D leaves this to the app): class keys label the
 * case, whichever viewport is active, as one read. The read names the case (the study or series the
 * server opened) and never a slice; it stays pending until the server acknowledges it, and a newer key
 * on the same case replaces a read not yet sent on its way (the reader changed their mind).
 */

export interface CaseRead {
  seq: number;
  /** The case as the server named it ("study:12"). */
  caseId: string;
  label: string;
  /** Seconds the case was on screen before the key (reader statistics). */
  seconds: number;
  /** The viewport that was active (for the record; the read is the case's). */
  viewport: number;
  /** The sign-in that made it (as ViewerData.owner). */
  owner: string;
}

export type KeyOutcome = { read: CaseRead } | { refused: string };

export class CaseLabels {
  private readonly reads: CaseRead[] = [];
  private readonly refusals = new Map<number, string>();

  /** `minSecondsOnScreen`: a key within this long of the case's first paint is a bounce. */
  constructor(private readonly minSecondsOnScreen: number) {}

  get pending(): readonly CaseRead[] {
    return this.reads;
  }

  get failed(): ReadonlyMap<number, string> {
    return this.refusals;
  }

  /**
   * Class `index` of `classes` for case `caseId`, keyed at `eventTime` (performance.now() clock);
   * `paintedAt`: when the case was first painted (null: not yet).
   */
  classKey(
    caseId: string,
    classes: readonly string[],
    index: number,
    eventTime: number,
    paintedAt: number | null,
    viewport: number,
    owner: string,
  ): KeyOutcome {
    const label = classes[index];
    if (label === undefined) return { refused: `no class ${index + 1}: this project has ${classes.length}` };
    if (paintedAt === null || eventTime - paintedAt < this.minSecondsOnScreen * 1000) {
      return { refused: "Not saved: the case was not on screen yet." };
    }
    const read: CaseRead = {
      seq: Date.now() * 1000 + Math.floor(Math.random() * 1000),
      caseId,
      label,
      seconds: Math.round((Math.max(0, eventTime - paintedAt) / 1000) * 100) / 100,
      viewport,
      owner,
    };
    const earlier = this.reads.findIndex((pending) => pending.caseId === caseId && !this.refusals.has(pending.seq));
    if (earlier >= 0) this.reads.splice(earlier, 1);
    this.reads.push(read);
    return { read };
  }

  /** The server's answer: saved seqs go, refused ones stay with the reason. */
  answer(acked: readonly number[], failed: Record<string, string>): number {
    const before = this.reads.length;
    for (let index = this.reads.length - 1; index >= 0; index--) {
      const seq = (this.reads[index] as CaseRead).seq;
      if (acked.includes(seq)) {
        this.reads.splice(index, 1);
        this.refusals.delete(seq);
      }
    }
    for (const [seq, reason] of Object.entries(failed)) this.refusals.set(Number(seq), reason);
    return before - this.reads.length;
  }

  /** The label the reader gave `caseId` here, not yet acknowledged (null: none). */
  labelOf(caseId: string): string | null {
    for (let index = this.reads.length - 1; index >= 0; index--) {
      const read = this.reads[index] as CaseRead;
      if (read.caseId === caseId) return read.label;
    }
    return null;
  }
}
