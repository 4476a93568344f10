"""The chat page: a Gradio Blocks client of the gateway's own HTTP API.

For employees: streaming answers with the sources under each one, a plain notice when the
docs do not cover the question, "Open a ticket" under every answer (open, above the other
actions, when the docs do not cover it or the answer is disliked), like/dislike with an
optional correction, stop/retry/clear, and a model picker (base model and adapters).
For IT admins (signed in with an admin account, or with the admin key): upload documents
and reindex with progress, the index overview, and the feedback overview with an export as
training data; analytics (questions, grounded share, ratings, tickets, deflection, top
sources and content gaps, as plots and tables, with CSV downloads; ``ui.analytics``).

This module is the layout and its wiring; what each event does is ``PageController``
(``ui.controller``), over ``Client``. It imports nothing from ``assistant``: everything
goes over HTTP, like any other client.
"""

from ui.admin_tickets import HEADERS as FAILED_HEADERS
from ui.analytics import GAP_HEADERS, TABLES, make_plots
from ui.controller import (
    ESCALATION,
    SESSION_COOKIE,
    SOURCES_TITLE,
    Client,
    PageController,
    PageError,
    _readable,
    history_for_api,
    reopened,
    session_of,
    sources_markdown,
    text_of,
)

__all__ = [
    "ESCALATION",
    "HELP",
    "SESSION_COOKIE",
    "SOURCES_TITLE",
    "TITLE",
    "Client",
    "PageController",
    "PageError",
    "_readable",
    "build_page",
    "history_for_api",
    "reopened",
    "session_of",
    "sources_markdown",
    "text_of",
]

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
):
    """The page, talking to ``api_base`` (…/v1) as ``api_key``; ``model`` is the default."""
    import gradio as gr

    ctl = PageController(Client(api_base, api_key), model, max_tokens=max_tokens)

    description = HELP + (f"\n\n**{notice}**" if notice else "")
    with gr.Blocks(title=TITLE, fill_height=True) as page:
        gr.Markdown(f"# {TITLE}\n{description}", elem_id="intro")
        signed_in = gr.Markdown(visible=False, elem_id="signed-in")
        with gr.Tabs() as tabs:
            with gr.Tab("Ask", id="ask"):
                with gr.Row(equal_height=True):
                    picker = gr.Dropdown(
                        [model],
                        value=model,
                        label="Model",
                        elem_id="model-picker",
                        scale=1,
                        min_width=160,
                    )
                chatbot = gr.Chatbot(
                    label="Conversation",
                    elem_id="chat",
                    height=480,
                    feedback_options=("Like", "Dislike"),
                    placeholder="Ask your IT question below.",
                )
                question = gr.Textbox(
                    placeholder="Describe the problem, e.g. “My VPN says TP-204”",
                    show_label=False,
                    lines=1,
                    max_lines=6,
                    elem_id="question",
                    submit_btn=True,
                    stop_btn=True,
                )
                # the ticket action, opened first when the docs did not cover an answer
                with gr.Column(visible=False, elem_id="ticket-panel") as ticket_panel:
                    ticket_lead = gr.Markdown(elem_id="ticket-lead")
                    with gr.Row(equal_height=True):
                        summary = gr.Textbox(
                            label="Summary (optional: your first question otherwise)",
                            max_length=500,
                            elem_id="ticket-summary",
                            scale=3,
                        )
                        priority = gr.Radio(
                            ["low", "normal", "high"],
                            value="normal",
                            label="Priority",
                            elem_id="ticket-priority",
                            scale=2,
                        )
                    with gr.Row():
                        send_btn = gr.Button(
                            "Send to the Service Desk", variant="primary", elem_id="ticket-send"
                        )
                        refresh_ticket = gr.Button(
                            "Refresh", size="sm", visible=False, elem_id="ticket-refresh"
                        )
                    ticket_status = gr.Markdown(elem_id="ticket-status")
                    ticket = gr.State("")  # the ticket's id, once opened
                with gr.Row():
                    retry_btn = gr.Button("Retry", size="sm", elem_id="retry")
                    clear_btn = gr.Button("Clear", size="sm", elem_id="clear")
                    ticket_btn = gr.Button("Open a ticket", size="sm", elem_id="ticket-offer")
                with gr.Accordion("Correct a wrong answer", open=False):
                    correction = gr.Textbox(
                        label="What should the answer have said? "
                        "Then give that answer a thumbs-down.",
                        lines=2,
                        elem_id="correction",
                    )
                feedback_status = gr.Markdown(elem_id="feedback-status")
                answers = gr.State({})

                asked = question.submit(
                    ctl.ask, [question, chatbot, picker, answers], [chatbot, answers, question]
                )
                question.stop(None, cancels=[asked])
                tickets = ctl.tickets
                offer = [ticket_panel, ticket_lead, send_btn, ticket_status, refresh_ticket, ticket]
                asked.then(tickets.offer_ticket, chatbot, offer)
                retry_btn.click(
                    ctl.retry, [chatbot, picker, answers], [chatbot, answers, question]
                ).then(tickets.offer_ticket, chatbot, offer)
                clear_btn.click(ctl.clear, None, [chatbot, answers, feedback_status]).then(
                    tickets.reset_ticket, None, offer
                )
                chatbot.like(ctl.rate, [answers, correction], feedback_status)
                chatbot.like(tickets.ticket_after_rating, None, offer)
                ticket_btn.click(tickets.show_ticket, None, offer)
                send_btn.click(
                    tickets.open_ticket,
                    [chatbot, answers, summary, priority],
                    [ticket_status, send_btn, refresh_ticket, ticket],
                )
                refresh_ticket.click(tickets.refresh_ticket, ticket, ticket_status)

            with gr.Tab("History", id="history") as history_tab:
                with gr.Row(equal_height=True):
                    past = gr.Dropdown(
                        [], label="Your conversations", elem_id="history-list", scale=3
                    )
                    open_btn = gr.Button("Open", elem_id="history-open", scale=1)
                with gr.Row(equal_height=True):
                    new_title = gr.Textbox(label="New title", elem_id="history-title", scale=3)
                    rename_btn = gr.Button("Rename", size="sm", scale=1, elem_id="history-rename")
                    delete_btn = gr.Button(
                        "Delete", size="sm", variant="stop", scale=1, elem_id="history-delete"
                    )
                history_status = gr.Markdown(elem_id="history-status")
                history_tab.select(ctl.list_history, None, [past, history_status])
                open_btn.click(
                    ctl.open_conversation, past, [chatbot, answers, history_status, tabs]
                ).then(tickets.reset_ticket, None, offer)
                rename_btn.click(ctl.rename_conversation, [past, new_title], history_status).then(
                    ctl.list_history, None, [past, history_status]
                )
                delete_btn.click(ctl.delete_conversation, past, history_status).then(
                    ctl.list_history, None, [past, history_status]
                )

            with gr.Tab("Admin", id="admin") as admin_tab:
                admin_key = gr.State("")  # "": act as the signed-in person (an admin account)
                with gr.Row():
                    key_box = gr.Textbox(
                        label="Admin key (not needed when signed in with an admin account)",
                        type="password",
                        elem_id="admin-key",
                        scale=3,
                    )
                    login = gr.Button("Sign in", elem_id="admin-login", scale=1)
                login_status = gr.Markdown(elem_id="admin-status")
                with gr.Column(visible=False, elem_id="admin-panel") as panel:
                    gr.Markdown("### Documents")
                    files = gr.File(
                        label="Add documents (Markdown, text, HTML, PDF, DOCX)",
                        file_count="multiple",
                        file_types=[".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx"],
                        elem_id="upload",
                    )
                    with gr.Row():
                        add_btn = gr.Button("Upload and reindex", variant="primary", elem_id="add")
                        reindex_btn = gr.Button("Reindex the whole folder", elem_id="reindex")
                    reindex_status = gr.Markdown(elem_id="reindex-status")
                    gr.Markdown("### Index")
                    overview = gr.Dataframe(
                        headers=["collection", "documents", "chunks", "last reindex", "embedding"],
                        interactive=False,
                        elem_id="index-table",
                    )
                    docs_dir = gr.Markdown()
                    gr.Markdown("### Feedback")
                    feedback_summary = gr.Markdown(elem_id="feedback-summary")
                    latest = gr.Dataframe(
                        headers=["when", "rating", "question", "answer", "correction", "model"],
                        interactive=False,
                        wrap=True,
                        elem_id="feedback-table",
                    )
                    with gr.Row():
                        refresh_btn = gr.Button("Refresh", size="sm")
                        export_btn = gr.Button(
                            "Export as training data", size="sm", elem_id="export"
                        )
                    export_file = gr.File(label="Training data (JSONL)", interactive=False)
                    gr.Markdown("### Tickets that could not be delivered")
                    failed_status = gr.Markdown(elem_id="failed-status")
                    failed_table = gr.Dataframe(
                        headers=FAILED_HEADERS, interactive=False, wrap=True, elem_id="failed-table"
                    )
                    with gr.Row(equal_height=True):
                        failed_pick = gr.Dropdown(
                            [], label="Ticket", scale=2, elem_id="failed-pick"
                        )
                        resend_btn = gr.Button("Send again", scale=1, elem_id="failed-resend")
                        list_failed_btn = gr.Button("List", size="sm", scale=1)
                    failed_outputs = [failed_table, failed_pick, failed_status]
                    list_failed_btn.click(ctl.failed_tickets.failed, admin_key, failed_outputs)
                    resend_btn.click(
                        ctl.failed_tickets.send_again, [failed_pick, admin_key], failed_status
                    ).then(ctl.failed_tickets.listed, admin_key, [failed_table, failed_pick])
                    gr.Markdown("### Analytics")
                    with gr.Row(equal_height=True):
                        first_day = gr.Textbox(
                            label="From (YYYY-MM-DD; empty: 6 days ago)",
                            elem_id="analytics-from",
                            scale=2,
                        )
                        last_day = gr.Textbox(
                            label="To, included (empty: today)", elem_id="analytics-to", scale=2
                        )
                        show_btn = gr.Button("Show", elem_id="analytics-show", scale=1)
                    analytics_summary = gr.Markdown(elem_id="analytics-summary")
                    plots = make_plots()
                    gaps = gr.Dataframe(
                        headers=GAP_HEADERS,
                        interactive=False,
                        wrap=True,
                        elem_id="gaps-table",
                        label="Content gaps: questions the docs fail, by cluster",
                    )
                    with gr.Row(equal_height=True):
                        table = gr.Dropdown(
                            list(TABLES), value="content_gaps", label="Table", scale=2
                        )
                        csv_btn = gr.Button("Download as CSV", elem_id="analytics-csv", scale=1)
                    csv_file = gr.File(label="CSV", interactive=False)
                    show_btn.click(
                        ctl.analytics.show,
                        [first_day, last_day, admin_key],
                        [analytics_summary, *plots, gaps],
                    )
                    csv_btn.click(
                        ctl.analytics.download, [first_day, last_day, table, admin_key], csv_file
                    )

                admin_outputs = [overview, docs_dir, feedback_summary, latest]
                admin_tab.select(
                    ctl.admin_open, None, [panel, login_status, admin_key, *admin_outputs]
                )
                login.click(ctl.admin_login, key_box, [panel, login_status, admin_key]).then(
                    ctl.refresh, admin_key, admin_outputs
                ).then(ctl.failed_tickets.failed, admin_key, failed_outputs)
                add_btn.click(ctl.upload_and_reindex, [files, admin_key], reindex_status).then(
                    ctl.refresh, admin_key, admin_outputs
                )
                reindex_btn.click(ctl.reindex_all, admin_key, reindex_status).then(
                    ctl.refresh, admin_key, admin_outputs
                )
                refresh_btn.click(ctl.refresh, admin_key, admin_outputs).then(
                    ctl.failed_tickets.failed, admin_key, failed_outputs
                )
                export_btn.click(ctl.export_feedback, admin_key, export_file)
        page.load(ctl.load_models, picker, picker)
        page.load(ctl.whoami, None, signed_in)
    return page
