/**
 * medreview's viewer as a Streamlit Components v2 component (no iframe). Streamlit calls the default
 * export on every app run with that run's data; the Viewer of a mount lives across runs.
 */

import type { FrontendRendererArgs } from "@streamlit/component-v2-lib";
import { STYLES } from "./styles";
import type { SignedOutData, SyncState, ViewerData } from "./types";
import { Viewer } from "./viewer";

const viewers = new WeakMap<object, Viewer>();

export default function viewerComponent(args: FrontendRendererArgs<SyncState, ViewerData | SignedOutData>): () => void {
  const { parentElement, data, setStateValue } = args;
  let viewer = viewers.get(parentElement);
  if (!viewer) {
    const style = document.createElement("style");
    style.textContent = STYLES;
    parentElement.appendChild(style);
    viewer = new Viewer(parentElement);
    viewers.set(parentElement, viewer);
  }
  viewer.update(data, (name, value) => setStateValue(name as keyof SyncState, value as SyncState[keyof SyncState]));
  return () => {
    viewers.get(parentElement)?.destroy();
    viewers.delete(parentElement);
  };
}
