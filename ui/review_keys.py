"""The Review page's keyboard: a tiny Components v2 element (inline JavaScript, no iframe, zero
height) that listens for the review keys anywhere on the page and reports them to the script.

Keys: A approve, R reject, S send back (focuses the open read's comment box, found by its
placeholder, :func:`comment_placeholder`; keys typed before the page has drawn it are held and put
in it; Enter sends the read back with what was typed, Escape leaves the box), J or ArrowDown the
next row of the queue, K or ArrowUp the previous one (the arrows only where the viewer does not
need them: ``arrows`` False on a case of several slices, which they scroll), Enter opens the
highlighted row. No key fires while the focus is in a text box, a select or an open combobox, nor
with Ctrl, Alt or Meta held.

The listener sits on ``window`` in the capture phase, as the viewer's does: the viewer stops the
propagation of the keys it uses (A is its "actual size", R its reset, the arrows its slices), which
keeps them from listeners on ``document`` but not from another listener on ``window``.

Delivery: one press at a time. The element reports a press as its ``pressed`` state
({"mount", "seq", "action", "annotation", "comment"}), ``annotation`` being the read open on screen
when the press is sent; it sends the next press only once the script has acknowledged the last one
(``ack`` in the data it is given: the mount and seq last handled), so presses made while the page
reruns queue up in the browser instead of replacing each other, and a press is re-sent after a
while without an answer (the script ignores one it has handled). State, not a trigger: a run
interrupted before it handled a press finds the press again in the next run. The page mounts the
element before it draws the rest, so the next press goes while that run draws on.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

__all__ = ["ACTIONS", "acknowledge", "comment_placeholder", "listen", "pressed"]

# What a press asks for (the "action" of the element's state).
ACTIONS = ("approve", "reject", "return", "next", "previous", "open")
_DONE = "review_keys__done"  # session state: {"mount", "seq"} of the last press handled, "handled" (a count)

_JS = """
const NON_TEXT = new Set(["button", "checkbox", "radio", "range", "color", "file", "submit", "reset", "image"]);
function typing(element) {
  if (!element) return false;
  if (element instanceof HTMLTextAreaElement || element instanceof HTMLSelectElement) return true;
  if (element instanceof HTMLInputElement) {
    if (element.getAttribute("role") === "combobox") return element.getAttribute("aria-expanded") === "true";
    return !NON_TEXT.has(element.type);
  }
  return element instanceof HTMLElement && element.isContentEditable;
}
const KEYS = { a: "approve", r: "reject", j: "next", k: "previous" };

