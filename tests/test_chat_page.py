"""The chat page's helpers; the page itself is exercised in test_serve_integration."""

import httpx
import openai

from ui.chat_page import _readable, text_of


def test_text_of_handles_gradio_content_shapes():
    assert text_of("plain") == "plain"
    assert text_of([{"type": "text", "text": "a"}, "b"]) == "a b"
    assert text_of(None) == ""


def _status_error(status: int, message: str) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://x/v1/chat/completions")
    response = httpx.Response(
        status, request=request, json={"error": {"message": message, "type": "t", "code": None}}
    )
    return openai.APIStatusError(message, response=response, body=None)


def test_errors_become_readable_sentences():
    assert "starting up" in _readable(_status_error(503, "engine down"))
    text = _readable(_status_error(400, "'messages': too long"))
    assert text.startswith("Sorry") and "too long" in text and "{" not in text
