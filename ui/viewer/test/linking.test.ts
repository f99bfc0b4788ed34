/** A case's viewports moving together: Tab, linked scroll by slice position, the W/L link. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { layoutOf, linkedSlices, nearestSliceIndex, nextViewport, windowTargets } from "../src/linking";

test("Tab moves the active viewport round the grid, Shift+Tab back", () => {
  assert.equal(nextViewport(0, 4), 1);
  assert.equal(nextViewport(3, 4), 0, "past the last viewport: the first");
  assert.equal(nextViewport(0, 4, true), 3, "Shift+Tab from the first: the last");
  assert.equal(nextViewport(0, 1), 0, "one viewport stays active");
});

test("the nearest slice by position, ignoring slices without one", () => {
  assert.equal(nearestSliceIndex([0, 5, 10, 15], 11), 2);
  assert.equal(nearestSliceIndex([0, 5, 10, 15], 12.6), 3);
  assert.equal(nearestSliceIndex([null, 20, null], 0), 1);
  assert.equal(nearestSliceIndex([null, null], 3), -1);
  // A series stored head to foot (positions falling) is matched by position, not by index.
  assert.equal(nearestSliceIndex([40, 30, 20, 10, 0], 12), 3);
});

test("scrolling one series moves those sharing its frame of reference to the nearest position", () => {
  // Four MR series of one session: T1 every 5 mm, T2 every 2.5 mm (twice the slices), FLAIR from the
  // far end, and a DWI of another frame of reference (another session's coordinates).
  const series = [
    { frameOfReference: "1.2.3", positions: [0, 5, 10, 15, 20], index: 3 },
    { frameOfReference: "1.2.3", positions: [0, 2.5, 5, 7.5, 10, 12.5, 15, 17.5, 20], index: 0 },
    { frameOfReference: "1.2.3", positions: [20, 15, 10, 5, 0], index: 0 },
    { frameOfReference: "9.9.9", positions: [0, 5, 10, 15, 20], index: 0 },
  ];
  const moves = linkedSlices(series, 0); // T1 shows 15 mm
  assert.equal(moves.get(1), 6, "T2's slice at 15 mm");
  assert.equal(moves.get(2), 1, "FLAIR's slice at 15 mm, counted from its other end");
  assert.equal(moves.has(3), false, "another frame of reference does not follow");
  assert.equal(moves.has(0), false, "the source is not moved");
});

test("no link without a frame of reference or a position on the source slice", () => {
  const unknown = [
    { frameOfReference: null, positions: [0, 5], index: 1 },
    { frameOfReference: null, positions: [0, 5], index: 0 },
  ];
  assert.equal(linkedSlices(unknown, 0).size, 0, "two series without a frame of reference are not assumed aligned");
  const noPosition = [
    { frameOfReference: "1.2", positions: [null, null], index: 1 },
    { frameOfReference: "1.2", positions: [0, 5], index: 0 },
  ];
  assert.equal(linkedSlices(noPosition, 0).size, 0);
});

test("a window change reaches one viewport, or every greyscale one when linked", () => {
  const colour = [false, false, true, false];
  assert.deepEqual(windowTargets(colour, 1, false), [1]);
  assert.deepEqual(windowTargets(colour, 1, true), [0, 1, 3], "the colour viewport has no window");
});

test("layouts by name, and a fallback that holds the viewports", () => {
  assert.deepEqual(layoutOf("2x2", 4), { rows: 2, columns: 2 });
  assert.deepEqual(layoutOf("1x3", 3), { rows: 1, columns: 3 });
  assert.deepEqual(layoutOf("3x3", 2), { rows: 1, columns: 2 });
});
