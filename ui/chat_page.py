"""The chat page: a Gradio Blocks client of the gateway's own HTTP API.

For employees: streaming answers with the sources under each one, a plain notice when the
docs do not cover the question, "Open a ticket" under every answer (open, above the other
actions, when the docs do not cover it or the answer is disliked), like/dislike with an
optional correction, stop/retry/clear, and a model picker (base model and adapters).
For IT admins (signed in with an admin account, or with the admin key): upload documents
and reindex with progress, the index overview, and the feedback overview with an export as
training data; analytics (questions, grounded share, ratings, tickets, deflection, top
sources and content gaps, as plots and tables, with CSV downloads; ``ui.analytics``).

This module puts the page together: each tab's layout and wiring is ``ui.layout``'s, what
each event does ``PageController``'s (``ui.controller``), over ``Client`` (``ui.client``).
It imports nothing from ``assistant``: everything goes over HTTP, like any other client.
"""

import gradio as gr

from ui.client import Client
from ui.controller import PageController
from ui.layout.admin import admin_tab
from ui.layout.ask import ask_tab
from ui.layout.history import history_tab

TITLE = "IT help desk"
HELP = (
    "Ask about VPN, passwords and MFA, laptops, printing, Wi-Fi, email, shared drives and "
    "software requests. Answers come from the company's IT documentation, with the "
    "sources listed under each answer. Rate answers with the thumbs to help improve them."
)


def build_page(
    api_base: str,
    model: str,
    api_key: str | None = None,
    *,
    notice: str | None = None,
    max_tokens: int = 256,
) -> gr.Blocks:
    """The page, talking to ``api_base`` (…/v1) as ``api_key``; ``model`` is the default."""
    ctl = PageController(Client(api_base, api_key), model, max_tokens=max_tokens)

    description = HELP + (f"\n\n**{notice}**" if notice else "")
    with gr.Blocks(title=TITLE, fill_height=True) as page:
        gr.Markdown(f"# {TITLE}\n{description}", elem_id="intro")
        signed_in = gr.Markdown(visible=False, elem_id="signed-in")
        with gr.Tabs() as tabs:
            ask = ask_tab(ctl, model)
            history_tab(ctl, ask, tabs)
            admin_tab(ctl)
        page.load(ctl.load_models, ask.picker, ask.picker)
        page.load(ctl.whoami, None, signed_in)
    return page
