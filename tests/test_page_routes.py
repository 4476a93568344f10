"""Routes behind the chat page: feedback, cited documents, admin uploads and feedback export."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from assistant.app import create_app
from assistant.docs_service import safe_name
from assistant.errors import APIError
from assistant.settings import load_settings
from finetune.feedback import FeedbackStore
from tests.fakes import FakeUpstream
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


def make(setup, **overrides):
    home, docs, store = setup
    settings = load_settings(home=home, docs_dir=docs, admin_key="adm", **overrides)
    return TestClient(create_app(settings, upstream=FakeUpstream(), feedback_store=store))


def test_feedback_is_stored_with_question_answer_sources_and_model(setup):
    with make(setup) as http:
        resp = http.post(
            "/v1/feedback",
            json={
                "model": "helpdesk-demo",
                "messages": QUESTION,
                "answer": "Use Fenn Drive Mapper [1].",
                "rating": "like",
                "sources": [{"rank": 1, "source": "network-drives.md"}],
            },
        )
        assert resp.status_code == 201 and resp.json()["rating"] == 1
        http.post(
            "/v1/feedback",
            json={"model": "m", "messages": QUESTION, "answer": "Call HR", "rating": -1,
                  "correction": "Open Fenn Drive Mapper and tick S:."},
        )  # fmt: skip
        row = setup[2].latest(2)[1]
        assert row["model"] == "helpdesk-demo" and row["messages"] == QUESTION
        assert row["sources"] == [{"rank": 1, "source": "network-drives.md"}]
        overview = http.get("/v1/admin/feedback", headers=ADMIN).json()
        assert overview["counts"] == {"liked": 1, "disliked": 1, "corrected": 1}
        export = http.get("/v1/admin/feedback/export", headers=ADMIN)
        lines = [json.loads(line) for line in export.text.splitlines()]
        assert [r["messages"][-1]["content"] for r in lines] == [
            "Use Fenn Drive Mapper [1].",
            "Open Fenn Drive Mapper and tick S:.",
        ]
        assert "attachment" in export.headers["content-disposition"]


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "messages": QUESTION, "answer": "a", "rating": "meh"},
        {"model": "m", "messages": [], "answer": "a", "rating": 1},
        {"model": "m", "messages": [{"role": "assistant", "content": "x"}], "answer": "a",
         "rating": 1},
        {"model": "m", "messages": QUESTION, "answer": "a", "rating": 1, "extra": True},
    ],
)  # fmt: skip
def test_bad_feedback_is_a_400(setup, body):
    with make(setup) as http:
        assert_openai_error(http.post("/v1/feedback", json=body), 400)
    assert setup[2].counts() == {"liked": 0, "disliked": 0, "corrected": 0}


def test_cited_documents_are_served_read_only_inside_the_docs_root(setup):
    with make(setup) as http:
        resp = http.get("/v1/sources/network-drives.md")
        assert resp.status_code == 200 and "Fenn Drive Mapper" in resp.text
        assert resp.headers["content-type"].startswith("text/plain")
        assert http.get("/v1/sources/it/vpn.md").status_code == 200
        for bad in ("../secret.txt", "..%2Fsecret.txt", "link.md", "nope.md", "it"):
            assert_openai_error(http.get(f"/v1/sources/{bad}"), 404)
        assert http.post("/v1/sources/network-drives.md").status_code == 405


def test_cited_documents_want_a_key_when_keys_are_set(setup):
    with make(setup, api_keys=["k1"]) as http:
        assert_openai_error(http.get("/v1/sources/network-drives.md"), 401)
        assert http.get("/v1/sources/network-drives.md?key=k1").status_code == 200
        headers = {"Authorization": "Bearer k1"}
        assert http.get("/v1/sources/network-drives.md", headers=headers).status_code == 200


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
