/** The viewer's performance marks: bounded in the browser, every one seen by an observer. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { PerformanceObserver } from "node:perf_hooks";

import { KEY_MARK, mark, MARKS_KEPT, PAINT_MARK } from "../src/marks";

test("a long scroll leaves at most MARKS_KEPT marks, and an observer sees them all", async () => {
  const seen: string[] = [];
  const observer = new PerformanceObserver((list) => seen.push(...list.getEntries().map((entry) => entry.name)));
  observer.observe({ entryTypes: ["mark"] });
  for (let paint = 0; paint < 2270; paint++) mark(PAINT_MARK, { imageId: 1, frame: paint });
  mark(KEY_MARK, { imageId: 1 });
  await new Promise((resolve) => setTimeout(resolve, 50));
  observer.disconnect();
  const held = performance.getEntriesByName(PAINT_MARK).length + performance.getEntriesByName(KEY_MARK).length;
  assert.ok(held <= MARKS_KEPT, `${held} marks held`);
  assert.equal(seen.filter((name) => name === PAINT_MARK).length, 2270);
  assert.equal(seen.filter((name) => name === KEY_MARK).length, 1);
  assert.equal(performance.getEntriesByName(KEY_MARK).length, 1, "the newest mark is held");
});
