"""The chat page, first form: a streaming chat over the gateway's OpenAI API.

Sources, feedback, the model picker and the admin tab come with the chat-page issue.
"""

from __future__ import annotations

from typing import Any

TITLE = "IT help desk"
HELP = (
    "Ask about VPN, passwords and MFA, laptops, printing, Wi-Fi, email, shared drives and "
    "software requests. Answers stream as they are written."
)


def text_of(content: Any) -> str:
    """Gradio message content (a string or a list of parts) as plain text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(text_of(part) for part in content)
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or "")
    return "" if content is None else str(content)


def build_page(
    api_base: str,
    model: str,
    api_key: str | None = None,
    *,
    notice: str | None = None,
    max_tokens: int = 256,
):
    """A Gradio ``ChatInterface`` that streams answers from ``api_base`` (…/v1).

    ``notice`` is shown under the help text, e.g. that the model is only a pipeline demo.
    """
    import gradio as gr
    import openai

    client = openai.OpenAI(
        base_url=api_base, api_key=api_key or "unused", max_retries=0, timeout=300
    )

    def respond(message: str, history: list[dict]):
        messages = [{"role": m["role"], "content": text_of(m["content"])} for m in history]
        messages.append({"role": "user", "content": message})
        answer = ""
        try:
            stream = client.chat.completions.create(
                model=model, messages=messages, stream=True, max_tokens=max_tokens
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    answer += chunk.choices[0].delta.content
                    yield answer
        except openai.APIStatusError as exc:
            yield _readable(exc)
        except openai.APIConnectionError:
            yield "The assistant cannot be reached right now. Please try again in a minute."
        if not answer:
            yield "(The model returned an empty answer. Try rephrasing the question.)"

    description = HELP + (f"\n\n**{notice}**" if notice else "")
    return gr.ChatInterface(respond, title=TITLE, description=description, fill_height=True)


def _readable(exc) -> str:
    try:
        message = exc.response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError, AttributeError):
        message = str(exc)
    if exc.status_code == 503:
        return "The assistant is starting up or restarting. Please try again shortly."
    return f"Sorry, that did not work: {message}"
