"""The chat page's behaviour without a browser: ``PageController`` against the real gateway,
in-process (its ``Client`` goes through a ``TestClient`` of the app, fake engine and index).
The layout and the browser are test_page_browser's; here, what each event does."""

from __future__ import annotations

import copy
import itertools
import json
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from fastapi.testclient import TestClient

from assistant.chat.feedback_store import FeedbackStore
from assistant.settings import load_settings
from tests.conftest import gateway_app
from tests.fakes import FakeIndex, FakeUpstream
from ui.admin import Admin
from ui.chat import Chat
from ui.chat_page import build_page
from ui.client import Client
from ui.controller import PageController
from ui.conversations import Conversations
from ui.render import NOT_COVERED

MODEL = "helpdesk-demo"
QUESTION = "VPN TP-204?"


def request(session: str | None = None):
    """What the controller reads of a ``gr.Request``: its headers."""
    return SimpleNamespace(headers={"cookie": f"hd_session={session}"} if session else {})


def like(index: int, liked: bool | str = True) -> gr.LikeData:
    return gr.LikeData(target=None, data={"index": index, "value": "...", "liked": liked})


class FakeIndexService:
    """The admin routes' ``IndexService``: a fixed overview, reindex jobs done at once."""

    def __init__(self, docs: Path) -> None:
        self.docs = docs
        self.started: list[dict] = []

    def overview(self) -> dict:
        docs = [{"name": "docs", "documents": 3, "chunks": 12, "last_reindex": 1.7e9,
                 "embedding_model": "fake-embedder"}]  # fmt: skip
        return {"collections": docs, "docs_dir": str(self.docs)}

    def start_reindex(self, **params) -> str:
        self.started.append(params)
        return f"job-{len(self.started)}"

    def job(self, job_id: str) -> dict:
        files = len(list(self.docs.iterdir()))
        counts = {"added": files, "updated": 0, "removed": 0, "unchanged": 0, "chunks": 4 * files,
                  "skipped_files": [{"source": "scan.pdf", "reason": "no text"}]}  # fmt: skip
        return {"job": job_id, "state": "done", "error": None, "counts": counts,
                "progress": {"files_done": files, "files_total": files}}  # fmt: skip

    def jobs(self) -> list[dict]:
        return []


@pytest.fixture
def gateway(tmp_path):
    """``make(**settings)``: the gateway in-process, and a page controller talking to it."""
    docs = tmp_path / "docs"
    docs.mkdir()
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    with ExitStack() as running:

        def make(index=None, users=None, **overrides):
            settings = load_settings(home=tmp_path, docs_dir=docs, admin_key="adm", **overrides)
            upstream = FakeUpstream(models=(MODEL, "it-support"))
            app = gateway_app(
                settings,
                upstream=upstream,
                index=index or FakeIndex(),
                feedback_store=store,
                index_service=FakeIndexService(docs),
                users=users,
                login_delay_s=0.0,
            )
            http = running.enter_context(TestClient(app, follow_redirects=False))
            page = PageController(Client("http://testserver/v1", None, http=http), MODEL)
            return SimpleNamespace(page=page, http=http, store=store, upstream=upstream, docs=docs)

        yield make
    store.close()


def asked(page: PageController, question: str = QUESTION, history=(), answers=None, who=None):
    """Each step of ``ask`` as the browser got it (the chat list is updated in place)."""
    steps = page.chat.ask(question, list(history), MODEL, answers or {}, request(who))
    return [copy.deepcopy(step) for step in steps]


