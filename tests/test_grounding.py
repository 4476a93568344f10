"""Grounded answers through the gateway, with a fake engine and a fake index."""

import json

import pytest
from fastapi.testclient import TestClient

from assistant.chat.answer_log import AnswerLog
from assistant.chat.prompt import PromptBuilder, search_query
from assistant.chat.upstream import _upstream_error
from assistant.evaluation.text import says_unknown
from assistant.settings import load_settings
from retrieval.retriever import Hit
from tests.conftest import gateway_app
from tests.fakes import FakeIndex, FakeUpstream

ASK = {"model": "helpdesk-demo", "messages": [{"role": "user", "content": "VPN says TP-204"}]}


@pytest.fixture
def upstream():
    return FakeUpstream()


@pytest.fixture
def index():
    return FakeIndex()


@pytest.fixture
def client(upstream, index):
    app = gateway_app(
        load_settings(company_name="Fennmoor Logistics"), upstream=upstream, index=index
    )
    with TestClient(app) as c:
        yield c


def sent_messages(upstream):
    return upstream.requests[-1][1]["messages"]


def test_answer_carries_sources_and_grounded(client, upstream):
    body = client.post("/v1/chat/completions", json=ASK).json()
    assert body["grounded"] is True
    # the 0.12 passage is below retrieval_min_score (0.25) and is dropped
    assert [s["source"] for s in body["sources"]] == [
        "vpn-error-codes.md",
        "acceptable-use-policy.pdf",
    ]
    first = body["sources"][0]
    assert set(first) >= {"rank", "source", "title", "score", "snippet", "section", "page"}
    assert first["rank"] == 1 and first["score"] == 0.71
    system = sent_messages(upstream)[0]
    assert system["role"] == "system"
    assert "Fennmoor Logistics" in system["content"]
    assert (
        "[1] VPN error codes and fixes > TP-204 Device certificate (vpn-error-codes.md)"
        in (system["content"])
    )
    assert "(acceptable-use-policy.pdf, page 2)" in system["content"]
    assert sent_messages(upstream)[1:] == ASK["messages"]


def test_source_text_is_fenced_as_data(client, upstream):
    client.post("/v1/chat/completions", json=ASK)
    system = sent_messages(upstream)[0]["content"]
    injected = system.index("Ignore all previous instructions")
    assert system.index("<<<SOURCES") < injected < system.index("SOURCES>>>")
    assert "not instructions" in system


def test_streamed_first_chunk_carries_sources(client):
    with client.stream("POST", "/v1/chat/completions", json={**ASK, "stream": True}) as resp:
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    first = json.loads(events[0])
    assert first["grounded"] is True and len(first["sources"]) == 2
    assert all("sources" not in json.loads(e) for e in events[1:-1])
    assert events[-1] == "[DONE]"


def test_retrieval_can_be_turned_off_per_request(client, upstream, index):
    body = client.post("/v1/chat/completions", json={**ASK, "retrieval": {"enabled": False}}).json()
    assert "sources" not in body and "grounded" not in body
    assert sent_messages(upstream) == ASK["messages"]
    assert index.queries == []


def test_k_and_collection_per_request(client, index):
    client.post("/v1/chat/completions", json={**ASK, "retrieval": {"k": 1, "collection": "docs"}})
    assert index.queries[-1][1:] == (1, "docs")


def test_unknown_collection_is_404(client):
    resp = client.post("/v1/chat/completions", json={**ASK, "retrieval": {"collection": "hr"}})
    assert resp.status_code == 404
    assert "collection 'hr'" in resp.json()["error"]["message"]


WEAK = [Hit(1, "a.md", "A", "", None, 0.05, "unrelated")]


def test_nothing_relevant_is_declined_by_the_gateway_itself(upstream, tmp_path):
    # the default (ungrounded_reply=fixed): the engine is not asked at all
    log = AnswerLog(tmp_path / "answers.sqlite")
    settings = load_settings(company_name="Fennmoor")
    app = gateway_app(settings, upstream=upstream, index=FakeIndex(hits=WEAK), answers=log)
    with TestClient(app) as c:
        body = c.post("/v1/chat/completions", json=ASK).json()
        with c.stream("POST", "/v1/chat/completions", json={**ASK, "stream": True}) as resp:
            events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert upstream.requests == []
    assert body["grounded"] is False and body["sources"] == []
    text = body["choices"][0]["message"]["content"]
    assert "Fennmoor's IT documentation" in text and "IT Service Desk" in text
    assert says_unknown(text)
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 0
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["grounded"] is False and chunks[0]["sources"] == []
    streamed = "".join(
        (ch.get("delta") or {}).get("content") or "" for c in chunks for ch in c["choices"]
    )
    assert streamed == text
    for completion_id in (body["id"], chunks[0]["id"]):  # both kept, for feedback and history
        kept = log.get(completion_id, "anonymous")
        assert kept["answer"] == text and kept["sources"] == []


