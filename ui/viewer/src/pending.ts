/**
 * The reads the viewer accepted and the server has not acknowledged yet, kept in the tab's session
 * storage as well as in memory: a read survives the viewer (a page left before the answer came, a
 * reload) and is sent again when the Label viewer next loads in this tab, for the same sign-in.
 *
 * The storage names the sign-in that made the reads (`owner`: ui/viewer.py sign_in_id, derived from
 * the login token, never the token itself). A viewer signed in otherwise (another user, or the same
 * user after a logout) never adopts them: it drops them unsent.
 */

import type { PendingSave } from "./types";

/** What the viewer needs of `window.sessionStorage` (a test gives a Map-backed one). */
export interface TabStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export const STORAGE_KEY = "medreview.viewer.pendingReads";

interface Stored<Read> {
  owner: string;
  reads: Read[];
}

/**
 * `Read`: a worklist viewer's image read (PendingSave, the default) or a case viewer's case read
 * (controller.ts), each kept under its own storage key and checked by its own `isRead` when loaded.
 */
export class PendingReads<Read extends { seq: number } = PendingSave> {
  private reads: Read[] = [];
  private owner: string | null = null;

  constructor(
    private readonly storage: TabStorage | null,
    private readonly storageKey: string = STORAGE_KEY,
    private readonly isRead: (value: unknown) => value is Read = isPendingSave as unknown as (value: unknown) => value is Read,
  ) {}

  get items(): readonly Read[] {
    return this.reads;
  }

  get length(): number {
    return this.reads.length;
  }

  /**
   * Bind to the signed-in session `owner` and take back what it left unsent in this tab; returns
   * those reads. Another sign-in's reads are removed from the storage, never sent.
   */
  adopt(owner: string): Read[] {
    if (this.owner === owner) return [];
    // The viewer is signed out for good before anyone else signs in (viewer.ts): reads held in
    // memory are never handed to another sign-in.
    if (this.owner !== null) throw new Error("pending reads belong to another sign-in");
    this.owner = owner;
    const stored = this.load();
    const recovered = stored && stored.owner === owner ? stored.reads.filter((read) => !this.has(read.seq)) : [];
    this.reads.push(...recovered);
    this.persist();
    return recovered;
  }

  add(read: Read): void {
    this.reads.push(read);
    this.persist();
  }

  /** The server saved these (or refused them for good): they leave the list. */
  acknowledge(seqs: readonly number[]): void {
    if (seqs.length === 0) return;
    const done = new Set(seqs);
    const before = this.reads.length;
    this.reads = this.reads.filter((read) => !done.has(read.seq));
    if (this.reads.length !== before) this.persist();
  }

  /** The sign-in ended: the reads stay on screen as not saved, and leave the tab's storage. */
  signOut(): void {
    this.owner = null;
    try {
      this.storage?.removeItem(this.storageKey);
    } catch {
      // Storage refused (private mode, quota): nothing was kept there.
    }
  }

  private has(seq: number): boolean {
    return this.reads.some((read) => read.seq === seq);
  }

  private load(): Stored<Read> | null {
    try {
      const text = this.storage?.getItem(this.storageKey);
      if (!text) return null;
      const value = JSON.parse(text) as Partial<Stored<unknown>>;
      if (typeof value.owner !== "string" || !Array.isArray(value.reads)) return null;
      return { owner: value.owner, reads: value.reads.filter(this.isRead) };
    } catch {
      return null;
    }
  }

  private persist(): void {
    if (this.owner === null || !this.storage) return;
    try {
      if (this.reads.length === 0) this.storage.removeItem(this.storageKey);
      else this.storage.setItem(this.storageKey, JSON.stringify({ owner: this.owner, reads: this.reads } satisfies Stored<Read>));
    } catch {
      // Storage refused (private mode, quota): the reads are still held in memory.
    }
  }
}

function isPendingSave(value: unknown): value is PendingSave {
  const read = value as Partial<PendingSave> | null;
  return !!read && typeof read.seq === "number" && typeof read.imageId === "number";
}