def test_ask_streams_the_answer_then_its_sources_and_keeps_it_rateable(gateway):
    page = gateway().page  # an open gateway (no keys, no sign-in), and a page with no key
    steps = asked(page)
    first_history, first_answers, first_box = steps[0]
    assert first_history == [{"role": "user", "content": QUESTION},
                             {"role": "assistant", "content": ""}]  # fmt: skip
    assert first_answers == {} and first_box == ""  # the question box is emptied at once
    partial = [h[-1]["content"] for h, _, _ in steps[1:-1]]
    assert len(partial) > 2 and all(b.startswith(a) for a, b in itertools.pairwise(partial))

    history, answers, box = steps[-1]
    assert box == gr.update()
    assert history[1]["role"] == "assistant" and history[1]["content"].startswith("echo:")
    sources = history[2]
    assert sources["metadata"]["title"] == "Sources (2)"  # the 0.12 passage is below the bar
    assert "[1] [VPN error codes and fixes](/v1/sources/vpn-error-codes.md?" in sources["content"]
    assert "sig=" in sources["content"]  # signed links, never a key
    assert len(history) == 3  # covered by the docs: no escalation box
    assert answers == {"1": {"completion_id": "chatcmpl-fake-1"}}

    again = asked(page, "and on Mac?", history, answers)[-1]
    assert [m["role"] for m in again[0]] == ["user", "assistant", "assistant"] * 2
    assert again[1] == {"1": {"completion_id": "chatcmpl-fake-1"},
                        "4": {"completion_id": "chatcmpl-fake-2"}}  # fmt: skip


def test_an_empty_question_changes_nothing(gateway):
    g = gateway()
    history, answers = [{"role": "user", "content": "hi"}], {"1": {"completion_id": "c"}}
    assert asked(g.page, "   ", history, answers) == [(history, answers, gr.update())]
    assert g.upstream.requests == []


def test_an_answer_the_docs_do_not_cover_gets_the_escalation_box(gateway):
    from retrieval.retriever import Hit

    low = [Hit(1, "guest-wifi.html", "Guest Wi-Fi", "", None, 0.12, "Join FENN-GUEST.")]
    history, answers, _ = asked(gateway(index=FakeIndex(hits=low)).page, "Is the canteen open?")[-1]
    assert [m.get("metadata", {}).get("title") for m in history] == [
        None, None, "Not covered by the documentation"]  # fmt: skip
    assert history[-1]["content"] == NOT_COVERED  # and the ticket action opens (test_page_tickets)
    assert list(answers) == ["1"]  # the answer itself can still be rated


def test_retry_asks_the_last_question_again_in_place_of_its_answer(gateway):
    page = gateway().page
    history, answers, _ = asked(page)[-1]
    retried, ratings, _ = list(page.chat.retry(history, MODEL, answers, request()))[-1]
    assert retried[0]["content"] == QUESTION and len(retried) == 3
    assert ratings["1"] == {"completion_id": "chatcmpl-fake-2"}
    assert list(page.chat.retry([], MODEL, {}, request())) == [([], {}, gr.update())]
    assert page.chat.clear() == ([], {}, "")


def test_engine_trouble_is_a_sentence_in_the_chat(gateway):
    g = gateway()
    g.upstream.engine_state = "starting"
    history, answers, _ = asked(g.page)[-1]
    assert history[-1]["content"].startswith("The assistant is starting up")
    assert answers == {}  # nothing to rate


def test_ratings_and_corrections_reach_the_feedback_store(gateway):
    g = gateway()
    history, answers, _ = asked(g.page)[-1]
    assert g.page.chat.rate(like(0), answers, "", request()) == "Only answers can be rated."
    saved = g.page.chat.rate(like(1), answers, "ignored", request())
    assert saved == "Thanks, your rating was saved."
    # the thumbs under the sources box rate the answer above it
    fix = "Renew the certificate at the kiosk."
    saved = g.page.chat.rate(like(2, "Dislike"), answers, fix, request())
    assert saved == "Thanks, your rating and correction were saved."
    assert "correction box" in g.page.chat.rate(like([1, 0], False), answers, "", request())
    disliked, corrected, liked = g.store.latest(3)
    assert liked["rating"] == 1 and liked["correction"] is None
    assert liked["answer"] == history[1]["content"]  # the server's own record of the answer
    assert corrected["rating"] == -1 and corrected["correction"] == fix
    assert disliked["rating"] == -1 and disliked["correction"] is None

    unknown = {"1": {"completion_id": "chatcmpl-nope"}}
    assert g.page.chat.rate(like(1), unknown, "", request()).startswith(
        "Your rating could not be saved:"
    )


