/** Reads kept in the tab's storage: sent again by the same sign-in only. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { PendingReads, STORAGE_KEY, type TabStorage } from "../src/pending";
import type { PendingSave } from "../src/types";

class MapStorage implements TabStorage {
  readonly values = new Map<string, string>();
  getItem(key: string): string | null {
    return this.values.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.values.set(key, value);
  }
  removeItem(key: string): void {
    this.values.delete(key);
  }
}

function read(seq: number, imageId: number, owner: string): PendingSave {
  return { seq, imageId, label: "normal", labels: null, boxes: null, seconds: 1.5, unsure: false, owner };
}

test("a read not acknowledged survives the viewer and comes back for the same sign-in", () => {
  const storage = new MapStorage();
  const first = new PendingReads(storage);
  assert.deepEqual(first.adopt("ann-1"), []);
  first.add(read(1, 10, "ann-1"));
  first.add(read(2, 11, "ann-1"));
  first.acknowledge([1]);
  // The page is left before the second answer: the next viewer of this tab and sign-in sends it.
  const next = new PendingReads(storage);
  assert.deepEqual(next.adopt("ann-1"), [read(2, 11, "ann-1")]);
  assert.deepEqual(next.items, [read(2, 11, "ann-1")]);
  next.acknowledge([2]);
  assert.equal(storage.getItem(STORAGE_KEY), null, "nothing left once everything is acknowledged");
});

test("another sign-in never gets them, and they leave the storage", () => {
  const storage = new MapStorage();
  const ann = new PendingReads(storage);
  ann.adopt("ann-1");
  ann.add(read(1, 10, "ann-1"));
  const bea = new PendingReads(storage);
  assert.deepEqual(bea.adopt("bea-1"), []);
  assert.equal(bea.length, 0);
  assert.equal(storage.getItem(STORAGE_KEY), null);
  // Ann again, in a later sign-in: hers are gone too (they were dropped, not kept for her).
  assert.deepEqual(new PendingReads(storage).adopt("ann-2"), []);
});

test("a viewer bound to one sign-in is never handed to another", () => {
  const reads = new PendingReads(new MapStorage());
  reads.adopt("ann-1");
  reads.add(read(1, 10, "ann-1"));
  assert.throws(() => reads.adopt("bea-1"));
  assert.deepEqual(reads.items, [read(1, 10, "ann-1")]);
});

test("signing out takes the reads out of the tab's storage and keeps them on screen", () => {
  const storage = new MapStorage();
  const reads = new PendingReads(storage);
  reads.adopt("ann-1");
  reads.add(read(1, 10, "ann-1"));
  reads.signOut();
  assert.equal(storage.getItem(STORAGE_KEY), null);
  assert.equal(reads.length, 1);
});

test("unreadable storage is ignored, and no storage at all still holds the reads", () => {
  const storage = new MapStorage();
  storage.setItem(STORAGE_KEY, "{not json");
  assert.deepEqual(new PendingReads(storage).adopt("ann-1"), []);
  const memory = new PendingReads(null);
  memory.adopt("ann-1");
  memory.add(read(1, 10, "ann-1"));
  assert.equal(memory.length, 1);
});
