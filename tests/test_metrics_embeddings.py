"""/metrics and /v1/embeddings, with fakes (real model: test_serve_integration)."""

import base64
import struct

import pytest
from fastapi.testclient import TestClient

from assistant.settings import load_settings
from tests.conftest import gateway_app
from tests.fakes import FakeEmbedder, FakeIndex, FakeUpstream

ASK = {"model": "helpdesk-demo", "messages": [{"role": "user", "content": "VPN says TP-204"}]}


@pytest.fixture
def client():
    app = gateway_app(
        load_settings(embedding_model="fake-embedder"),
        upstream=FakeUpstream(),
        index=FakeIndex(),
        embedder=FakeEmbedder(),
        engine_restarts=lambda: 2,
    )
    with TestClient(app) as c:
        yield c


def metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_tokens_ttft_retrieval_restarts(client):
    client.post("/v1/chat/completions", json=ASK)
    with client.stream("POST", "/v1/chat/completions", json={**ASK, "stream": True}) as r:
        list(r.iter_lines())
    client.post("/v1/chat/completions", json={**ASK, "model": "nope"})
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    assert metric(text, 'assistant_requests_total{route="/v1/chat/completions",status="200"}') == 2
    assert metric(text, 'assistant_requests_total{route="/v1/chat/completions",status="404"}') == 1
    assert metric(text, 'assistant_errors_total{type="not_found_error"}') == 1
    # 2 from the non-streamed usage, 4 content chunks ("echo: VPN says TP-204") streamed
    assert metric(text, "assistant_tokens_out_total") == 6
    assert metric(text, "assistant_time_to_first_token_seconds_count") == 1
    assert metric(text, "assistant_gateway_seconds_count") == 1  # the gateway's own share
    assert 0 < metric(text, "assistant_gateway_seconds_sum") < 5
    assert metric(text, "assistant_retrieval_seconds_count") == 2
    assert metric(text, "assistant_engine_restarts") == 2
    assert metric(text, 'assistant_request_seconds_count{route="/v1/chat/completions"}') == 3


def test_embeddings_in_openai_shape(client):
    body = client.post("/v1/embeddings", json={"model": "embed", "input": ["aa e", "e"]}).json()
    assert body["object"] == "list" and body["model"] == "embed"
    assert [d["embedding"] for d in body["data"]] == [[2.0, 1.0, 4.0], [0.0, 1.0, 1.0]]
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


def test_embeddings_by_model_id_and_base64(client):
    body = client.post(
        "/v1/embeddings",
        json={"model": "fake-embedder", "input": "aaa", "encoding_format": "base64"},
    ).json()
    raw = base64.b64decode(body["data"][0]["embedding"])
    assert list(struct.unpack("<3f", raw)) == [3.0, 0.0, 3.0]


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"model": "text-embedding-3-small", "input": "x"}, 404),
        ({"model": "embed", "input": []}, 400),
        ({"model": "embed", "input": [1, 2, 3]}, 400),
        ({"model": "embed", "input": ["ok", "  "]}, 400),
        ({"model": "embed"}, 400),
    ],
)
def test_embedding_errors(client, payload, status):
    resp = client.post("/v1/embeddings", json=payload)
    assert resp.status_code == status
    assert resp.json()["error"]["message"]
