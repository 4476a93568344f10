"""Conversation history per user: follow-ups join their conversation, each user sees only
their own, rename and delete, and a retention that really deletes."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from assistant.chat.answer_log import AnswerLog
from tests.fakes import FakeUpstream
from tests.test_gateway import assert_openai_error


@pytest.fixture
def http(tmp_path):
    from assistant.identity.users import UserStore
    from assistant.settings import load_settings
    from tests.conftest import gateway_app

    users = UserStore(tmp_path / "users.sqlite")
    for name in ("alice", "bob"):
        users.add(name, [])
    keys = {n: {"Authorization": f"Bearer {users.create_key(n)[1]}"} for n in ("alice", "bob")}
    app = gateway_app(load_settings(home=tmp_path), upstream=FakeUpstream(), users=users)
    with TestClient(app) as client:
        client.keys = keys
        yield client


def chat(http, who, messages, stream=False):
    body = {"model": "helpdesk-demo", "messages": messages, "stream": stream}
    resp = http.post("/v1/chat/completions", json=body, headers=http.keys[who])
    assert resp.status_code == 200
    return resp


def test_follow_ups_continue_their_conversation(http):
    first = [{"role": "user", "content": "My VPN says TP-204"}]
    answer = chat(http, "alice", first).json()["choices"][0]["message"]["content"]
    follow = [*first, {"role": "assistant", "content": answer},
              {"role": "user", "content": "and on my Mac?"}]  # fmt: skip
    chat(http, "alice", follow, stream=True)  # a streamed follow-up joins it too
    chat(http, "alice", [{"role": "user", "content": "Printer jammed"}])
    chat(http, "bob", first)

    listed = http.get("/v1/conversations", headers=http.keys["alice"]).json()["data"]
    assert [c["title"] for c in listed] == ["Printer jammed", "My VPN says TP-204"]
    assert [c["answers"] for c in listed] == [1, 2]
    vpn = http.get(f"/v1/conversations/{listed[1]['id']}", headers=http.keys["alice"]).json()
    assert [m["role"] for m in vpn["messages"]] == ["user", "assistant", "user", "assistant"]
    assert vpn["messages"][2]["content"] == "and on my Mac?"
    assert vpn["messages"][3]["content"] == "echo: and on my Mac?"
    assert len(vpn["answers"]) == 2 and vpn["answers"][0]["completion_id"]

    # bob's history is his own; alice's conversation does not exist for him
    assert len(http.get("/v1/conversations", headers=http.keys["bob"]).json()["data"]) == 1
    hidden = http.get(f"/v1/conversations/{listed[1]['id']}", headers=http.keys["bob"])
    missing = http.get("/v1/conversations/conv-nope", headers=http.keys["bob"])
    assert_openai_error(hidden, 404)
    assert hidden.json()["error"]["code"] == missing.json()["error"]["code"]
    assert_openai_error(
        http.delete(f"/v1/conversations/{listed[1]['id']}", headers=http.keys["bob"]), 404
    )


def test_rename_and_delete(http):
    chat(http, "alice", [{"role": "user", "content": "Wi-Fi drops in the depot"}])
    conv = http.get("/v1/conversations", headers=http.keys["alice"]).json()["data"][0]["id"]
    renamed = http.patch(f"/v1/conversations/{conv}", json={"title": "  Depot   Wi-Fi "},
                         headers=http.keys["alice"])  # fmt: skip
    assert renamed.json() == {"id": conv, "title": "Depot Wi-Fi"}
    assert_openai_error(
        http.patch(f"/v1/conversations/{conv}", json={"title": ""}, headers=http.keys["alice"]),
        400,
    )
    assert http.delete(f"/v1/conversations/{conv}", headers=http.keys["alice"]).status_code == 204
    assert http.get("/v1/conversations", headers=http.keys["alice"]).json()["data"] == []
    assert_openai_error(http.get(f"/v1/conversations/{conv}", headers=http.keys["alice"]), 404)
    assert_openai_error(http.get("/v1/conversations?limit=0", headers=http.keys["alice"]), 400)


def test_retention_really_deletes(tmp_path):
    log = AnswerLog(tmp_path / "answers.sqlite", retention_days=30)
    question = [{"role": "user", "content": "secret-ish question about payroll 4417"}]
    log.record(id="c1", user="alice", model="m", messages=question, answer="an answer")
    assert log.conversations("alice")
    assert log.purge(now=time.time() + 31 * 86400) == 1
    assert log.conversations("alice") == [] and log.get("c1", "alice") is None
    log.close()
    # secure_delete: the words are gone from the file, not only from the index
    for name in ("answers.sqlite", "answers.sqlite-wal"):
        path = tmp_path / name
        if path.exists():
            assert b"payroll 4417" not in path.read_bytes(), name
