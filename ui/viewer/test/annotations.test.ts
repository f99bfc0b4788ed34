/** What the viewer writes on the image: the corners' text and the scale bar's round length. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { type CornerFacts, cornerText, scaleBar } from "../src/annotations";

const facts: CornerFacts = {
  slice: { index: 3, count: 120 },
  frame: null,
  window: { center: -600.4, width: 1500 },
  windowName: "Lung",
  voiLut: false,
  inverted: false,
  zoom: 187.6,
  modality: "CT",
  series: "chest axial 1.25 mm",
  map: null,
};

test("the corners give the slice of its count, the named window, the zoom and the series", () => {
  const corners = cornerText(facts);
  assert.deepEqual(corners.topLeft, ["Slice 3/120"]);
  assert.deepEqual(corners.bottomLeft, ["W/L: Lung", "W 1500 L -600"]);
  assert.deepEqual(corners.bottomRight, ["Zoom 188%"]);
  assert.deepEqual(corners.topRight, ["CT · chest axial 1.25 mm"]);
});

test("a dragged window has no preset name; a VOI LUT and an inversion are said; a map is named", () => {
  const corners = cornerText({ ...facts, slice: null, frame: { index: 2, count: 40 }, window: null, windowName: null, voiLut: true, inverted: true, series: "", map: "Grad-CAM: pneumonia" });
  assert.deepEqual(corners.topLeft, ["Frame 2/40"]);
  assert.deepEqual(corners.bottomLeft, ["VOI LUT", "inverted"]);
  assert.deepEqual(corners.topRight, ["CT", "Grad-CAM: pneumonia"]);
});

test("the scale bar takes the longest round length in mm that fits", () => {
  // 0.7 mm pixels shown at 1 screen pixel each: 1.43 px a mm; a quarter of a 600 px viewport is 150 px.
  assert.deepEqual(scaleBar(1 / 0.7, 150), { mm: 100, pixels: 100 / 0.7 });
  // Zoomed in 8 times: 11.4 px a mm, so 10 mm (114 px) fits and 20 mm does not.
  assert.equal(scaleBar(8 / 0.7, 150)?.mm, 10);
  // Far out: even 500 mm is longer than needed, 200 mm fits.
  assert.equal(scaleBar(0.5, 150)?.mm, 200);
});

test("no scale bar without a pixel spacing, or when no round length is long enough to read", () => {
  assert.equal(scaleBar(null, 150), null);
  assert.equal(scaleBar(Number.NaN, 150), null);
  assert.equal(scaleBar(0.01, 150), null); // 500 mm is 5 px
  assert.equal(scaleBar(200, 150), null); // 1 mm is 200 px: longer than the room
});
