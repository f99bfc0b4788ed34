/**
 * What the left mouse button does (window, pan, box, ruler) and the boxes drawn but not saved.
 *
 * A tool belongs to the image it was chosen on: the next image opens with the window tool, so a
 * left-drag there windows instead of drawing. Esc leaves a tool. The box tool draws boxes of a class
 * the reader chose (B cycles through the classes): none at first, never the schema's first class
 * unasked, and the last one chosen after that. Boxes drawn, moved, resized or deleted are unsaved
 * until a save of that image takes them (a class key or S): the viewer says so.
 */

import type { Box } from "./types";

export type Tool = "window" | "pan" | "box" | "ruler";

export class Tools {
  tool: Tool = "window";
  /** The class new boxes get; "" until the reader chooses one. */
  boxClass = "";
  private readonly drafts = new Map<number, Box[]>();
  private readonly unsaved = new Set<number>();

  /** B: the box tool, or the next box class when already in it. */
  boxKey(classes: readonly string[]): void {
    if (this.tool !== "box") {
      this.tool = "box";
      return;
    }
    const index = classes.indexOf(this.boxClass); // -1 while none is chosen: the first comes next
    this.boxClass = classes[(index + 1) % Math.max(classes.length, 1)] ?? "";
  }

  /** M: the ruler, or back to windowing. */
  rulerKey(): void {
    this.tool = this.tool === "ruler" ? "window" : "ruler";
  }

  /** Esc: back to windowing; whether a tool was left. */
  escape(): boolean {
    const left = this.tool !== "window";
    this.tool = "window";
    return left;
  }

  /** Another image opens: it starts with windowing (its unsaved boxes are kept). */
  imageChanged(): void {
    this.tool = "window";
  }

  /** A new box can be drawn: the box tool with a class chosen. */
  canDraw(): boolean {
    return this.tool === "box" && this.boxClass !== "";
  }

  /** The boxes on an image: the reader's edits, else the stored ones. */
  boxesOf(imageId: number, stored: readonly Box[]): Box[] {
    return this.drafts.get(imageId) ?? [...stored];
  }

  /** The reader changed the boxes of an image (drawn, moved, resized, deleted): not saved yet. */
  edit(imageId: number, boxes: Box[]): void {
    this.drafts.set(imageId, boxes);
    this.unsaved.add(imageId);
  }

  /** A save of the image took its boxes (the server may still be saving it). */
  taken(imageId: number): void {
    this.unsaved.delete(imageId);
  }

  /** Images whose box edits no save has taken yet. */
  unsavedImages(): number[] {
    return [...this.unsaved];
  }
}
