"""The Ask tab: the model picker, the chat, the question box, the "Open a ticket" action,
retry/clear and the correction box; wired to ``PageController.chat`` and ``.tickets``."""

from dataclasses import dataclass

import gradio as gr

from ui.controller import PageController


@dataclass(frozen=True)
class AskTab:
    """What the other tabs and the page use of the Ask tab."""

    picker: gr.Dropdown
    chatbot: gr.Chatbot
    answers: gr.State  # the rating map: chat index -> completion id
    offer: list  # the ticket action's outputs: panel, lead, send, status, refresh, ticket id


@dataclass(frozen=True)
class _TicketPanel:
    summary: gr.Textbox
    priority: gr.Radio
    send: gr.Button
    refresh: gr.Button
    status: gr.Markdown
    ticket: gr.State  # the ticket's id, once opened
    offer: list


def _conversation(model: str) -> tuple[gr.Dropdown, gr.Chatbot, gr.Textbox]:
    """The model picker, the chat and the question box."""
    with gr.Row(equal_height=True):
        picker = gr.Dropdown(
            [model], value=model, label="Model", elem_id="model-picker", scale=1, min_width=160
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
    return picker, chatbot, question


def _ticket_panel() -> _TicketPanel:
    """The ticket action, closed (opened first when the docs did not cover an answer)."""
    with gr.Column(visible=False, elem_id="ticket-panel") as panel:
        lead = gr.Markdown(elem_id="ticket-lead")
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
            send = gr.Button("Send to the Service Desk", variant="primary", elem_id="ticket-send")
            refresh = gr.Button("Refresh", size="sm", visible=False, elem_id="ticket-refresh")
        status = gr.Markdown(elem_id="ticket-status")
        ticket = gr.State("")
    offer = [panel, lead, send, status, refresh, ticket]
    return _TicketPanel(summary, priority, send, refresh, status, ticket, offer)


def ask_tab(ctl: PageController, model: str) -> AskTab:
    """The Ask tab, its events wired; ``model`` the picker's first choice."""
    with gr.Tab("Ask", id="ask"):
        picker, chatbot, question = _conversation(model)
        panel = _ticket_panel()
        with gr.Row():
            retry_btn = gr.Button("Retry", size="sm", elem_id="retry")
            clear_btn = gr.Button("Clear", size="sm", elem_id="clear")
            ticket_btn = gr.Button("Open a ticket", size="sm", elem_id="ticket-offer")
        with gr.Accordion("Correct a wrong answer", open=False):
            correction = gr.Textbox(
                label="What should the answer have said? Then give that answer a thumbs-down.",
                lines=2,
                elem_id="correction",
            )
        feedback_status = gr.Markdown(elem_id="feedback-status")
        answers = gr.State({})

        chat, tickets, offer = ctl.chat, ctl.tickets, panel.offer
        asked = question.submit(
            chat.ask, [question, chatbot, picker, answers], [chatbot, answers, question]
        )
        question.stop(None, cancels=[asked])
        asked.then(tickets.offer_ticket, chatbot, offer)
        retry_btn.click(chat.retry, [chatbot, picker, answers], [chatbot, answers, question]).then(
            tickets.offer_ticket, chatbot, offer
        )
        clear_btn.click(chat.clear, None, [chatbot, answers, feedback_status]).then(
            tickets.reset_ticket, None, offer
        )
        chatbot.like(chat.rate, [answers, correction], feedback_status)
        chatbot.like(tickets.ticket_after_rating, None, offer)
        ticket_btn.click(tickets.show_ticket, None, offer)
        panel.send.click(
            tickets.open_ticket,
            [chatbot, answers, panel.summary, panel.priority],
            [panel.status, panel.send, panel.refresh, panel.ticket],
        )
        panel.refresh.click(tickets.refresh_ticket, panel.ticket, panel.status)
    return AskTab(picker, chatbot, answers, offer)