export default function (component) {
  const { parentElement, data, setStateValue } = component;
  let keys = parentElement.__reviewKeys;
  if (!keys) {
    // A mount's presses are numbered from 1 under a token of its own: a new mount (a reload) never
    // reuses the number of a press the script has handled.
    const mount = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    keys = { mount, queue: [], inFlight: null, seq: 0, timer: null, marker: document.createElement("span") };
    parentElement.appendChild(keys.marker);  // says how many presses were handled (data-review-handled), for tests
    parentElement.__reviewKeys = keys;
    // The open read's comment box: its placeholder ends with "(read <id>)". A box of another read
    // (the page may still show the last read's while it draws the next) is never the one.
    keys.commentBox = (annotation) => document.querySelector(`input[placeholder$="(read ${annotation})"]`);
    keys.flush = () => {
      if (keys.inFlight !== null || keys.queue.length === 0 || !parentElement.isConnected) return;
      const press = keys.queue.shift();
      keys.seq += 1;
      const { action, comment, annotation } = press;
      keys.inFlight = {
        mount: keys.mount, seq: keys.seq, action, comment: comment ?? "", annotation: annotation ?? keys.data.open,
      };
      keys.send();
    };
    keys.send = () => {
      keys.marker.dataset.reviewSent = `${keys.inFlight.seq}@${keys.mount}`;
      keys.setState("pressed", { ...keys.inFlight, sentAt: Date.now() });
      clearTimeout(keys.timer);
      keys.timer = setTimeout(() => keys.inFlight !== null && keys.send(), 2000);
    };
    // After S: the keys typed go to the open read's comment box, held here until the box is drawn.
    keys.composing = null;
    keys.toBox = () => {
      const composing = keys.composing;
      if (composing === null) return;
      const box = keys.commentBox(composing.annotation);
      if (!box) {
        if (Date.now() - composing.since < 5000) requestAnimationFrame(keys.toBox);
        else keys.composing = null;
        return;
      }
      keys.composing = null;
      box.focus();
      if (composing.typed) {
        // A React input takes a value through the native setter and an input event.
        const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set;
        setter.call(box, box.value + composing.typed);
        box.dispatchEvent(new Event("input", { bubbles: true }));
      }
    };
    keys.onKey = (event) => {
      keys.marker.dataset.reviewLastKey = `${event.key}${parentElement.isConnected ? "" : " (unmounted)"}`;
      if (!parentElement.isConnected || event.altKey || event.metaKey || event.ctrlKey) return;
      const active = document.activeElement;
      if (keys.composing !== null) {
        event.preventDefault();
        event.stopImmediatePropagation();
        if (event.key === "Escape") keys.composing = null;
        else if (event.key === "Enter") {
          keys.queue.push({ action: "return", comment: keys.composing.typed, annotation: keys.composing.annotation });
          keys.composing = null;
          keys.flush();
        } else if (event.key.length === 1) keys.composing.typed += event.key;
        return;
      }
      if (typing(active)) {
        const box = keys.commentBox(keys.data.open);
        if (active !== box) return;
        const annotation = keys.data.open;
        if (event.key === "Enter") {
          keys.queue.push({ action: "return", comment: box.value, annotation });
          // Sent: the next key (an A for the next read) is a decision, not text for a box about to go.
          box.blur();
        } else if (event.key === "Escape") box.blur();
        else return;
        keys.flush();
        return;
      }
      const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
      let action = KEYS[key];
      if (!action && keys.data.arrows && key === "ArrowDown") action = "next";
      if (!action && keys.data.arrows && key === "ArrowUp") action = "previous";
      // Enter on a control of the page (a button, a tab) or in the table is that control's.
      const controls = "button, a, [role=button], [role=tab], [role=option], [data-testid=stDataFrame]";
      const onControl = active && active !== document.body && active.closest(controls);
      if (onControl && (key === "Enter" || key.startsWith("Arrow"))) return;
      if (!action && key === "Enter") action = "open";
      if (key === "s" && keys.data.open !== null && !event.repeat) {
        event.preventDefault();  // the S does not land in the box
        event.stopImmediatePropagation();
        keys.composing = { annotation: keys.data.open, typed: "", since: Date.now() };
        keys.toBox();
        return;
      }
      if (!action) return;
      event.preventDefault();
      event.stopImmediatePropagation();
      if (event.repeat && action !== "next" && action !== "previous") return;  // a held A decides once
      keys.queue.push({ action });
      keys.flush();
    };
    window.addEventListener("keydown", keys.onKey, true);
  }
  keys.data = data;
  keys.setState = setStateValue;
  keys.marker.dataset.reviewHandled = String(data.handled);
  keys.marker.dataset.reviewOpen = String(data.open ?? "");
  const ack = data.ack || {};
  if (keys.inFlight !== null && ack.mount === keys.mount && ack.seq >= keys.inFlight.seq) {
    keys.inFlight = null;
    clearTimeout(keys.timer);
  }
  keys.flush();
  keys.marker.dataset.reviewState = JSON.stringify({
    ack, inFlight: keys.inFlight?.seq ?? null, queued: keys.queue.length, composing: keys.composing !== null,
  });
  return () => {
    window.removeEventListener("keydown", keys.onKey, true);
    clearTimeout(keys.timer);
    delete parentElement.__reviewKeys;
  };
}
"""

_listener = st.components.v2.component("medreview_review_keys", js=_JS)


def pressed(key: str) -> dict[str, Any] | None:
    """The press the element under ``key`` reported that this session has not handled yet
    ({"mount", "seq", "action", "annotation", "comment"}), else None. Read it before mounting the
    element (:func:`listen`), act on it, then :func:`acknowledge` it."""
    state = st.session_state.get(key)
    press = state.get("pressed") if isinstance(state, dict) else None
    if not isinstance(press, dict) or press.get("action") not in ACTIONS:
        return None
    try:
        seq = int(press["seq"])
    except (KeyError, TypeError, ValueError):
        return None
    done = st.session_state.get(_DONE) or {"mount": None, "seq": 0, "handled": 0}
    return press if press.get("mount") != done["mount"] or seq > done["seq"] else None


def acknowledge(press: dict[str, Any]) -> None:
    """Mark ``press`` handled: the element sends the next one once it is given the new ack."""
    done = st.session_state.get(_DONE) or {"handled": 0}
    st.session_state[_DONE] = {"mount": press.get("mount"), "seq": int(press["seq"]), "handled": done["handled"] + 1}


def comment_placeholder(annotation_id: int) -> str:
    """The placeholder of a read's comment box: how S finds the box of the read on screen."""
    return f"What should the reader change? (read {annotation_id})"


def listen(key: str, open_annotation: int | None, arrows: bool) -> None:
    """Mount the listener: ``open_annotation`` is the read on screen (what A, R and S act on; its
    comment box has the :func:`comment_placeholder`), ``arrows`` whether ArrowUp/ArrowDown move
    through the queue (False where the viewer scrolls slices with them)."""
    done = st.session_state.get(_DONE) or {"mount": None, "seq": 0, "handled": 0}
    data = {
        "open": open_annotation,
        "ack": {"mount": done["mount"], "seq": done["seq"]},
        # Presses handled in this session, shown on the element (data-review-handled) for tests.
        "handled": done["handled"],
        "arrows": arrows,
    }
    _listener(key=key, data=data, default={"pressed": None}, on_pressed_change=lambda: None, height=0)
