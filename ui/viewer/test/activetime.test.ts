/** The active time a read reports: hidden-tab time and idle gaps over a minute are not counted. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { ActiveClock, IDLE_LIMIT_MS } from "../src/activetime";

const s = 1000;

test("time between inputs counts while the tab is visible", () => {
  const clock = new ActiveClock(0);
  clock.input(10 * s);
  clock.input(25 * s);
  assert.equal(clock.seconds(30 * s), 30);
});

test("a gap between inputs longer than the idle limit is not counted at all", () => {
  const clock = new ActiveClock(0);
  clock.input(10 * s);
  clock.input(10 * s + IDLE_LIMIT_MS + 1); // away: the whole gap goes
  assert.equal(clock.seconds(10 * s + IDLE_LIMIT_MS + 1 + 5 * s), 15);
  // A gap of exactly the limit still counts.
  const edge = new ActiveClock(0);
  assert.equal(edge.seconds(IDLE_LIMIT_MS), IDLE_LIMIT_MS / 1000);
  // A save after a long idle gap counts nothing of it.
  assert.equal(new ActiveClock(0).seconds(IDLE_LIMIT_MS + 1), 0);
});

test("hidden time is not counted, the time before hiding and after showing is", () => {
  const clock = new ActiveClock(0);
  clock.input(20 * s);
  clock.visibility(false, 30 * s);
  clock.visibility(true, 330 * s); // five minutes in another tab
  clock.input(335 * s);
  assert.equal(clock.seconds(340 * s), 30 + 10);
  // While hidden the count stands still.
  const hidden = new ActiveClock(0);
  hidden.visibility(false, 5 * s);
  assert.equal(hidden.seconds(50 * s), 5);
});

test("a new image starts the count again; events stamped before the last input change nothing", () => {
  const clock = new ActiveClock(0);
  clock.input(40 * s);
  clock.restart(50 * s);
  clock.input(45 * s);
  assert.equal(clock.seconds(53 * s), 3);
});
