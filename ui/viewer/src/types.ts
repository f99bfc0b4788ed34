/** The data Python sends the viewer and the state the viewer sends back (ui/viewer.py builds both). */

import type { VoiLut, Window } from "./windowing";

export interface NamedWindow extends Window {
  name: string;
}

/** A bounding box in image pixels (top-left origin), on one frame. */
export interface Box {
  label: string;
  x: number;
  y: number;
  width: number;
  height: number;
  frame: number;
}

export interface ImageInfo {
  id: number;
  name: string;
  caption: string;
  modality: string;
  photometric: string;
  color: boolean;
  frames: number;
  width: number;
  height: number;
  windows: NamedWindow[];
  defaultWindow: Window | null;
  voiLut: VoiLut | null;
  /** (row, column) mm between pixel centres; null when unknown. */
  pixelSpacing: [number, number] | null;
  /** The patient direction at each edge ("L", "H", "LP"...); null when the image does not say. */
  orientation: { left: string; right: string; top: string; bottom: string } | null;
  /** The series as described at import from coded values and geometry (never free text). */
  seriesDescription?: string;
  /** Ordered image ids of the image's series (a stack), or null for a lone image. */
  series: number[] | null;
  /** The signed-in reader's own read (never another reader's, for blinding). */
  label: string | null;
  labels: string[];
  boxes: Box[];
  /** Whether the reader has a read of this image (a read may be boxes alone, where allowed). */
  read: boolean;
  /** What the project's assist mode lets the reader see of the model's call now (assist.py); null: nothing. */
  model?: ModelCall | null;
}

/** The active model's call on an image as the Label page may show it (medreview/reading/assist.py). */
export interface ModelCall {
  mode: "aided_after" | "aided";
  version: number;
  /** The class called; null outside the model's training data (`reason` says why). */
  label: string | null;
  probability: number | null;
  outside: boolean;
  reason: string | null;
  /** A suggestion Enter accepts (aided mode, before the reader's first read of the image). */
  suggest: boolean;
}

/** One frame's modality values (see medreview/imaging/transfer.py). key: "<imageId>:<frame>". */
export interface PixelRow {
  key: string;
  dtype: "int16" | "uint16" | "float32" | "uint8";
  width: number;
  height: number;
  channels: number;
  /** base64 of zlib-deflated little-endian values. */
  data: string;
}

/** A heat map over one frame: 0..255 intensities, coloured in the browser with `colormap`. */
export interface OverlayRow {
  key: string;
  width: number;
  height: number;
  data: string;
  label: string;
}

export interface ViewerData {
  mode: "label" | "view";
  /** The image the server opened; the viewer moves there when `jump` grows. */
  position: number | null;
  jump: number;
  /** Changes when the list's filter or order changes: earlier "next" links are forgotten. */
  listVersion: string;
  /** The worklist from `position` on: [position, next, next-but-one, ...]. */
  order: number[];
  images: ImageInfo[];
  classes: string[];
  multi: boolean;
  boxesEnabled: boolean;
  /** Whether a read may be boxes without a class (the project's setting). */
  boxOnly: boolean;
  pixels: PixelRow[];
  missing: Record<string, string>;
  overlays: OverlayRow[];
  /** 256 RGB triplets (inferno): the colour of each overlay intensity. */
  colormap: number[][];
  acked: number[];
  failed: Record<string, string>;
  /** Seconds an image must be on screen before a class key counts (a bounce guard). */
  minSecondsOnScreen: number;
  /** Tallest the viewer may be, in CSS pixels (0: fill the window below its top). */
  maxHeight: number;
  /** CSS pixels kept free under the viewer for the page's own controls (a comment box's title). */
  below?: number;
  /** Two viewports side by side sharing window, zoom, pan and slice: the image, and the image under its map. */
  split?: boolean;
  /**
   * The signed-in session, as the viewer may know it (ui/viewer.py sign_in_id: not the login token):
   * the reads it keeps in the tab's storage are this session's, sent again by this session only.
   */
  owner: string;
  /**
   * Past the list's last image (label mode, `position` null): how many images of the list are still
   * to do for the reader, and the first of them (null when none).
   */
  left: { count: number; first: number | null } | null;
  /**
   * Where the frames are fetched over HTTP, in parallel batches, without a run of the page per
   * request (ui/frame_route.py); null: asked for in the reports (`want`).
   */
  frameUrl?: string | null;
  /**
   * View mode: where to send the active reading seconds of the image on screen (activetime.ts) as a
   * beacon when the reader leaves it for the page's own controls (a reader study's rating form), so
   * the rating gets them without a run of the page; absent: not sent.
   */
  activeUrl?: string | null;
}

