"""The History tab: the person's conversations to open, rename or delete; wired to
``PageController.conversations`` (an opened one goes into the Ask tab's chat)."""

import gradio as gr

from ui.controller import PageController
from ui.layout.ask import AskTab


def history_tab(ctl: PageController, ask: AskTab, tabs: gr.Tabs) -> None:
    """The History tab, its events wired; ``ask`` the Ask tab, ``tabs`` the page's tabs."""
    with gr.Tab("History", id="history") as tab:
        with gr.Row(equal_height=True):
            past = gr.Dropdown([], label="Your conversations", elem_id="history-list", scale=3)
            open_btn = gr.Button("Open", elem_id="history-open", scale=1)
        with gr.Row(equal_height=True):
            new_title = gr.Textbox(label="New title", elem_id="history-title", scale=3)
            rename_btn = gr.Button("Rename", size="sm", scale=1, elem_id="history-rename")
            delete_btn = gr.Button(
                "Delete", size="sm", variant="stop", scale=1, elem_id="history-delete"
            )
        status = gr.Markdown(elem_id="history-status")

    conversations = ctl.conversations
    listed = [past, status]
    tab.select(conversations.list_history, None, listed)
    open_btn.click(
        conversations.open_conversation, past, [ask.chatbot, ask.answers, status, tabs]
    ).then(ctl.tickets.reset_ticket, None, ask.offer)
    rename_btn.click(conversations.rename_conversation, [past, new_title], status).then(
        conversations.list_history, None, listed
    )
    delete_btn.click(conversations.delete_conversation, past, status).then(
        conversations.list_history, None, listed
    )
