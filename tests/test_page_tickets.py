"""The page's "Open a ticket" action without a browser: ``PageController.tickets`` against
the real gateway in-process (test_page_controller's fixture), its tickets delivered by the
webhook connector to a ticket system on loopback."""

from __future__ import annotations

import gradio as gr
import pytest

from tests.fakes import FakeIndex
from tests.test_page_controller import MODEL, _signed_in, asked, gateway, like, request  # noqa: F401
from tests.ticket_receiver import Receiver, wait_for
from ui.render import NOT_COVERED, NOT_COVERED_TITLE
from ui.tickets import ESCALATION, LEADS

OFF_TOPIC = "Is the canteen open on Sunday?"
HIDDEN = gr.update(visible=False)
CLOSED = (HIDDEN, "", gr.update(interactive=True), "", HIDDEN, "")


def offered(lead: str) -> tuple:
    return (gr.update(visible=True), LEADS[lead], gr.update(interactive=True), "", HIDDEN, "")


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def ticketing(gateway, receiver):  # noqa: F811
    """``make(**settings)``: the gateway of test_page_controller, tickets going to ``receiver``."""

    def make(**overrides):
        return gateway(escalation_webhook_url=receiver.url + "/tickets",
                       escalation_retry_initial_s=0.02, **overrides)  # fmt: skip

    return make


def off_topic_index() -> FakeIndex:
    from retrieval.retriever import Hit

    return FakeIndex(hits=[Hit(1, "guest-wifi.html", "Guest Wi-Fi", "", None, 0.12, "FENN-GUEST")])


def refreshed(tickets, ticket: str, who=request()) -> str:
    """The status once the ticket is no longer being delivered."""
    return wait_for(lambda: (s := tickets.refresh_ticket(ticket, who)) and "still" not in s and s)


def test_an_answer_the_docs_do_not_cover_offers_a_ticket_first_and_opens_it(ticketing, receiver):
    g = ticketing(index=off_topic_index())
    tickets = g.page.tickets
    history, answers, _ = asked(g.page, OFF_TOPIC)[-1]
    notice = history[-1]
    assert notice["metadata"]["title"] == NOT_COVERED_TITLE and notice["content"] == NOT_COVERED
    assert "copy into the ticket" not in notice["content"]  # the action, not the e-mail text
    assert tickets.offer_ticket(history) == offered("not covered")

    status, send, refresh, ticket = tickets.open_ticket(
        history, answers, "  Canteen\n hours ", "high", request()
    )
    assert ticket.startswith("esc-") and f"Ticket **{ticket}** opened (queued)." in status
    assert send == gr.update(interactive=False) and refresh == gr.update(visible=True)
    assert refreshed(tickets, ticket) == (
        f"Ticket **{ticket}** was sent to the Service Desk: their reference is **T-1**."
    )
    [got] = receiver.requests
    sent = got["json"]
    # the recorded conversation, named: its transcript, model and link come from the server
    conversation = g.http.get("/v1/conversations").json()["data"][0]["id"]
    assert sent["conversation_id"] == conversation and sent["model"] == MODEL
    assert sent["summary"] == "Canteen hours" and sent["priority"] == "high"
    # nothing was close enough to answer from, but the ticket says what was searched
    assert sent["sources_tried"] == [{"source": "guest-wifi.html", "title": "Guest Wi-Fi",
                                      "score": 0.12, "used": False}]  # fmt: skip
    assert [m["content"] for m in sent["transcript"]] == [OFF_TOPIC, history[1]["content"]]
    assert sent["links"]["conversation"].endswith(conversation)


def test_the_action_is_under_every_answer_and_opens_when_one_is_disliked(ticketing):
    g = ticketing()
    tickets = g.page.tickets
    history = asked(g.page)[-1][0]
    assert history[-1]["metadata"]["title"].startswith("Sources")  # covered by the docs
    assert tickets.offer_ticket(history) == (gr.update(),) * 6  # not opened on its own
    assert tickets.show_ticket() == offered("asked")  # the button under the answers
    assert tickets.ticket_after_rating(like(1, "Dislike")) == offered("disliked")
    assert tickets.ticket_after_rating(like(1, False)) == offered("disliked")
    assert tickets.ticket_after_rating(like(1)) == (gr.update(),) * 6
    assert tickets.reset_ticket() == CLOSED
    assert tickets.open_ticket([], {}, "", "normal", request())[0] == "Ask your question first."
    assert tickets.refresh_ticket("", request()) == "No ticket opened yet."


def test_a_chat_the_gateway_has_not_recorded_goes_as_its_transcript(ticketing, receiver):
    g = ticketing()
    box = {"role": "assistant", "content": "...", "metadata": {"title": "Sources (1)"}}
    history = [{"role": "user", "content": "Printer jammed"},
               {"role": "assistant", "content": "Open tray 2."}, box]  # fmt: skip
    unknown = {"1": {"completion_id": "c-x"}}  # not in the gateway's history
    ticket = g.page.tickets.open_ticket(history, unknown, "", "bogus", request())[3]
    assert refreshed(g.page.tickets, ticket).endswith("**T-1**.")
    sent = receiver.requests[0]["json"]
    assert sent["conversation_id"] is None and sent["priority"] == "normal"
    assert sent["transcript"] == [{"role": "user", "content": "Printer jammed"},
                                  {"role": "assistant", "content": "Open tray 2."}]  # fmt: skip
    assert sent["summary"] == "Printer jammed"


