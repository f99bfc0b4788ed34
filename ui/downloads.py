"""Downloads that only the signed-in session gets: exports and the audit trail.

``st.download_button`` puts its file in Streamlit's media store, served at ``/media/<hash>.bin``
to anyone who has the address, with no cookie, for as long as some session still shows the
button (after a logout too). A labels export (with the original file names, if asked for) or the
audit trail must not be reachable that way. :func:`send` makes the file in the run of the button
press that asks for it, after the page has checked the sign-in, and hands its bytes to the browser
over that session's own websocket, as the data of a tiny Components v2 element (inline JavaScript,
no iframe). The element saves them as a download from a ``blob:`` address, which exists only
inside that page. Nothing is written to disk, nothing is kept in the session, and nothing has an
address another client (or the same browser after a logout) could fetch.

The element is mounted only in that run; the next run removes it, and the page frees the bytes.
It also shows a link that saves the file again, for a browser that held the first download back.
"""

from __future__ import annotations

import base64
import uuid

import streamlit as st

__all__ = ["send"]

# `data` is {"name", "mime", "content" (base64), "nonce"}. The nonce is new for every file made,
# so the element saves a file once even if Streamlit calls it again with the same data.
_JS = """
const saved = new WeakMap();

export default function (component) {
  const data = component.data;
  const parent = component.parentElement;
  if (!data || !data.name) {
    return;
  }
  const binary = atob(data.content);
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index += 1) {
    bytes[index] = binary.charCodeAt(index);
  }
  const address = URL.createObjectURL(new Blob([bytes], { type: data.mime }));
  let link = parent.querySelector("a[data-medreview-download]");
  if (!link) {
    link = document.createElement("a");
    link.setAttribute("data-medreview-download", "");
    link.style.color = "var(--st-link-color, inherit)";
    parent.appendChild(link);
  }
  link.href = address;
  link.download = data.name;
  link.textContent = `Save ${data.name} again`;
  if (saved.get(parent) !== data.nonce) {
    saved.set(parent, data.nonce);
    link.click();
  }
  return () => URL.revokeObjectURL(address);
}
"""

_downloader = st.components.v2.component("medreview_download", js=_JS)


def send(content: bytes, file_name: str, mime: str, key: str) -> None:
    """Have the browser save ``content`` as ``file_name``. Call in the run that made the file (the
    run of the button press that asked for it), once per file; ``key`` names the element."""
    data = {
        "name": file_name,
        "mime": mime,
        "content": base64.b64encode(content).decode("ascii"),
        "nonce": uuid.uuid4().hex,
    }
    _downloader(key=key, data=data, height="content")
