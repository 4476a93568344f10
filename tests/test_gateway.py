"""The gateway's HTTP contract, against a fake engine (real vLLM: test_serve_integration)."""

import json

import pytest
from fastapi.testclient import TestClient

from assistant.settings import load_settings
from tests.conftest import gateway_app
from tests.fakes import FakeUpstream

CHAT = {"model": "helpdesk-demo", "messages": [{"role": "user", "content": "VPN says TP-204"}]}


@pytest.fixture
def upstream():
    return FakeUpstream(models=("helpdesk-demo", "it-support"))


def make_client(upstream, **overrides):
    settings = load_settings(**overrides)
    return TestClient(gateway_app(settings, upstream=upstream))


@pytest.fixture
def client(upstream):
    with make_client(upstream) as c:
        yield c


def assert_openai_error(resp, status):
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "code"}
    assert err["message"]
    return err


def test_chat_passes_through(client, upstream):
    resp = client.post(
        "/v1/chat/completions",
        json={**CHAT, "temperature": 0.2, "seed": 7, "user": "u1", "some_new_field": [1]},
    )
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["message"]["content"] == "echo: VPN says TP-204"
    path, body = upstream.requests[-1]
    assert path == "/v1/chat/completions"
    assert body["temperature"] == 0.2 and body["seed"] == 7 and body["user"] == "u1"
    assert body["some_new_field"] == [1]  # unknown fields reach vLLM untouched


def test_retrieval_extension_is_not_sent_to_the_engine(client, upstream):
    resp = client.post("/v1/chat/completions", json={**CHAT, "retrieval": {"enabled": False}})
    assert resp.status_code == 200
    assert "retrieval" not in upstream.requests[-1][1]


def test_streaming_is_sse_ending_with_done(client):
    with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    words = [json.loads(e)["choices"][0]["delta"]["content"] for e in events[:-1]]
    assert "".join(words).strip() == "echo: VPN says TP-204"


def test_models_lists_base_and_adapters(client):
    ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert ids == ["helpdesk-demo", "it-support"]


def test_completions_pass_through(client):
    resp = client.post("/v1/completions", json={"model": "it-support", "prompt": "Hello"})
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["text"] == "echo: Hello"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"model": "helpdesk-demo"}).encode(), "messages"),
        (json.dumps({**CHAT, "messages": []}).encode(), "messages"),
        (json.dumps({**CHAT, "temperature": "hot"}).encode(), "temperature"),
        (json.dumps({**CHAT, "max_tokens": 0}).encode(), "max_tokens"),
        (json.dumps({**CHAT, "messages": [{"role": "wizard", "content": "x"}]}).encode(), "role"),
        (json.dumps({**CHAT, "retrieval": {"k": "many"}}).encode(), "retrieval.k"),
    ],
)
def test_bad_input_is_400_naming_the_problem(client, body, needle):
    resp = client.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    err = assert_openai_error(resp, 400)
    assert needle in err["message"]
    assert err["type"] == "invalid_request_error"


def test_unknown_model_is_404(client):
    err = assert_openai_error(
        client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-7"}), 404
    )
    assert "gpt-7" in err["message"] and "helpdesk-demo" in err["message"]


def test_body_too_large_is_413(upstream):
    with make_client(upstream, max_request_bytes=2048) as c:
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
        assert_openai_error(c.post("/v1/chat/completions", json=big), 413)


def test_engine_down_is_503_and_health_says_so(client, upstream):
    upstream.engine_state = "restarting"
    err = assert_openai_error(client.post("/v1/chat/completions", json=CHAT), 503)
    assert "restarting" in err["message"]
    health = client.get("/health")
    assert health.status_code == 503 and health.json()["engine"] == "restarting"
    upstream.engine_state = "ready"
    assert client.get("/health").json() == {
        "status": "ok",
        "engine": "ready",
        "model": "helpdesk-demo",
    }


def test_api_keys(upstream):
    with make_client(upstream, api_keys=["k1", "k2"], admin_key="adm") as c:
        assert_openai_error(c.get("/v1/models"), 401)
        assert_openai_error(c.get("/v1/models", headers={"Authorization": "Bearer nope"}), 401)
        assert c.get("/v1/models", headers={"Authorization": "Bearer k2"}).status_code == 200
        assert c.get("/v1/models", headers={"Authorization": "Bearer adm"}).status_code == 200
        assert c.get("/health").status_code == 200  # health is open to probes


def test_upstream_closed_on_shutdown(upstream):
    with make_client(upstream):
        pass
    assert upstream.closed
