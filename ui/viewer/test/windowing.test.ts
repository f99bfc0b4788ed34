/**
 * The browser's windowing gives the server's numbers: each case of tests/imaging/windowing_cases.json
 * (which tests/imaging/test_windowing_cases.py checks against medreview/imaging/display.py).
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { type DisplayParams, displayValue, renderGrey, type VoiLut, type Window } from "../src/windowing";

interface Case {
  name: string;
  values: number[];
  window: Window | null;
  voiLut: VoiLut | null;
  monochrome1: boolean;
  expected: number[];
}

const casesPath = new URL("../../../tests/imaging/windowing_cases.json", import.meta.url);
const { cases } = JSON.parse(readFileSync(casesPath, "utf-8")) as { cases: Case[] };

function params(item: Case): DisplayParams {
  return { window: item.window, voiLut: item.voiLut, monochrome1: item.monochrome1, invert: false };
}

function rendered(values: Float32Array | Int16Array | Uint16Array, item: Case): number[] {
  const rgba = new Uint8ClampedArray(values.length * 4);
  renderGrey(values, rgba, params(item));
  return Array.from({ length: values.length }, (_, pixel) => rgba[pixel * 4] as number);
}

test("there are cases to check", () => assert.ok(cases.length >= 10));

for (const item of cases) {
  test(`${item.name}: each value as the server shows it`, () => {
    assert.deepEqual(item.values.map((value) => displayValue(Math.fround(value), params(item))), item.expected);
  });
  test(`${item.name}: a whole frame through the renderer`, () => {
    assert.deepEqual(rendered(Float32Array.from(item.values), item), item.expected);
    const integers = item.values.every((value) => Number.isInteger(value));
    if (integers && item.values.every((value) => value >= -32768 && value <= 32767)) {
      assert.deepEqual(rendered(Int16Array.from(item.values), item), item.expected); // the lookup-table path
    }
    if (integers && item.values.every((value) => value >= 0 && value <= 65535)) {
      assert.deepEqual(rendered(Uint16Array.from(item.values), item), item.expected);
    }
  });
}

test("invert (I) flips what is shown", () => {
  const item = cases[0] as Case;
  const inverted = item.values.map((value) => displayValue(value, { ...params(item), invert: true }));
  assert.deepEqual(inverted, item.expected.map((value) => 255 - value));
});
