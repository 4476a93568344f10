"""What the page shows, as text: chat messages as plain text, the sources under an answer,
a conversation for the API or reopened from it, dates and errors. Pure functions, no
Gradio, no HTTP."""

import re
import time
from typing import Any
from urllib.parse import quote

NOT_COVERED_TITLE = "Not covered by the documentation"
NOT_COVERED = (
    "The IT documentation does not cover this, so the answer above may be incomplete. "
    "**Open a ticket** below: a person from the Service Desk gets this conversation."
)
SOURCES_TITLE = "Sources"
LINK_BASE = "/v1/sources"


def text_of(content: Any) -> str:
    """Gradio message content (a string or a list of parts) as plain text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(text_of(part) for part in content)
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or "")
    return "" if content is None else str(content)


def readable(exc) -> str:
    """An OpenAI client's error as a sentence for the person asking."""
    try:
        message = exc.response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError, AttributeError):
        message = str(exc)
    if getattr(exc, "status_code", None) == 503:
        return "The assistant is starting up or restarting. Please try again shortly."
    if getattr(exc, "status_code", None) == 401:
        return "This page is not allowed to use the assistant (API key refused)."
    return f"Sorry, that did not work: {message}"


def plain(text: str) -> str:
    """Snippet text safe inside Markdown: no headings, emphasis, links or HTML."""
    text = re.sub(r"(^|\s)#{1,6}\s", r"\1", text)
    return re.sub(r"([\\`*_\[\]<>|])", r"\\\1", text)


def when(timestamp: float | None) -> str:
    """A Unix time as the page shows it (local time, to the minute); "" for none."""
    if not timestamp:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def sources_markdown(sources: list[dict], link_base: str) -> str:
    """The sources under an answer: numbered, titled, with section, page, snippet, link
    (the short-lived signed ``url`` the server gives each source; never a key)."""
    lines = []
    for s in sources:
        where = " > ".join(p for p in [s.get("section") or ""] if p)
        page = f", page {s['page']}" if s.get("page") else ""
        link = s.get("url") or f"{link_base}/{quote(s['source'])}"
        lines.append(
            f"**[{s['rank']}] [{s.get('title') or s['source']}]({link})**"
            + (f" — {where}" if where else "")
            + page
            + f"  \n<small>{s['source']} · score {s.get('score', 0):.2f}</small>  \n"
            + f"> {plain(s.get('snippet', ''))}"
        )
    return "\n\n".join(lines)


def sources_box(sources: list[dict], link_base: str) -> dict:
    """The chat message that lists an answer's sources (a titled box under it)."""
    return {
        "role": "assistant",
        "content": sources_markdown(sources, link_base),
        "metadata": {"title": f"{SOURCES_TITLE} ({len(sources)})", "status": "done"},
    }


def history_for_api(history: list[dict]) -> list[dict]:
    """The conversation as the API wants it: user and answer turns, no source boxes."""
    out = []
    for message in history:
        if (message.get("metadata") or {}).get("title"):
            continue  # a sources or notice box, not part of the conversation
        role = message.get("role")
        if role in {"user", "assistant"}:
            out.append({"role": role, "content": text_of(message.get("content"))})
    return out


def reopened(conversation: dict, link_base: str = LINK_BASE) -> tuple[list, dict]:
    """A stored conversation (``GET /v1/conversations/ID``) as the chat shows it: the
    messages, each answer followed by its sources box, and the rating map (chat index ->
    completion id) so reopened answers can still be rated."""
    messages = [
        m for m in conversation.get("messages", []) if m.get("role") in {"user", "assistant"}
    ]
    answers_by_text = {}
    for item in conversation.get("answers", []):
        answers_by_text.setdefault(item.get("answer", ""), []).append(item)
    history: list = []
    ratings: dict = {}
    for message in messages:
        history.append({"role": message["role"], "content": text_of(message.get("content"))})
        if message["role"] != "assistant":
            continue
        matches = answers_by_text.get(history[-1]["content"]) or []
        if not matches:
            continue
        item = matches.pop(0)
        ratings[str(len(history) - 1)] = {"completion_id": item.get("completion_id")}
        sources = item.get("sources") or []
        if sources:
            history.append(sources_box(sources, link_base))
    return history, ratings
