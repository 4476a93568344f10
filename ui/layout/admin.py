"""The Admin tab: sign-in, then documents (upload, reindex), the index and feedback
overviews, the tickets that could not be delivered and the analytics; wired to
``PageController.admin``, ``.failed_tickets`` and ``.analytics``."""

import gradio as gr

from ui.admin_tickets import HEADERS as FAILED_HEADERS
from ui.analytics import GAP_HEADERS, TABLES, make_plots
from ui.controller import PageController

DOC_TYPES = [".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx"]


def _documents() -> tuple[gr.File, gr.Button, gr.Button, gr.Markdown, list]:
    """Upload and reindex, and the index overview; the overview's outputs last."""
    gr.Markdown("### Documents")
    files = gr.File(
        label="Add documents (Markdown, text, HTML, PDF, DOCX)",
        file_count="multiple",
        file_types=DOC_TYPES,
        elem_id="upload",
    )
    with gr.Row():
        add_btn = gr.Button("Upload and reindex", variant="primary", elem_id="add")
        reindex_btn = gr.Button("Reindex the whole folder", elem_id="reindex")
    status = gr.Markdown(elem_id="reindex-status")
    gr.Markdown("### Index")
    overview = gr.Dataframe(
        headers=["collection", "documents", "chunks", "last reindex", "embedding"],
        interactive=False,
        elem_id="index-table",
    )
    docs_dir = gr.Markdown()
    return files, add_btn, reindex_btn, status, [overview, docs_dir]


def _feedback() -> tuple[gr.Button, gr.Button, gr.File, list]:
    """The feedback overview and its export; the overview's outputs last."""
    gr.Markdown("### Feedback")
    summary = gr.Markdown(elem_id="feedback-summary")
    latest = gr.Dataframe(
        headers=["when", "rating", "question", "answer", "correction", "model"],
        interactive=False,
        wrap=True,
        elem_id="feedback-table",
    )
    with gr.Row():
        refresh_btn = gr.Button("Refresh", size="sm")
        export_btn = gr.Button("Export as training data", size="sm", elem_id="export")
    export_file = gr.File(label="Training data (JSONL)", interactive=False)
    return refresh_btn, export_btn, export_file, [summary, latest]


def _failed_tickets(ctl: PageController, admin_key: gr.State) -> list:
    """The undelivered tickets, wired; their outputs (table, pick, note)."""
    gr.Markdown("### Tickets that could not be delivered")
    status = gr.Markdown(elem_id="failed-status")
    table = gr.Dataframe(
        headers=FAILED_HEADERS, interactive=False, wrap=True, elem_id="failed-table"
    )
    with gr.Row(equal_height=True):
        pick = gr.Dropdown([], label="Ticket", scale=2, elem_id="failed-pick")
        resend_btn = gr.Button("Send again", scale=1, elem_id="failed-resend")
        list_btn = gr.Button("List", size="sm", scale=1)
    failed = ctl.failed_tickets
    outputs = [table, pick, status]
    list_btn.click(failed.failed, admin_key, outputs)
    resend_btn.click(failed.send_again, [pick, admin_key], status).then(
        failed.listed, admin_key, [table, pick]
    )
    return outputs


def _analytics(ctl: PageController, admin_key: gr.State) -> None:
    """The analytics for a period: summary, plots, content gaps, CSV downloads; wired."""
    gr.Markdown("### Analytics")
    with gr.Row(equal_height=True):
        first_day = gr.Textbox(
            label="From (YYYY-MM-DD; empty: 6 days ago)", elem_id="analytics-from", scale=2
        )
        last_day = gr.Textbox(label="To, included (empty: today)", elem_id="analytics-to", scale=2)
        show_btn = gr.Button("Show", elem_id="analytics-show", scale=1)
    summary = gr.Markdown(elem_id="analytics-summary")
    plots = make_plots()
    gaps = gr.Dataframe(
        headers=GAP_HEADERS,
        interactive=False,
        wrap=True,
        elem_id="gaps-table",
        label="Content gaps: questions the docs fail, by cluster",
    )
    with gr.Row(equal_height=True):
        table = gr.Dropdown(list(TABLES), value="content_gaps", label="Table", scale=2)
        csv_btn = gr.Button("Download as CSV", elem_id="analytics-csv", scale=1)
    csv_file = gr.File(label="CSV", interactive=False)
    analytics = ctl.analytics
    show_btn.click(analytics.show, [first_day, last_day, admin_key], [summary, *plots, gaps])
    csv_btn.click(analytics.download, [first_day, last_day, table, admin_key], csv_file)


def admin_tab(ctl: PageController) -> None:
    """The Admin tab, its events wired: the panel opens once signed in as an admin."""
    with gr.Tab("Admin", id="admin") as tab:
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
            files, add_btn, reindex_btn, reindex_status, index = _documents()
            refresh_btn, export_btn, export_file, feedback = _feedback()
            failed_outputs = _failed_tickets(ctl, admin_key)
            _analytics(ctl, admin_key)

    admin, failed = ctl.admin, ctl.failed_tickets
    overviews = [*index, *feedback]  # what ``Admin.refresh`` returns
    tab.select(admin.admin_open, None, [panel, login_status, admin_key, *overviews])
    login.click(admin.admin_login, key_box, [panel, login_status, admin_key]).then(
        admin.refresh, admin_key, overviews
    ).then(failed.failed, admin_key, failed_outputs)
    add_btn.click(admin.upload_and_reindex, [files, admin_key], reindex_status).then(
        admin.refresh, admin_key, overviews
    )
    reindex_btn.click(admin.reindex_all, admin_key, reindex_status).then(
        admin.refresh, admin_key, overviews
    )
    refresh_btn.click(admin.refresh, admin_key, overviews).then(
        failed.failed, admin_key, failed_outputs
    )
    export_btn.click(admin.export_feedback, admin_key, export_file)