def test_history_lists_opens_renames_and_deletes_conversations(gateway):
    page = gateway().page
    tab = page.conversations  # the History tab
    empty = (gr.update(choices=[], value=None), "No conversations yet: ask something first.")
    assert tab.list_history(request()) == empty
    history, answers, _ = asked(page)[-1]
    picker, note = tab.list_history(request())
    (label, conversation), = picker["choices"]  # fmt: skip
    assert picker["value"] == conversation and note == "" and label.startswith("VPN TP-204")

    reopened, ratings, note, tabs = tab.open_conversation(conversation, request())
    assert reopened == history and ratings == answers and note == ""
    assert tabs.selected == "ask"
    assert tab.open_conversation(None, request())[2] == "Pick a conversation first."

    assert tab.rename_conversation(conversation, " ", request()).startswith("Pick")
    assert tab.rename_conversation(conversation, "VPN trouble", request()) == "Renamed."
    assert tab.list_history(request())[0]["choices"][0][0].startswith("VPN trouble · ")

    assert tab.delete_conversation(conversation, request()) == "Deleted for good."
    assert tab.list_history(request())[0]["choices"] == []
    assert tab.open_conversation(conversation, request())[2].startswith(
        "It could not be opened: no conversation"
    )
    assert tab.delete_conversation(conversation, request()).startswith("It could not be deleted")


def test_admin_sign_in_overviews_reindex_and_export(gateway, tmp_path):
    g = gateway()
    page = g.page
    wrong = (gr.update(visible=False), "Problem: Wrong admin key.", "")
    assert page.admin.admin_login("wrong", request()) == wrong
    assert page.admin.admin_login(" adm ", request()) == (
        gr.update(visible=True), "Signed in as admin.", "adm")  # fmt: skip
    # no key and no one signed in: the Admin tab opening changes nothing, "Sign in" asks
    assert page.admin.admin_open(request()) == (gr.update(),) * 7
    assert page.admin.admin_login("", request())[1] == "Problem: Type the admin key."

    history, answers, _ = asked(page)[-1]
    page.chat.rate(like(1, False), answers, "Use the kiosk.", request())
    rows, where, summary, latest = page.admin.refresh("adm", request())
    assert rows == [["docs", 3, 12, rows[0][3], "fake-embedder"]] and rows[0][3].startswith("20")
    assert where == f"Docs folder: `{g.docs}`"
    assert summary == "0 liked, 1 disliked (1 corrected)."
    assert latest[0][1:] == ["disliked", QUESTION, history[1]["content"], "Use the kiosk.", MODEL]
    assert page.admin.refresh("wrong", request()) == (
        [], *["Problem: this route needs the admin key"] * 2, [])  # fmt: skip

    upload = tmp_path / "kiosk.md"
    upload.write_text("# Kiosk\n\nThe lobby kiosk reboots at 6am.\n")
    shown: list[str] = []
    done = page.admin.upload_and_reindex(
        [str(upload)], "adm", request(), lambda _, desc: shown.append(desc)
    )
    assert (g.docs / "kiosk.md").read_text() == upload.read_text()
    assert shown == ["Saved kiosk.md; reindexing...", "Reindexing: 1 of 1 files"]
    assert done == ("Reindexed: 1 added, 0 updated, 0 removed, 0 unchanged; 4 chunks in the "
                    "index.\n- skipped scan.pdf: no text")  # fmt: skip
    assert page.admin.reindex_all("adm", request(), lambda *_, **__: None) == done
    assert page.admin.reindex_all("wrong", request(), lambda *_, **__: None).startswith("Problem: ")

    exported = Path(page.admin.export_feedback("adm", request()))
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    exported.unlink()
    assert lines[0]["messages"][-1] == {"role": "assistant", "content": "Use the kiosk."}
    with pytest.raises(gr.Error):
        page.admin.export_feedback("wrong", request())


