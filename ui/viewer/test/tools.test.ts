/** The box tool's state: a tool per image, Esc, a box class chosen by the reader, unsaved boxes. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { Tools } from "../src/tools";
import type { Box } from "../src/types";

const CLASSES = ["normal", "pneumonia"];
const box = (label: string): Box => ({ label, x: 1, y: 2, width: 10, height: 8, frame: 0 });

test("the box tool starts with no class: the first is never chosen for the reader", () => {
  const tools = new Tools();
  tools.boxKey(CLASSES);
  assert.equal(tools.tool, "box");
  assert.equal(tools.boxClass, "");
  assert.equal(tools.canDraw(), false);
  tools.boxKey(CLASSES); // B again: the first class, chosen
  assert.equal(tools.boxClass, "normal");
  assert.equal(tools.canDraw(), true);
  tools.boxKey(CLASSES);
  assert.equal(tools.boxClass, "pneumonia");
  tools.boxKey(CLASSES);
  assert.equal(tools.boxClass, "normal", "B cycles");
});

test("Esc leaves a tool, and the next image opens with windowing and the last class chosen", () => {
  const tools = new Tools();
  tools.boxKey(CLASSES);
  tools.boxKey(CLASSES);
  assert.equal(tools.escape(), true);
  assert.equal(tools.tool, "window");
  assert.equal(tools.escape(), false, "nothing left to leave");
  tools.boxKey(CLASSES);
  tools.imageChanged();
  assert.equal(tools.tool, "window", "a left-drag on the next image windows");
  tools.boxKey(CLASSES);
  assert.equal(tools.boxClass, "normal", "the class the reader chose last");
  tools.rulerKey();
  assert.equal(tools.tool, "ruler");
  tools.imageChanged();
  assert.equal(tools.tool, "window");
});

test("boxes edited are unsaved until a save of their image takes them", () => {
  const tools = new Tools();
  const stored = [box("normal")];
  assert.deepEqual(tools.boxesOf(5, stored), stored);
  tools.edit(5, [...stored, box("pneumonia")]);
  tools.edit(6, []);
  assert.deepEqual(tools.unsavedImages(), [5, 6]);
  assert.equal(tools.boxesOf(5, stored).length, 2);
  tools.taken(5);
  assert.deepEqual(tools.unsavedImages(), [6]);
  assert.equal(tools.boxesOf(5, stored).length, 2, "the edit stays what the image shows");
});
