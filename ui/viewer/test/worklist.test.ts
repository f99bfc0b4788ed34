/** The worklist in the browser: "next" from the server's links, Back within the list on screen. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { END, Worklist } from "../src/worklist";

test("next follows the server's order and skips images labelled here", () => {
  const list = new Worklist();
  list.update("todo|None|DX", [10, 11, 12], false);
  assert.equal(list.next(10, true), 11);
  list.markLabelled(11);
  assert.equal(list.next(10, true), 12);
  assert.equal(list.next(10, false), 11);
  assert.equal(list.next(12, true), null, "the link after 12 has not arrived yet");
  list.update("todo|None|DX", [12, 13], true);
  assert.equal(list.next(12, true), 13);
  assert.equal(list.next(13, true), END, "a complete order ends the list");
  assert.deepEqual(list.upcoming(10, 5), [11, 12, 13]);
});

test("back goes through the images of this list, not those seen under an earlier filter", () => {
  const list = new Worklist();
  list.update("todo|None|None", [1, 2, 3], false);
  list.leave(1);
  list.leave(2);
  assert.equal(list.back(), 2);
  list.leave(2);
  // The reader picks Modality = DX: a new list. CR image 2 (seen before) is not on it.
  list.update("todo|None|DX", [7, 8], false);
  assert.equal(list.back(), undefined, "Back stays inside the list on screen");
  assert.equal(list.next(2, true), null, "and the old list's links are gone");
  list.leave(7);
  assert.equal(list.back(), 7);
  assert.equal(list.back(), undefined);
});

test("the same image left twice in a row is one step back", () => {
  const list = new Worklist();
  list.update("all|None|None", [1, 2], false);
  list.leave(1);
  list.leave(1);
  assert.equal(list.back(), 1);
  assert.equal(list.back(), undefined);
});
