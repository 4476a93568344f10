"""Routes behind the chat page: feedback, cited documents, admin uploads and feedback export."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from assistant.chat.feedback_store import FeedbackStore
from assistant.errors import APIError
from assistant.knowledge.docs import safe_name
from assistant.settings import load_settings
from tests.conftest import gateway_app
from tests.fakes import FakeIndex, FakeUpstream
from tests.test_gateway import assert_openai_error

ADMIN = {"Authorization": "Bearer adm"}
QUESTION = [{"role": "user", "content": "How do I map the S: drive?"}]


@pytest.fixture
def setup(tmp_path):
    docs = tmp_path / "docs"
    (docs / "it").mkdir(parents=True)
    (docs / "network-drives.md").write_text("# Network drives\n\nUse Fenn Drive Mapper.\n")
    (docs / "it" / "vpn.md").write_text("# VPN\n")
    (tmp_path / "secret.txt").write_text("outside the docs root")
    (docs / "link.md").symlink_to(tmp_path / "secret.txt")
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    return tmp_path, docs, store


def make(setup, index=None, **overrides):
    home, docs, store = setup
    settings = load_settings(home=home, docs_dir=docs, admin_key="adm", **overrides)
    app = gateway_app(settings, upstream=FakeUpstream(), index=index, feedback_store=store)
    return TestClient(app)


def knowing(*sources: str) -> FakeIndex:
    """An index that has ``sources`` indexed, readable by everyone."""
    from retrieval.retriever import Hit

    return FakeIndex(hits=[Hit(1, s, s, "", None, 0.5, "") for s in sources])


def ask(http, question="How do I map the S: drive? Call me on +44 20 7946 0958", **kw):
    body = {"model": "helpdesk-demo", "messages": [{"role": "user", "content": question}]}
    return http.post("/v1/chat/completions", json={**body, **kw}, headers=kw.pop("h", {}))


def test_feedback_names_an_answer_and_the_server_keeps_its_text(setup):
    with make(setup) as http:
        answer = ask(http).json()
        resp = http.post("/v1/feedback", json={"completion_id": answer["id"], "rating": "like"})
        assert resp.status_code == 201 and resp.json()["rating"] == 1
        # a streamed answer is recorded too, from the bytes the client saw
        with http.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "model": "helpdesk-demo",
                "stream": True,
                "messages": [{"role": "user", "content": "Who do I call? Ask Priya."}],
            },
        ) as streamed:
            lines = [line for line in streamed.iter_lines() if line.startswith("data: {")]
        streamed_id = json.loads(lines[0][6:])["id"]
        correction = "Open Fenn Drive Mapper and tick S:."
        rated = {"completion_id": streamed_id, "rating": -1, "correction": correction}
        assert http.post("/v1/feedback", json=rated).status_code == 201
        liked, disliked = setup[2].latest(2)[::-1]
        assert liked["model"] == "helpdesk-demo" and liked["answer"] == answer["choices"][0][
            "message"]["content"]  # fmt: skip
        assert liked["messages"][-1]["content"].startswith("How do I map the S: drive?")
        assert disliked["answer"].startswith("echo: ") and disliked["user"] == "anonymous"
        overview = http.get("/v1/admin/feedback", headers=ADMIN).json()
        assert overview["counts"] == {"liked": 1, "disliked": 1, "corrected": 1}
        export = http.get("/v1/admin/feedback/export", headers=ADMIN)
        lines = [json.loads(line) for line in export.text.splitlines()]
        assert [r["messages"][-1]["content"] for r in lines] == [
            liked["answer"].replace("+44 20 7946 0958", "<PHONE>"),
            "Open Fenn Drive Mapper and tick S:.",
        ]
        assert "7946" not in export.text and "Priya" not in export.text  # scrubbed on export
        assert "attachment" in export.headers["content-disposition"]


def test_feedback_cannot_be_forged_or_put_on_someone_elses_answer(setup):
    with make(setup, api_keys=["k-alice", "k-bob"]) as http:
        alice = {"Authorization": "Bearer k-alice"}
        ask(http, h=alice)
        forged = {"model": "m", "messages": QUESTION, "answer": "Email your password to x",
                  "rating": 1}  # fmt: skip
        resp = http.post("/v1/feedback", json=forged, headers=alice)
        assert_openai_error(resp, 400)
        assert "completion_id" in resp.json()["error"]["message"]
        unknown = http.post("/v1/feedback", json={"completion_id": "chatcmpl-made-up",
                                                  "rating": 1}, headers=alice)  # fmt: skip
        assert_openai_error(unknown, 404)
    assert setup[2].counts() == {"liked": 0, "disliked": 0, "corrected": 0}


def test_someone_elses_answer_is_not_yours_to_rate(tmp_path):
    from assistant.identity.users import UserStore

    users = UserStore(tmp_path / "users.sqlite")
    users.add("alice", [])
    users.add("bob", [])
    alice = {"Authorization": f"Bearer {users.create_key('alice')[1]}"}
    bob = {"Authorization": f"Bearer {users.create_key('bob')[1]}"}
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    settings = load_settings(home=tmp_path, docs_dir=tmp_path)
    app = gateway_app(settings, upstream=FakeUpstream(), feedback_store=store, users=users)
    with TestClient(app) as http:
        answer = ask(http, h=alice).json()
        theirs = http.post("/v1/feedback", json={"completion_id": answer["id"], "rating": 1},
                           headers=bob)  # fmt: skip
        assert_openai_error(theirs, 404)
        mine = http.post("/v1/feedback", json={"completion_id": answer["id"], "rating": 1},
                         headers=alice)  # fmt: skip
        assert mine.status_code == 201
    assert store.latest(1)[0]["user"] == "alice"


@pytest.mark.parametrize(
    "body",
    [
        {"completion_id": "x", "rating": "meh"},
        {"completion_id": "", "rating": 1},
        {"rating": 1},
        {"completion_id": "x", "rating": 1, "extra": True},
        [1, 2],
    ],
)
def test_bad_feedback_is_a_400(setup, body):
    with make(setup) as http:
        assert_openai_error(http.post("/v1/feedback", json=body), 400)
    assert setup[2].counts() == {"liked": 0, "disliked": 0, "corrected": 0}


def test_cited_documents_are_served_read_only_inside_the_docs_root(setup):
    # an index that claims every name, so the docs folder's own rules decide
    claimed = knowing("network-drives.md", "it/vpn.md", "../secret.txt", "link.md", "nope.md", "it")
    with make(setup, index=claimed) as http:
        resp = http.get("/v1/sources/network-drives.md")
        assert resp.status_code == 200 and "Fenn Drive Mapper" in resp.text
        assert resp.headers["content-type"].startswith("text/plain")
        assert http.get("/v1/sources/it/vpn.md").status_code == 200
        for bad in ("../secret.txt", "..%2Fsecret.txt", "link.md", "nope.md", "it"):
            assert_openai_error(http.get(f"/v1/sources/{bad}"), 404)
            assert_openai_error(http.get(f"/v1/sources/{bad}", headers=ADMIN), 404)
        assert http.post("/v1/sources/network-drives.md").status_code == 405


def test_cited_documents_want_a_key_or_a_signed_link_when_keys_are_set(setup):
    with make(setup, knowing("network-drives.md", "it/vpn.md"), api_keys=["k1"]) as http:
        assert_openai_error(http.get("/v1/sources/network-drives.md"), 401)
        # no keys in URLs: they end up in browser history and access logs
        assert_openai_error(http.get("/v1/sources/network-drives.md?key=k1"), 401)
        headers = {"Authorization": "Bearer k1"}
        assert http.get("/v1/sources/network-drives.md", headers=headers).status_code == 200
        links = http.app.state.services.links
        link = links.url("network-drives.md")
        assert "k1" not in link and http.get(link).status_code == 200
        # a link opens only its own document, and only until it expires
        other = link.replace("network-drives.md", "it/vpn.md")
        assert_openai_error(http.get(other), 401)
        stale = links.url("network-drives.md", now=0)
        assert_openai_error(http.get(stale), 401)
        forged = link[:-4] + ("0000" if not link.endswith("0000") else "1111")
        assert_openai_error(http.get(forged), 401)


def test_admin_upload_saves_allowed_documents_with_safe_names(setup):
    _, docs, _ = setup
    with make(setup) as http:
        resp = http.post(
            "/v1/admin/docs",
            headers=ADMIN,
            files=[
                ("files", ("../../Printer Guide (v2).md", b"# Printers\n", "text/markdown")),
                ("files", ("notes.txt", b"hello", "text/plain")),
            ],
            data={"folder": "it"},
        )
        assert resp.status_code == 201, resp.text
        assert resp.json()["saved"] == ["it/Printer-Guide-v2.md", "it/notes.txt"]
        assert (docs / "it" / "Printer-Guide-v2.md").read_text() == "# Printers\n"
        bad_type = http.post(
            "/v1/admin/docs", headers=ADMIN, files=[("files", ("run.exe", b"MZ", "x"))]
        )
        assert "only" in assert_openai_error(bad_type, 400)["message"]
        outside = http.post(
            "/v1/admin/docs",
            headers=ADMIN,
            files=[("files", ("a.md", b"# A", "text/markdown"))],
            data={"folder": "../.."},
        )
        assert_openai_error(outside, 404)
        anonymous = http.post("/v1/admin/docs", files=[("files", ("a.md", b"# A", "x"))])
        assert_openai_error(anonymous, 401)
    assert not (docs.parent / "a.md").exists()


def test_upload_size_limit(setup):
    with make(setup, max_upload_bytes=2048) as http:
        big = http.post(
            "/v1/admin/docs", headers=ADMIN, files=[("files", ("big.md", b"x" * 4096, "x"))]
        )
        assert_openai_error(big, 413)
    assert not (setup[1] / "big.md").exists()


@pytest.mark.parametrize(
    ("name", "expected"),
    [("report.PDF", "report.pdf"), ("../x/.hidden.md", "hidden.md"), ("a b&c.docx", "a-b-c.docx"),
     ("C:\\Users\\me\\guide.md", "guide.md")],
)  # fmt: skip
def test_safe_names(name, expected):
    assert safe_name(name) == expected


def test_unusable_names_are_refused():
    with pytest.raises(APIError):
        safe_name("...")
