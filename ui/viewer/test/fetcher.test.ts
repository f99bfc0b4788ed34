/** Frames over HTTP: a batch read back as frame_route.py writes it; requests in parallel, in batches, the most urgent first. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { FrameFetcher, parseBatch } from "../src/fetcher";
import type { Frame } from "../src/frames";

/** A batch as ui/frame_route.py sends it: 2x1 int16 frames whose values are the image id. */
function batch(keys: string[], missing: Record<string, string> = {}): ArrayBuffer {
  const payloads: Buffer[] = [];
  const entries = keys.map((key) => {
    if (key in missing) return { key, missing: missing[key] };
    const imageId = Number(key.split(":")[0]);
    const payload = Buffer.from(new Int16Array([imageId, -imageId]).buffer);
    payloads.push(payload);
    return { key, dtype: "int16", width: 2, height: 1, channels: 1, bytes: payload.length };
  });
  const header = Buffer.from(JSON.stringify(entries));
  const length = Buffer.alloc(4);
  length.writeUInt32LE(header.length);
  const body = Buffer.concat([length, header, ...payloads]);
  return body.buffer.slice(body.byteOffset, body.byteOffset + body.length);
}

test("a batch gives each frame's payload and each missing frame's reason", () => {
  const { frames, missing } = parseBatch(batch(["1:0", "2:0", "3:0"], { "2:0": "not available to you" }));
  assert.deepEqual(frames.map((item) => item.meta.key), ["1:0", "3:0"]);
  assert.equal(missing.get("2:0"), "not available to you");
  assert.throws(() => parseBatch(batch(["1:0"]).slice(0, 30)), /cut short/);
});

test("the fetcher keeps `parallel` requests of `batchSize` frames going, most urgent first, and decodes them", async () => {
  const asked: string[][] = [];
  const answers: (() => void)[] = [];
  const fakeFetch = ((url: string) => {
    const keys = decodeURIComponent(url.split("?k=")[1] ?? "").split(",");
    asked.push(keys);
    return new Promise<Response>((resolve) => answers.push(() => resolve(new Response(batch(keys)))));
  }) as typeof fetch;
  const frames: Frame[] = [];
  let batches = 0;
  const fetcher = new FrameFetcher(
    "/medreview/frames/t",
    { frame: (frame) => frames.push(frame), missing: () => {}, batch: () => (batches += 1), broken: () => assert.fail("not broken") },
    2,
    3,
    fakeFetch,
  );
  const wanted = ["1:0", "2:0", "3:0", "4:0", "5:0", "6:0", "7:0"];
  fetcher.pump(wanted);
  assert.deepEqual(asked, [["1:0", "2:0", "3:0"], ["4:0", "5:0", "6:0"]]);
  fetcher.pump(wanted); // nothing twice, nothing beyond two requests
  assert.equal(asked.length, 2);
  assert.ok(fetcher.fetching("5:0") && !fetcher.fetching("7:0"));
  // The frame on screen moved on (a scroll, a new case): it goes at once, in one request more.
  fetcher.pump(["9:0", "7:0"], 1);
  assert.deepEqual(asked[2], ["9:0"]);
  fetcher.pump(["10:0"], 1);
  assert.equal(asked.length, 3, "one request more, not one more each time");
  for (const answer of answers) answer();
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(batches, 3);
  assert.equal(fetcher.requestsInFlight, 0);
  const first = frames.find((frame) => frame.key === "1:0");
  assert.deepEqual([...(first?.values ?? [])], [1, -1]);
  assert.equal(frames.length, 7);
});

test("a refused URL stops the fetcher and says why, until the server gives it a new one", async () => {
  let reason = "";
  const refused = (() => Promise.resolve(new Response(JSON.stringify({ error: "log in again" }), { status: 403 }))) as typeof fetch;
  const fetcher = new FrameFetcher("/a", { frame: () => {}, missing: () => {}, batch: () => {}, broken: (why) => (reason = why) }, 4, 4, refused);
  fetcher.pump(["1:0"]);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(reason, "log in again");
  assert.equal(fetcher.broken, "log in again");
  fetcher.setUrl("/b");
  assert.equal(fetcher.broken, null);
});