def test_the_model_picker_and_the_signed_in_line(gateway):
    page = gateway().page
    assert page.load_models("it-support", request()) == gr.update(
        choices=[MODEL, "it-support"], value="it-support"
    )
    assert page.load_models("gone", request())["value"] == MODEL
    assert page.whoami(request()) == gr.update(visible=False)

    offline = PageController(Client("http://127.0.0.1:9/v1", None), MODEL)
    assert offline.load_models(MODEL, request()) == gr.update(choices=[MODEL], value=MODEL)
    unreachable = offline.admin.admin_login("adm", request())[1]
    assert unreachable == "Problem: The server cannot be reached."
    said = list(offline.chat.ask(QUESTION, [], MODEL, {}, request()))[-1][0][-1]["content"]
    assert said.startswith("The assistant cannot be reached right now.")


def test_with_sign_in_the_page_acts_as_the_person(gateway, tmp_path):
    from assistant.identity.auth import COOKIE
    from assistant.identity.users import UserStore

    users = UserStore(tmp_path / "users.sqlite")
    users.add("alice", [], password="alice-password")
    g = gateway(users=users, auth="local")
    login = TestClient(g.http.app, follow_redirects=False)
    form = {"username": "alice", "password": "alice-password", "next": "/"}
    session = login.post("/login", data=form).cookies[COOKIE]

    assert g.page.whoami(request(session + "x")) == gr.update(visible=False)  # forged
    line = g.page.whoami(request(session))
    assert line == gr.update(value="Signed in as **alice** · [Sign out](/logout)", visible=True)
    history, answers, _ = asked(g.page, who=session)[-1]
    assert history[1]["content"].startswith("echo:") and "1" in answers
    assert len(g.page.conversations.list_history(request(session))[0]["choices"]) == 1
    # no session, no key: the API refuses, and the page says so in a sentence
    refused = g.page.conversations.list_history(request())[1]
    assert refused.startswith("History is not available:")
    assert asked(g.page)[-1][0][-1]["content"].startswith("This page is not allowed")
    users.close()


def _signed_in(http, name: str, password: str) -> SimpleNamespace:
    """A ``gr.Request`` of ``name`` signed in on the form (auth=local)."""
    from assistant.identity.auth import COOKIE

    form = {"username": name, "password": password, "next": "/"}
    login = TestClient(http.app, follow_redirects=False)
    return request(login.post("/login", data=form).cookies[COOKIE])


NOT_ADMIN = (gr.update(visible=False), "Problem: Your account is not an admin: type the admin key.",
             "")  # fmt: skip
AS_ACCOUNT = (gr.update(visible=True), "Signed in as admin with your account.", "")


def test_a_signed_in_admin_uses_the_admin_tab_without_the_key(gateway, tmp_path):
    from assistant.identity.users import UserStore

    users = UserStore(tmp_path / "users.sqlite")
    users.add("root", ["it"], admin=True, password="root-password")
    users.add("alice", [], password="alice-password")
    g = gateway(users=users, auth="local")
    root = _signed_in(g.http, "root", "root-password")
    alice = _signed_in(g.http, "alice", "alice-password")
    page = g.page

    # an admin account: in as the Admin tab opens (with the overviews), or by "Sign in"
    panel, note, key, rows, where, summary, _ = page.admin.admin_open(root)
    assert (panel, note, key) == AS_ACCOUNT and rows[0][:3] == ["docs", 3, 12]
    assert where == f"Docs folder: `{g.docs}`" and summary.endswith("(0 corrected).")
    assert page.admin.admin_login("", root) == AS_ACCOUNT
    assert page.admin.refresh("", root)[0] == rows
    assert page.admin.reindex_all("", root, lambda *_, **__: None).startswith("Reindexed: ")
    exported = Path(page.admin.export_feedback("", root))
    assert exported.read_text() == ""
    exported.unlink()

    # anyone else: the panel stays shut, and the server refuses each admin call
    assert page.admin.admin_open(alice) == (gr.update(),) * 7
    assert page.admin.admin_login("", alice) == NOT_ADMIN
    refused = "Problem: 'alice' is not an admin"
    assert page.admin.refresh("", alice) == ([], refused, refused, [])
    assert page.admin.reindex_all("", alice, lambda *_, **__: None) == refused
    with pytest.raises(gr.Error, match="not an admin"):
        page.admin.export_feedback("", alice)
    # the admin key still works, whoever is signed in
    signed_in = page.admin.admin_login("adm", alice)[:2]
    assert signed_in == (gr.update(visible=True), "Signed in as admin.")
    assert page.admin.refresh("adm", alice)[0] == rows
    users.close()


