"""The History tab: ``Conversations`` (list, open, rename, delete the person's stored
conversations), used by ``PageController``.

Over ``/v1/conversations``, as the person using the page (their sign-in session); a
conversation opened goes back into the Ask tab's chat, its answers still rateable.
"""

# Gradio reads the `gr.Request` annotations at runtime: no postponed ones.
from urllib.parse import quote

import gradio as gr

from ui.client import Client, PageError, session_of
from ui.render import LINK_BASE, reopened, when


class Conversations:
    """The person's conversations, over ``client``; source links under ``link_base``."""

    def __init__(self, client: Client, *, link_base: str = LINK_BASE) -> None:
        self.client = client
        self.link_base = link_base

    def list_history(self, request: gr.Request):
        """The person's conversations for the picker, and a note."""
        try:
            found = self.client.request("GET", "/conversations", session=session_of(request)).json()
        except PageError as exc:
            return gr.update(choices=[], value=None), f"History is not available: {exc}"
        choices = [(f"{c['title']} · {when(c['updated_at'])}", c["id"]) for c in found["data"]]
        note = "" if choices else "No conversations yet: ask something first."
        return gr.update(choices=choices, value=choices[0][1] if choices else None), note

    def open_conversation(self, conversation: str | None, request: gr.Request):
        """A stored conversation into the chat; outputs: chat, rating map, note, tabs."""
        if not conversation:
            return gr.update(), gr.update(), "Pick a conversation first.", gr.update()
        try:
            found = self.client.request(
                "GET", f"/conversations/{quote(conversation)}", session=session_of(request)
            ).json()
        except PageError as exc:
            return gr.update(), gr.update(), f"It could not be opened: {exc}", gr.update()
        history, ratings = reopened(found, self.link_base)
        return history, ratings, "", gr.Tabs(selected="ask")

    def rename_conversation(self, conversation: str | None, title: str, request: gr.Request):
        if not conversation or not (title or "").strip():
            return "Pick a conversation and type its new title."
        try:
            self.client.request(
                "PATCH", f"/conversations/{quote(conversation)}",
                session=session_of(request), json={"title": title},
            )  # fmt: skip
        except PageError as exc:
            return f"It could not be renamed: {exc}"
        return "Renamed."

    def delete_conversation(self, conversation: str | None, request: gr.Request):
        if not conversation:
            return "Pick a conversation first."
        try:
            self.client.request(
                "DELETE", f"/conversations/{quote(conversation)}", session=session_of(request)
            )
        except PageError as exc:
            return f"It could not be deleted: {exc}"
        return "Deleted for good."