/** The Label worklist's follower (follower.ts): the key of the viewer it follows. */
export interface FollowerData {
  follows: string;
}

/**
 * What a mounted viewer gets instead once its sign-in has ended (a logout here or in another tab, a
 * deactivation; ui/viewer.py signed_out_viewer): the reason, and nothing else. The viewer drops the
 * pixels it holds, sends nothing more, and keeps the reads it could not save on screen as not saved.
 */
export interface SignedOutData {
  signedOut: string;
}

/** A read for the server to save; kept until the server acknowledges it. */
export interface PendingSave {
  seq: number;
  imageId: number;
  label: string | null;
  labels: string[] | null;
  boxes: Box[] | null;
  /** Seconds the image was on screen before the key (reader statistics). */
  seconds: number;
  unsure: boolean;
  /** The sign-in that made it (ViewerData.owner): the server saves it for that sign-in only. */
  owner: string;
}

export interface SyncState {
  [key: string]: unknown;
  position: number | null;
  want: string[];
  pending: PendingSave[];
  tick: number;
  /** View mode: the image, frame and window on screen. */
  view: { imageId: number; frame: number; window: Window | null } | null;
}

/** One viewport of a case (ui/viewer.py case_viewer): a series, in reading order. */
export interface ViewportSpec {
  /** The series' image ids in slice order. */
  images: number[];
  /** Each image's position along the slice normal in mm (null where unknown), as `images`. */
  positions: (number | null)[];
  /** FrameOfReferenceUID as the store keeps it (remapped); null when unknown. */
  frameOfReference: string | null;
  /** A window preset to open with, by name ("Lung"); null: the image's own first window. */
  preset: string | null;
  /** Shown mirrored left to right (a mammogram's left views face the right ones). */
  mirror: boolean;
  /** Set for a prior study's series: what the corner says ("Prior · 2024-03-01"). */
  prior: string | null;
  /** No images (`images` empty), and why: a protocol's viewport no series of the study filled. */
  empty?: string | null;
}

/** A case opened in a grid of viewports (the component's `case` data; viewer.ts keeps the worklist mode). */
export interface CaseData {
  case: {
    /** The case the reads name ("study:12"). */
    id: string;
    /** "1x1", "1x2", "1x3" or "2x2". */
    layout: string;
    viewports: ViewportSpec[];
  };
  /**
   * The case that opens after a class key reads this one (the worklist's next), hung as `case` is:
   * the viewer opens it at once from the frames it prefetched, while the read is saved (null: none).
   */
  next?: CaseData["case"] | null;
  /** Facts of the first image of each viewport's series (a series shares them), and any asked. */
  images: ImageInfo[];
  pixels: PixelRow[];
  missing: Record<string, string>;
  /** Label classes: keys 1-9 label the case (empty: a viewer only). */
  classes: string[];
  owner: string;
  acked: number[];
  failed: Record<string, string>;
  minSecondsOnScreen: number;
  maxHeight: number;
  below?: number;
  /**
   * Where the frames are fetched over HTTP, in parallel batches, without a run of the page per
   * request (ui/frame_route.py); null: asked for through the runs (`want`).
   */
  frameUrl?: string | null;
}