def test_behind_an_auth_proxy_its_admin_group_opens_the_admin_tab(gateway, tmp_path):
    from assistant.identity.auth import COOKIE
    from assistant.identity.users import UserStore

    users = UserStore(tmp_path / "users.sqlite")
    g = gateway(users=users, auth="header", trusted_proxies=["10.0.0.0/24"],
                auth_admin_group="it-admins")  # fmt: skip

    def through_proxy(name: str, groups: str):
        proxy = TestClient(g.http.app, client=("10.0.0.9", 4000), follow_redirects=False)
        page = proxy.get("/", headers={"X-Forwarded-User": name, "X-Forwarded-Groups": groups})
        return request(page.cookies[COOKIE])  # the session the page's own calls carry

    erin, finn = through_proxy("erin", "hr,it-admins"), through_proxy("finn", "hr")
    assert g.page.admin.admin_open(erin)[:3] == AS_ACCOUNT
    assert g.page.admin.refresh("", erin)[0][0][0] == "docs"
    assert g.page.admin.admin_open(finn) == (gr.update(),) * 7
    assert g.page.admin.admin_login("", finn) == NOT_ADMIN
    users.close()


def test_the_page_hands_gradio_the_controllers_methods_with_what_they_need():
    from gradio.helpers import special_args

    page = build_page("http://127.0.0.1:9/v1", MODEL)
    fns = {f.api_name: f for f in page.fns.values()}
    owners = {Chat: ("ask", "retry", "rate", "clear"),
              Conversations: ("list_history", "open_conversation", "rename_conversation",
                              "delete_conversation"),
              Admin: ("admin_login", "admin_open", "refresh", "upload_and_reindex",
                      "reindex_all", "export_feedback"),
              PageController: ("load_models", "whoami")}  # fmt: skip
    for owner, names in owners.items():
        for name in names:
            assert isinstance(fns[name].fn.__self__, owner), name
    # Gradio fills `request: gr.Request`, `data: gr.LikeData` and `progress` from the
    # handlers' runtime annotations and defaults
    marker, event = object(), like(1)
    filled, _, _, _ = special_args(fns["ask"].fn, ["q", [], MODEL, {}], request=marker)
    assert filled[-1] is marker
    filled, _, event_at, _ = special_args(fns["rate"].fn, [{}, ""], marker, event)
    assert event_at == 0 and filled[1:] == [{}, "", marker]
    assert isinstance(filled[0], gr.LikeData) and filled[0].index == 1
    assert fns["rate"].collects_event_data
    assert fns["upload_and_reindex"].tracks_progress and fns["reindex_all"].tracks_progress
    for name in ("list_history", "whoami", "admin_open"):
        assert special_args(fns[name].fn, [], request=marker)[0] == [marker], name
    for name in ("admin_login", "refresh", "export_feedback"):  # the admin acts as the person
        assert special_args(fns[name].fn, ["k"], request=marker)[0] == ["k", marker], name
    filled = special_args(fns["reindex_all"].fn, ["k"], request=marker)[0]
    assert filled[:2] == ["k", marker] and isinstance(filled[2], gr.Progress)
