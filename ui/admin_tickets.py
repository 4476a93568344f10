"""The Admin tab's tickets that could not be delivered: ``AdminTickets``, used by
``PageController``.

``GET /v1/admin/escalations?state=failed`` lists them with the reason the ticket system
gave; once it (or the connector's settings) is fixed, ``POST
/v1/admin/escalations/ID/retry`` sends one again. As the admin using the page (their key,
or their sign-in session); like the rest of the page, nothing from ``assistant``.
"""

# Gradio reads the `gr.Request` annotations at runtime: no postponed ones.
from urllib.parse import quote

import gradio as gr

from ui.client import Client, PageError, session_of
from ui.render import when

HEADERS = ["ticket", "when", "who", "summary", "attempts", "why it failed"]


class AdminTickets:
    """Failed tickets: list them, send one again; over ``client``."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def failed(self, key: str, request: gr.Request):
        """Outputs: the failed tickets' rows (newest first), the ids to pick, a note."""
        try:
            listed = self.client.request(
                "GET", "/admin/escalations", key, session=session_of(request),
                params={"state": "failed", "limit": 200},
            ).json()["data"]  # fmt: skip
        except PageError as exc:
            return [], gr.update(choices=[], value=None), f"Problem: {exc}"
        rows = [[e["id"], when(e["created_at"]), e.get("user", ""), e["summary"],
                 e["attempts"], e.get("reason") or ""] for e in listed]  # fmt: skip
        ids = [e["id"] for e in listed]
        note = f"{len(ids)} ticket(s) could not be delivered." if ids else "Every ticket went out."
        return rows, gr.update(choices=ids, value=ids[0] if ids else None), note

    def listed(self, key: str, request: gr.Request):
        """``failed`` without its note (after "Send again", whose note stays)."""
        rows, pick, _note = self.failed(key, request)
        return rows, pick

    def send_again(self, ticket: str, key: str, request: gr.Request) -> str:
        """Queue the chosen failed ticket again; a note saying what happened."""
        if not ticket:
            return "Pick a ticket first."
        try:
            self.client.request(
                "POST", f"/admin/escalations/{quote(ticket)}/retry", key,
                session=session_of(request),
            )  # fmt: skip
        except PageError as exc:
            return f"Problem: {exc}"
        return f"Ticket **{ticket}** is queued again: it goes out as soon as the system takes it."
