/**
 * Frames over HTTP (ui/frame_route.py): the frames wanted, in batches, several requests at once, into
 * the shared frame cache, without a run of the page per request. A viewer whose frame URL is refused
 * (the token expired, the sign-in ended, no such route) falls back to asking through the runs.
 */

import { decodeBytes, type Frame, type FrameMeta } from "./frames";

/** One entry of a batch: a frame's facts and its payload's length, or why it is missing. */
export type BatchEntry = (FrameMeta & { bytes: number }) | { key: string; missing: string };

/** A batch as frame_route.py sends it: a 4-byte little-endian length, that much JSON, the frames' values. */
export function parseBatch(buffer: ArrayBuffer): { frames: { meta: FrameMeta; payload: Uint8Array }[]; missing: Map<string, string> } {
  const view = new DataView(buffer);
  if (buffer.byteLength < 4) throw new Error("a frame batch too short to read");
  const headerLength = view.getUint32(0, true);
  if (4 + headerLength > buffer.byteLength) throw new Error("a frame batch cut short");
  const entries = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, headerLength))) as BatchEntry[];
  const frames: { meta: FrameMeta; payload: Uint8Array }[] = [];
  const missing = new Map<string, string>();
  let offset = 4 + headerLength;
  for (const entry of entries) {
    if ("missing" in entry) {
      missing.set(entry.key, entry.missing);
      continue;
    }
    if (offset + entry.bytes > buffer.byteLength) throw new Error(`frame ${entry.key} cut short`);
    frames.push({ meta: entry, payload: new Uint8Array(buffer, offset, entry.bytes) });
    offset += entry.bytes;
  }
  return { frames, missing };
}

export interface FetcherEvents {
  frame(frame: Frame): void;
  missing(key: string, reason: string): void;
  /** A batch arrived (after its frames): paint, and ask for more. */
  batch(): void;
  /** The URL no longer serves this viewer: ask through the runs from now on. */
  broken(reason: string): void;
}

export class FrameFetcher {
  private readonly inflight = new Set<string>();
  private requests = 0;
  broken: string | null = null;

  constructor(
    private url: string,
    private readonly events: FetcherEvents,
    private readonly parallel = 4,
    private readonly batchSize = 4,
    private readonly fetchImpl: typeof fetch = (input, init) => fetch(input, init),
  ) {}

  /** The server renews the URL with each run (a new token after the old one expired). */
  setUrl(url: string): void {
    if (url !== this.url) this.broken = null;
    this.url = url;
  }

  /** Asked for and not arrived yet. */
  fetching(key: string): boolean {
    return this.inflight.has(key);
  }

  get requestsInFlight(): number {
    return this.requests;
  }

  /**
   * Fetch the first of `wanted` (most urgent first) not already on their way, up to `parallel`
   * requests. The first `urgent` keys (the frames on screen) do not wait behind a full house of
   * prefetching requests: they go in one more.
   */
  pump(wanted: string[], urgent = 0): void {
    const queue = wanted.filter((key) => !this.inflight.has(key));
    const onScreen = wanted.slice(0, urgent).filter((key) => !this.inflight.has(key));
    if (this.broken === null && onScreen.length > 0 && this.requests >= this.parallel && this.requests <= this.parallel) {
      for (const key of onScreen) {
        this.inflight.add(key);
        queue.splice(queue.indexOf(key), 1);
      }
      this.requests += 1;
      void this.request(onScreen);
    }
    while (this.broken === null && this.requests < this.parallel && queue.length > 0) {
      const keys = queue.splice(0, this.batchSize);
      for (const key of keys) this.inflight.add(key);
      this.requests += 1;
      void this.request(keys);
    }
  }

  private async request(keys: string[]): Promise<void> {
    try {
      const response = await this.fetchImpl(`${this.url}?k=${encodeURIComponent(keys.join(","))}`, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) {
        let reason = `frames refused (${response.status})`;
        try {
          reason = ((await response.json()) as { error?: string }).error ?? reason;
        } catch {
          // not JSON: the status says it
        }
        this.broken = reason;
        this.events.broken(reason);
        return;
      }
      const { frames, missing } = parseBatch(await response.arrayBuffer());
      for (const [key, reason] of missing) this.events.missing(key, reason);
      for (const item of frames) {
        try {
          this.events.frame(decodeBytes(item.meta, item.payload));
        } catch (error) {
          this.events.missing(item.meta.key, String(error));
        }
      }
    } catch (error) {
      this.broken = String(error);
      this.events.broken(this.broken);
    } finally {
      for (const key of keys) this.inflight.delete(key);
      this.requests -= 1;
      if (this.broken === null) this.events.batch();
    }
  }
}
