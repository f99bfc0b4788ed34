/**
 * The worklist as the browser knows it: the "next" links the server sent (so a class key moves on
 * without a round trip), the images the reader went through (Back), and those labelled here.
 *
 * Everything belongs to one list: the server names it (`listVersion`: the page's filters) and a new
 * name forgets the links and the way back, so Back never leaves the list on screen for an image
 * seen under an earlier filter (where "next" would lead nowhere).
 */

/** `next` past the list's last image. */
export const END = -1;

export class Worklist {
  private version = "";
  private readonly nextOf = new Map<number, number>();
  private readonly history: number[] = [];
  private readonly labelled = new Set<number>();

  get listVersion(): string {
    return this.version;
  }

  /**
   * The list from some image on, as the server sent it: `order` is [image, next, next-but-one, ...];
   * `complete` when it reaches the list's end (the image after its last is END).
   */
  update(listVersion: string, order: readonly number[], complete: boolean): void {
    if (listVersion !== this.version) {
      this.version = listVersion;
      this.nextOf.clear();
      this.history.length = 0;
    }
    for (let index = 0; index + 1 < order.length; index++) this.nextOf.set(order[index] as number, order[index + 1] as number);
    const last = order[order.length - 1];
    if (last !== undefined && complete) this.nextOf.set(last, END);
  }

  /**
   * The image after `imageId` (those labelled here skipped when `skipLabelled`), END past the last,
   * null while the link has not arrived from the server.
   */
  next(imageId: number, skipLabelled: boolean): number | null {
    let candidate = this.nextOf.get(imageId);
    const seen = new Set<number>();
    while (candidate !== undefined && candidate !== END && !seen.has(candidate)) {
      seen.add(candidate);
      if (!(skipLabelled && this.labelled.has(candidate))) return candidate;
      candidate = this.nextOf.get(candidate);
    }
    return candidate === END ? END : null;
  }

  /** Up to `count` images after `imageId` in list order (what to prefetch). */
  upcoming(imageId: number | null, count: number): number[] {
    const images: number[] = [];
    let next = imageId === null ? undefined : this.nextOf.get(imageId);
    while (images.length < count && next !== undefined && next !== END && !images.includes(next)) {
      images.push(next);
      next = this.nextOf.get(next);
    }
    return images;
  }

  /** The reader leaves `imageId` for another image of this list: Back comes here. */
  leave(imageId: number): void {
    if (this.history[this.history.length - 1] !== imageId) this.history.push(imageId);
  }

  /** The image before, on this list (undefined when there is none). */
  back(): number | undefined {
    return this.history.pop();
  }

  markLabelled(imageId: number): void {
    this.labelled.add(imageId);
  }

  isLabelled(imageId: number): boolean {
    return this.labelled.has(imageId);
  }
}