def test_a_refused_ticket_says_why(ticketing, receiver):
    receiver.answer = lambda request: (422, {"error": "no such queue"}, 0)
    g = ticketing()
    history, answers, _ = asked(g.page)[-1]
    ticket = g.page.tickets.open_ticket(history, answers, "", "low", request())[3]
    status = refreshed(g.page.tickets, ticket)
    assert status.startswith(f"Ticket **{ticket}** could not be delivered (")
    assert "no such queue" in status and status.endswith("contact the Service Desk directly.")
    assert g.page.tickets.refresh_ticket("esc-nope", request()).startswith(
        "The ticket's state is not available: no escalation"
    )


def test_without_a_ticket_system_the_page_says_what_to_tell_the_service_desk(gateway):  # noqa: F811
    g = gateway(index=off_topic_index())  # no connector configured: 503 escalations_disabled
    history, answers, _ = asked(g.page, OFF_TOPIC)[-1]
    status, send, refresh, ticket = g.page.tickets.open_ticket(
        history, answers, "", "normal", request()
    )
    assert status == ESCALATION.format(question=OFF_TOPIC)
    assert (send, refresh, ticket) == (gr.update(interactive=False), HIDDEN, "")


def test_with_sign_in_the_ticket_is_the_persons_own(ticketing, receiver, tmp_path):
    from assistant.identity.users import UserStore

    users = UserStore(tmp_path / "users.sqlite")
    users.add("alice", [], password="alice-password")
    users.add("bob", [], password="bob-password")
    g = ticketing(users=users, auth="local")
    alice = _signed_in(g.http, "alice", "alice-password")
    bob = _signed_in(g.http, "bob", "bob-password")
    history, answers, _ = asked(g.page, who=alice.headers["cookie"].split("=", 1)[1])[-1]

    refused = g.page.tickets.open_ticket(history, answers, "", "normal", request())
    assert refused[0].startswith("The ticket could not be opened:") and refused[3] == ""
    ticket = g.page.tickets.open_ticket(history, answers, "", "normal", alice)[3]
    assert refreshed(g.page.tickets, ticket, alice).endswith("**T-1**.")
    sent = receiver.requests[0]["json"]
    assert sent["user"] == "alice" and sent["conversation_id"].startswith("conv-")
    # bob's page does not see alice's ticket
    assert "no escalation" in g.page.tickets.refresh_ticket(ticket, bob)
    users.close()


def test_the_page_hands_gradio_the_ticket_methods_with_what_they_need():
    from gradio.helpers import special_args

    from ui.chat_page import build_page
    from ui.tickets import Tickets

    page = build_page("http://127.0.0.1:9/v1", MODEL)
    fns = {f.api_name: f for f in page.fns.values()}
    for name in ("offer_ticket", "ticket_after_rating", "show_ticket", "reset_ticket",
                 "open_ticket", "refresh_ticket"):  # fmt: skip
        assert isinstance(fns[name].fn.__self__, Tickets), name
    marker, event = object(), like(1, False)
    filled = special_args(fns["open_ticket"].fn, [[], {}, "", "normal"], request=marker)[0]
    assert filled[-1] is marker
    assert special_args(fns["refresh_ticket"].fn, ["esc-1"], request=marker)[0] == ["esc-1", marker]
    filled, _, event_at, _ = special_args(fns["ticket_after_rating"].fn, [], marker, event)
    assert event_at == 0 and filled[0].liked is False
    assert fns["ticket_after_rating"].collects_event_data


def test_an_admin_lists_undelivered_tickets_and_sends_one_again(ticketing, receiver):
    receiver.answer = lambda request: (422, {"error": "requester is not known"}, 0)
    g = ticketing(index=off_topic_index())
    history, answers, _ = asked(g.page, OFF_TOPIC)[-1]
    _, _, _, ticket = g.page.tickets.open_ticket(history, answers, "", "normal", request())
    assert "could not be delivered" in refreshed(g.page.tickets, ticket)

    admin = g.page.failed_tickets
    rows, pick, note = admin.failed("adm", request())
    assert note == "1 ticket(s) could not be delivered."
    [row] = rows
    assert row[0] == ticket and row[3] == OFF_TOPIC and "requester is not known" in row[5]
    assert pick == gr.update(choices=[ticket], value=ticket)
    assert admin.failed("wrong", request())[2].startswith("Problem: ")
    assert admin.send_again("", "adm", request()) == "Pick a ticket first."

    receiver.answer = receiver.create  # the ticket system is fixed
    assert admin.send_again(ticket, "adm", request()).startswith(f"Ticket **{ticket}** is queued")
    assert refreshed(g.page.tickets, ticket) == (
        f"Ticket **{ticket}** was sent to the Service Desk: their reference is **T-1**."
    )
    assert admin.listed("adm", request()) == ([], gr.update(choices=[], value=None))
    assert admin.send_again(ticket, "adm", request()).startswith("Problem: ")  # not failed now
