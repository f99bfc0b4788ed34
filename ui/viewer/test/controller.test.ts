/** The labelling controller: a class key reads the case once, whichever viewport is active. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { CaseLabels } from "../src/controller";

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
