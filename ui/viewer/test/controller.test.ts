/** The labelling controller: a class key reads the case once, whichever viewport is active. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { CASE_STORAGE_KEY, CaseLabels } from "../src/controller";

const CLASSES = ["normal", "PE present"];

test("a class key in any viewport is one read of the case, not of a slice", () => {
  const labels = new CaseLabels(0.12);
  const outcome = labels.classKey("study:7", CLASSES, 1, 5000, 1000, 3, "owner");
  assert.ok("read" in outcome);
  assert.equal(outcome.read.caseId, "study:7");
  assert.equal(outcome.read.label, "PE present");
  assert.equal(outcome.read.viewport, 3);
  assert.equal(outcome.read.seconds, 4);
  // The reader changes their mind in another viewport: still one read of the case, the newer one.
  labels.classKey("study:7", CLASSES, 0, 6000, 1000, 0, "owner");
  assert.equal(labels.pending.length, 1);
  assert.equal(labels.labelOf("study:7"), "normal");
});

test("a key before the case was painted, or within the bounce time, reads nothing", () => {
  const labels = new CaseLabels(0.12);
  assert.ok("refused" in labels.classKey("study:7", CLASSES, 0, 5000, null, 0, "owner"));
  assert.ok("refused" in labels.classKey("study:7", CLASSES, 0, 1050, 1000, 0, "owner"));
  assert.ok("refused" in labels.classKey("study:7", CLASSES, 5, 5000, 1000, 0, "owner"), "no class 6");
  assert.equal(labels.pending.length, 0);
});

test("a read stays pending until acknowledged; a refusal keeps it with the reason", () => {
  const labels = new CaseLabels(0);
  const first = labels.classKey("study:7", CLASSES, 0, 10, 0, 0, "owner");
  assert.ok("read" in first);
  labels.answer([], { [String(first.read.seq)]: "not allowed" });
  assert.equal(labels.pending.length, 1);
  assert.equal(labels.failed.get(first.read.seq), "not allowed");
  // A refused read is not silently replaced by the next key: both stay until answered.
  const second = labels.classKey("study:7", CLASSES, 1, 20, 0, 0, "owner");
  assert.ok("read" in second);
  assert.equal(labels.pending.length, 2);
  assert.equal(labels.answer([first.read.seq, second.read.seq], {}), 2);
  assert.equal(labels.pending.length, 0);
  assert.equal(labels.failed.size, 0);
});

/** A Map-backed stand-in for the tab's session storage. */
function memoryStorage(): { getItem(key: string): string | null; setItem(key: string, value: string): void; removeItem(key: string): void } {
  const values = new Map<string, string>();
  return {
    getItem: (key) => values.get(key) ?? null,
    setItem: (key, value) => void values.set(key, value),
    removeItem: (key) => void values.delete(key),
  };
}

test("a case read not yet acknowledged survives the viewer and is sent again for the same sign-in only", () => {
  const storage = memoryStorage();
  const before = new CaseLabels(0, storage);
  before.adopt("reader-a");
  const outcome = before.classKey("study:7", CLASSES, 1, 5000, 1000, 0, "reader-a");
  assert.ok("read" in outcome);
  // The reader leaves the page (the next case already on screen) before the server answers.
  const after = new CaseLabels(0, storage);
  assert.deepEqual(
    after.adopt("reader-a").map((read) => [read.seq, read.caseId, read.label]),
    [[outcome.read.seq, "study:7", "PE present"]],
  );
  assert.equal(after.pending.length, 1);
  // Acknowledged: it leaves the storage too.
  after.answer([outcome.read.seq], {});
  assert.deepEqual(new CaseLabels(0, storage).adopt("reader-a"), []);
  // Another sign-in never adopts the reads left by the first.
  const third = new CaseLabels(0, storage);
  third.adopt("reader-a");
  third.classKey("study:8", CLASSES, 0, 5000, 1000, 0, "reader-a");
  assert.deepEqual(new CaseLabels(0, storage).adopt("reader-b"), []);
  assert.equal(storage.getItem(CASE_STORAGE_KEY), null, "reader-a's read was dropped, not kept for reader-b");
});

test("a signed-out controller keeps its reads on screen and out of the tab's storage", () => {
  const storage = memoryStorage();
  const labels = new CaseLabels(0, storage);
  labels.adopt("reader-a");
  labels.classKey("study:7", CLASSES, 0, 5000, 1000, 0, "reader-a");
  labels.signOut();
  assert.equal(labels.pending.length, 1);
  assert.equal(storage.getItem(CASE_STORAGE_KEY), null);
});
