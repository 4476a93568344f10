"""The page's "Open a ticket" action: ``Tickets``, used by ``PageController``.

The action sits under every answer; it opens on its own, above the other actions, when
an answer is not covered by the documentation or the person dislikes one. The ticket goes
through ``POST /v1/escalations`` as the person using the page (their sign-in session, as
every other call of the page), naming their recorded conversation where the gateway has
it, so the ticket carries the sources that were tried and the model; otherwise the
transcript as the chat shows it. With no ticket system configured (503
``escalations_disabled``) the page shows what to tell the Service Desk instead.
"""

# Gradio reads the `gr.Request`, `gr.LikeData` annotations at runtime: no postponed ones.
from urllib.parse import quote

import gradio as gr

from ui.client import Client, PageError, session_of
from ui.render import NOT_COVERED_TITLE, history_for_api, text_of

ESCALATION = (
    "**The IT documentation does not cover this.** The answer above may be incomplete, so "
    "please contact the Service Desk. To get help fast, tell them:\n"
    "- what you were trying to do, and on which device (laptop, phone, depot scanner...);\n"
    "- the exact error message or code (for example TP-204), and when it started;\n"
    "- what you have already tried.\n\n"
    "Your question, to copy into the ticket:\n\n> {question}"
)  # what to tell the Service Desk when no ticket system is configured

PRIORITIES = ("low", "normal", "high")
PERSON = "A person from the Service Desk can take it from here: send them this conversation as "
LEADS = {
    "not covered": "**The IT documentation does not cover this.** " + PERSON + "a ticket, so "
    "you need not explain it again.",
    "disliked": "**Sorry that answer did not help.** " + PERSON + "a ticket.",
    "asked": "Send this conversation to the Service Desk as a ticket: a person will take it "
    "from here.",
}
SAME = (gr.update(),) * 6


def _offered(lead: str) -> tuple:
    """The action, open: panel, lead, send button, status, refresh button, ticket id."""
    return (gr.update(visible=True), LEADS[lead], gr.update(interactive=True), "",
            gr.update(visible=False), "")  # fmt: skip


class Tickets:
    """What the ticket action does, over ``client``."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def offer_ticket(self, history: list):
        """After an answer: the action, open and first, when the docs did not cover it."""
        last = history[-1] if history else {}
        if (last.get("metadata") or {}).get("title") == NOT_COVERED_TITLE:
            return _offered("not covered")
        return SAME

    def ticket_after_rating(self, data: gr.LikeData):
        """After a thumbs: the action, open and first, when the answer was disliked."""
        liked = data.liked is True or data.liked == "Like"
        return SAME if liked else _offered("disliked")

    def show_ticket(self):
        """The "Open a ticket" button under the answers: the action, open."""
        return _offered("asked")

    def reset_ticket(self):
        """A new or other conversation: the action closed, no ticket."""
        return (gr.update(visible=False), "", gr.update(interactive=True), "",
                gr.update(visible=False), "")  # fmt: skip

    def open_ticket(
        self, history: list, answers: dict, summary: str, priority: str, request: gr.Request
    ):
        """Send the conversation as a ticket; outputs: status, send button, refresh button,
        the ticket's id."""
        messages = history_for_api(history)
        if not any(m["role"] == "user" for m in messages):
            return "Ask your question first.", gr.update(), gr.update(), ""
        session = session_of(request)
        body: dict = {"priority": priority if priority in PRIORITIES else "normal"}
        if (summary or "").strip():
            body["summary"] = " ".join(summary.split())[:500]
        conversation = self._recorded(answers, session)
        if conversation:
            body["conversation_id"] = conversation
        else:
            body["messages"] = messages
        try:
            made = self.client.request("POST", "/escalations", session=session, json=body).json()
        except PageError as exc:
            if exc.code == "escalations_disabled":  # no ticket system: what to tell them
                question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
                text = ESCALATION.format(question=text_of(question))
                return text, gr.update(interactive=False), gr.update(visible=False), ""
            return f"The ticket could not be opened: {exc}", gr.update(), gr.update(), ""
        note = (f"Ticket **{made['id']}** opened ({made['state']}). Press Refresh to see the "
                "Service Desk's reference once it is delivered.")  # fmt: skip
        return note, gr.update(interactive=False), gr.update(visible=True), made["id"]

    def refresh_ticket(self, ticket: str, request: gr.Request):
        """The ticket's state, and the Service Desk's reference once sent."""
        if not ticket:
            return "No ticket opened yet."
        try:
            found = self.client.request(
                "GET", f"/escalations/{quote(ticket)}", session=session_of(request)
            ).json()
        except PageError as exc:
            return f"The ticket's state is not available: {exc}"
        if found["state"] == "sent":
            reference = found.get("reference")
            where = f": their reference is **{reference}**" if reference else ""
            return f"Ticket **{ticket}** was sent to the Service Desk{where}."
        if found["state"] == "failed":
            return (f"Ticket **{ticket}** could not be delivered ({found.get('reason')}). "
                    "Please contact the Service Desk directly.")  # fmt: skip
        return f"Ticket **{ticket}** is still being delivered. Press Refresh again in a moment."

    def _recorded(self, answers: dict, session: str | None) -> str | None:
        """The person's recorded conversation that ends with the chat's last answer, if the
        gateway keeps one (the chat does not know its id)."""
        if not answers:
            return None
        last = answers[str(max(int(k) for k in answers))].get("completion_id")
        try:
            listed = self.client.request(
                "GET", "/conversations", session=session, params={"limit": 3}
            ).json()
            for item in listed["data"]:
                found = self.client.request(
                    "GET", f"/conversations/{quote(item['id'])}", session=session
                ).json()
                if found["answers"] and found["answers"][-1]["completion_id"] == last:
                    return item["id"]
        except (PageError, KeyError, ValueError):
            pass  # no history on this gateway: the transcript as shown goes instead
        return None