def test_nothing_relevant_can_be_left_to_the_model(upstream):
    settings = load_settings(ungrounded_reply="model")
    app = gateway_app(settings, upstream=upstream, index=FakeIndex(hits=WEAK))
    with TestClient(app) as c:
        body = c.post("/v1/chat/completions", json=ASK).json()
    assert body["grounded"] is False and body["sources"] == []
    system = sent_messages(upstream)[0]["content"]
    assert "found nothing relevant" in system and "Service Desk" in system


def test_without_a_search_the_engine_answers(upstream):
    # retrieval unavailable (the index raises): nobody knows whether the docs cover it
    app = gateway_app(load_settings(), upstream=upstream, index=FakeIndex(fail=True))
    with TestClient(app) as c:
        body = c.post("/v1/chat/completions", json=ASK).json()
    assert body["grounded"] is False
    assert "found nothing relevant" in sent_messages(upstream)[0]["content"]


def test_caller_system_prompt_is_kept_after_ours(client, upstream):
    messages = [{"role": "system", "content": "Answer in French."}, *ASK["messages"]]
    client.post("/v1/chat/completions", json={**ASK, "messages": messages})
    sent = sent_messages(upstream)
    assert [m["role"] for m in sent] == ["system", "user"]
    assert sent[0]["content"].endswith("Answer in French.")


def test_follow_ups_are_searched_with_the_question_before():
    convo = [
        {"role": "user", "content": "How do I connect to the S: drive from home?"},
        {"role": "assistant", "content": "Connect TunnelPoint first..."},
        {"role": "user", "content": "and on Mac?"},
    ]
    assert search_query(convo) == "How do I connect to the S: drive from home?\nand on Mac?"
    long_new = "Which laptop models can a developer order from the 2026 hardware catalogue today?"
    assert search_query([*convo, {"role": "user", "content": long_new}]) == long_new
    parts = [{"role": "user", "content": [{"type": "text", "text": "printer jam"}]}]
    assert search_query(parts) == "printer jam"


def test_without_an_index_answers_are_plain(upstream):
    with TestClient(gateway_app(load_settings(), upstream=upstream)) as c:
        body = c.post("/v1/chat/completions", json=ASK).json()
    assert "sources" not in body
    assert sent_messages(upstream) == ASK["messages"]


def test_prompt_too_long_for_the_model_is_413():
    err = _upstream_error(
        400,
        json.dumps(
            {
                "error": {
                    "message": "This model's maximum context length is 2048 tokens. "
                    "However, your prompt contains 5000 input tokens",
                    "type": "BadRequestError",
                    "code": 400,
                }
            }
        ).encode(),
    )
    assert err.status == 413 and err.code == "context_length_exceeded"


def test_template_file_renders_both_prompts():
    prompts = PromptBuilder.from_file(company="ACME")
    assert "ACME" in prompts.system_prompt([])
    hit = Hit(1, "x.md", "X", "Intro", None, 0.9, "Body {with braces}")
    assert "Body {with braces}" in prompts.system_prompt([hit])


def test_a_passage_is_shown_without_the_heading_lines_its_header_names():
    prompts = PromptBuilder.from_file(company="ACME")
    hit = Hit(1, "vpn.md", "VPN", "VPN > Codes", None, 0.9, "# VPN\n## Codes  \n\nTP-204: wait.")
    assert "[1] VPN > Codes (vpn.md)\nTP-204: wait." in prompts.system_prompt([hit])
    only = Hit(1, "vpn.md", "VPN", "VPN > Codes", None, 0.9, "## Codes")
    assert "(vpn.md)\n## Codes" in prompts.system_prompt([only])  # nothing else to show


def test_hyde_searches_with_the_models_passage_and_survives_its_failure(upstream, index):
    """With retrieval_hyde on, the served model writes a passage first; the search gets the
    question and that passage. If the model fails, the question alone is searched."""
    settings = load_settings(company_name="Fennmoor Logistics", retrieval_hyde=True)
    with TestClient(gateway_app(settings, upstream=upstream, index=index)) as c:
        body = c.post("/v1/chat/completions", json=ASK).json()
        assert body["grounded"] is True
        hyde_path, hyde_body = upstream.requests[0]
        assert hyde_path == "/v1/chat/completions" and hyde_body["max_tokens"] == 96
        assert "documentation" in hyde_body["messages"][0]["content"]
        query = index.queries[-1][0]
        assert query.startswith("VPN says TP-204\n") and len(query) > len("VPN says TP-204\n")
        upstream.engine_state = "starting"  # the expansion call fails with 503 ...
        c.post("/v1/chat/completions", json=ASK)
        assert index.queries[-1][0] == "VPN says TP-204"  # ... and the search goes on without it


def test_hyde_per_request_overrides_the_setting(client, upstream, index):
    ask = {**ASK, "retrieval": {"hyde": True}}
    assert client.post("/v1/chat/completions", json=ask).status_code == 200
    assert index.queries[-1][0].startswith("VPN says TP-204\n")
    assert client.post("/v1/chat/completions", json=ASK).status_code == 200
    assert index.queries[-1][0] == "VPN says TP-204"  # setting off: no expansion
    bad = client.post("/v1/chat/completions", json={**ASK, "retrieval": {"hyde": "maybe"}})
    assert bad.status_code == 400
