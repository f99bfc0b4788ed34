/**
 * The labelling controller of a case (Cornerstone3D leaves this to the app): class keys label the
 * case, whichever viewport is active, as one read. The read names the case (the study or series the
 * server opened) and never a slice; it stays pending until the server acknowledges it, and a newer key
 * on the same case replaces a read not yet sent on its way (the reader changed their mind).
 *
 * Pending reads are kept in the tab's session storage too (pending.ts, under a key of their own), so a
 * read made just before the reader leaves the page, with the next case already on screen, is sent when
 * the case viewer next loads for the same sign-in; another sign-in's are dropped unsent.
 */

import { PendingReads, type TabStorage } from "./pending";

export const CASE_STORAGE_KEY = "medreview.viewer.pendingCaseReads";

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

function isCaseRead(value: unknown): value is CaseRead {
  const read = value as Partial<CaseRead> | null;
  return !!read && typeof read.seq === "number" && typeof read.caseId === "string" && typeof read.label === "string";
}

export class CaseLabels {
  private readonly reads: PendingReads<CaseRead>;
  private readonly refusals = new Map<number, string>();

  /**
   * `minSecondsOnScreen`: a key within this long of the case's first paint is a bounce.
   * `storage`: the tab's session storage (null: reads are held in memory only).
   */
  constructor(
    public minSecondsOnScreen: number,
    storage: TabStorage | null = null,
  ) {
    this.reads = new PendingReads<CaseRead>(storage, CASE_STORAGE_KEY, isCaseRead);
  }

  get pending(): readonly CaseRead[] {
    return this.reads.items;
  }

  /** Bind to the sign-in `owner`; returns the reads it left unsent in this tab (see PendingReads.adopt). */
  adopt(owner: string): CaseRead[] {
    return this.reads.adopt(owner);
  }

  /** The sign-in ended: the reads stay on screen as not saved, and leave the tab's storage. */
  signOut(): void {
    this.reads.signOut();
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
    const earlier = this.reads.items.find((pending) => pending.caseId === caseId && !this.refusals.has(pending.seq));
    if (earlier) this.reads.acknowledge([earlier.seq]);
    this.reads.add(read);
    return { read };
  }

  /** The server's answer: saved seqs go, refused ones stay with the reason. */
  answer(acked: readonly number[], failed: Record<string, string>): number {
    const before = this.reads.length;
    this.reads.acknowledge(acked);
    for (const seq of acked) this.refusals.delete(seq);
    for (const [seq, reason] of Object.entries(failed)) this.refusals.set(Number(seq), reason);
    return before - this.reads.length;
  }

  /** The label the reader gave `caseId` here, not yet acknowledged (null: none). */
  labelOf(caseId: string): string | null {
    const reads = this.reads.items;
    for (let index = reads.length - 1; index >= 0; index--) {
      const read = reads[index] as CaseRead;
      if (read.caseId === caseId) return read.label;
    }
    return null;
  }
}
