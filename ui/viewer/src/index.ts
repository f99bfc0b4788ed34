/**
 * medreview's viewer as a Streamlit Components v2 component (no iframe). Streamlit calls the default
 * export on every app run with that run's data; the Viewer of a mount lives across runs.
 */

import type { FrontendRendererArgs } from "@streamlit/component-v2-lib";
import { CaseViewer } from "./caseviewer";
import { Follower } from "./follower";
import { STYLES } from "./styles";
import type { CaseData, FollowerData, SignedOutData, SyncState, ViewerData } from "./types";
import { Viewer } from "./viewer";

const viewers = new WeakMap<object, Viewer>();
const followers = new WeakMap<object, Follower>();
const cases = new WeakMap<object, CaseViewer>();

export default function viewerComponent(
  args: FrontendRendererArgs<SyncState, ViewerData | SignedOutData | FollowerData | CaseData>,
): () => void {
  const { parentElement, data, setStateValue } = args;
  if ("follows" in data) {
    let follower = followers.get(parentElement);
    if (!follower) {
      follower = new Follower();
      followers.set(parentElement, follower);
    }
    follower.update(data.follows, (name, value) => setStateValue(name as keyof SyncState, value as SyncState[keyof SyncState]));
    return () => {
      followers.get(parentElement)?.destroy();
      followers.delete(parentElement);
    };
  }
  const signedOutCase = "signedOut" in data ? cases.get(parentElement) : undefined;
  if (signedOutCase && "signedOut" in data) {
    // The case viewer's sign-in ended: it is signed out for good, its reads unsent.
    signedOutCase.signOut(data.signedOut);
    return () => {
      cases.get(parentElement)?.destroy();
      cases.delete(parentElement);
    };
  }
  if ("case" in data) {
    // A case in a grid of viewports (caseviewer.ts); the worklist viewer below keeps one image.
    let caseViewer = cases.get(parentElement);
    if (!caseViewer) {
      const style = document.createElement("style");
      style.textContent = STYLES;
      parentElement.appendChild(style);
      caseViewer = new CaseViewer(parentElement);
      cases.set(parentElement, caseViewer);
    }
    caseViewer.update(data, (name, value) => setStateValue(name as keyof SyncState, value as SyncState[keyof SyncState]));
    return () => {
      cases.get(parentElement)?.destroy();
      cases.delete(parentElement);
    };
  }
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
