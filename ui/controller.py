"""What the chat page does, over the gateway's HTTP API: ``PageController``.

One method per event of the page (ask, retry, rate, the history and admin actions...; the
"Open a ticket" action's are ``ui.tickets.Tickets``, as ``PageController.tickets``): each
takes the event's inputs and returns (or yields) its outputs as Gradio values and updates,
so the page's behaviour can be driven without a browser, against any ``Client``.
``Client`` is the gateway as the page sees it; the helpers below are pure.

Like the page, it imports nothing from ``assistant``: everything goes over HTTP.
"""

# No `from __future__ import annotations` here: Gradio reads the `gr.Request`, `gr.LikeData`
# annotations of the handlers at runtime to know which argument gets what; they must be
# the real classes, hence gradio imported at the top (the CLI never imports ``ui``).
import re
import tempfile
import time
from typing import Any
from urllib.parse import quote

import gradio as gr

ESCALATION = (
    "**The IT documentation does not cover this.** The answer above may be incomplete, so "
    "please contact the Service Desk. To get help fast, tell them:\n"
    "- what you were trying to do, and on which device (laptop, phone, depot scanner...);\n"
    "- the exact error message or code (for example TP-204), and when it started;\n"
    "- what you have already tried.\n\n"
    "Your question, to copy into the ticket:\n\n> {question}"
)  # when no ticket system is configured; otherwise the page opens the ticket (ui.tickets)
NOT_COVERED_TITLE = "Not covered by the documentation"
NOT_COVERED = (
    "The IT documentation does not cover this, so the answer above may be incomplete. "
    "**Open a ticket** below: a person from the Service Desk gets this conversation."
)
SOURCES_TITLE = "Sources"
SESSION_COOKIE = "hd_session"  # the gateway's sign-in cookie, passed on to its API
LINK_BASE = "/v1/sources"


def session_of(request) -> str | None:
    """The sign-in session of the person using the page (from their browser's cookie)."""
    if request is None:
        return None
    from http.cookies import CookieError, SimpleCookie

    jar = SimpleCookie()
    try:
        jar.load(request.headers.get("cookie", ""))
    except CookieError:
        return None
    morsel = jar.get(SESSION_COOKIE)
    return morsel.value if morsel is not None else None


def text_of(content: Any) -> str:
    """Gradio message content (a string or a list of parts) as plain text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(text_of(part) for part in content)
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or "")
    return "" if content is None else str(content)


def _readable(exc) -> str:
    try:
        message = exc.response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError, AttributeError):
        message = str(exc)
    if getattr(exc, "status_code", None) == 503:
        return "The assistant is starting up or restarting. Please try again shortly."
    if getattr(exc, "status_code", None) == 401:
        return "This page is not allowed to use the assistant (API key refused)."
    return f"Sorry, that did not work: {message}"


def _plain(text: str) -> str:
    """Snippet text safe inside Markdown: no headings, emphasis, links or HTML."""
    text = re.sub(r"(^|\s)#{1,6}\s", r"\1", text)
    return re.sub(r"([\\`*_\[\]<>|])", r"\\\1", text)


def _when(timestamp: float | None) -> str:
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
            + f"> {_plain(s.get('snippet', ''))}"
        )
    return "\n\n".join(lines)


def _sources_box(sources: list[dict], link_base: str) -> dict:
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
            history.append(_sources_box(sources, link_base))
    return history, ratings


class PageError(Exception):
    def __init__(self, message: str, status: int, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code  # the API error's code, e.g. "escalations_disabled"


class Client:
    """The gateway, as the page uses it. ``http``: the HTTP client to go through (default:
    a new ``httpx.Client``; tests pass a ``fastapi.testclient.TestClient``), used both for
    the page's own calls and by the OpenAI client."""

    def __init__(self, api_base: str, api_key: str | None, http=None) -> None:
        import httpx
        import openai

        self.api_base = api_base.rstrip("/")
        self.api_key = api_key
        self.http = http if http is not None else httpx.Client(timeout=60)
        self.openai = openai.OpenAI(
            base_url=self.api_base,
            api_key=api_key or "unused",
            max_retries=0,
            timeout=300,
            http_client=http,
        )

    def headers(self, key: str | None = None, session: str | None = None) -> dict:
        key = key or self.api_key
        out = {"Authorization": f"Bearer {key}"} if key else {}
        if session:
            out["Cookie"] = f"{SESSION_COOKIE}={session}"
        return out

    def as_person(self, session: str | None) -> dict:
        """Per-request headers for the OpenAI client that make it act as the signed-in
        person: their session, and no key at all (a key would win over the session)."""
        if not session:
            return {}
        import openai

        return {"Authorization": openai.Omit(), "Cookie": f"{SESSION_COOKIE}={session}"}

    def openai_headers(self, session: str | None) -> dict:
        """Per-request headers for the OpenAI client: as the signed-in person when there is
        a session, else as the page's key; with neither, no ``Authorization`` at all (the
        OpenAI client would send "Bearer unused", which an open gateway refuses)."""
        if session or self.api_key:
            return self.as_person(session)
        import openai

        return {"Authorization": openai.Omit()}

    def models(self, session: str | None = None) -> list[str]:
        try:
            return [
                m.id for m in self.openai.models.list(extra_headers=self.openai_headers(session))
            ]
        except Exception:  # the page still opens; the picker falls back to the default
            return []

    def request(
        self, method: str, path: str, key: str | None = None, session: str | None = None, **kw
    ) -> Any:
        headers = self.headers(key, session)
        resp = self.http.request(method, self.api_base + path, headers=headers, **kw)
        if resp.status_code >= 400:
            code = None
            try:
                error = resp.json()["error"]
                message, code = error["message"], error.get("code")
            except (ValueError, KeyError, TypeError, AttributeError):
                message = resp.text[:200]
            raise PageError(message, resp.status_code, code)
        return resp


class PageController:
    """The page's behaviour: the gateway through ``client``, ``model`` the default model,
    answers of at most ``max_tokens``. Methods are the page's event handlers, with the
    event's inputs as parameters and its outputs as return values."""

    def __init__(
        self, client: Client, model: str, *, max_tokens: int = 256, link_base: str = LINK_BASE
    ) -> None:
        self.client = client
        self.model = model
        self.max_tokens = max_tokens
        self.link_base = link_base
        from ui.tickets import Tickets  # here: it uses this module's helpers

        self.tickets = Tickets(client)  # the "Open a ticket" action
        from ui.analytics import AdminAnalytics

        self.analytics = AdminAnalytics(client)  # the Admin tab's analytics section
        from ui.admin_tickets import AdminTickets

        self.failed_tickets = AdminTickets(client)  # the Admin tab's undelivered tickets

    # --- chat ------------------------------------------------------------------------
    def ask(
        self, question: str, history: list, model_name: str, answers: dict, request: gr.Request
    ):
        """Stream the answer to ``question``; outputs: chat, rating map, question box."""
        question = (question or "").strip()
        if not question:
            yield history, answers, gr.update()
            return
        import openai

        client = self.client
        history = [*history, {"role": "user", "content": question}]
        messages = history_for_api(history)
        history.append({"role": "assistant", "content": ""})
        yield history, answers, ""
        answer, sources, grounded, completion_id = "", [], True, None
        try:
            stream = client.openai.chat.completions.create(
                model=model_name or self.model,
                messages=messages,
                stream=True,
                max_tokens=self.max_tokens,
                extra_headers=client.openai_headers(session_of(request)),
            )
            for chunk in stream:
                completion_id = completion_id or chunk.id
                extra = chunk.model_extra or {}
                if "sources" in extra:
                    sources, grounded = extra["sources"] or [], bool(extra.get("grounded"))
                if chunk.choices and chunk.choices[0].delta.content:
                    answer += chunk.choices[0].delta.content
                    history[-1] = {"role": "assistant", "content": answer}
                    yield history, answers, gr.update()
        except (openai.APIStatusError, openai.APIConnectionError) as exc:  # a sentence, no trace
            if isinstance(exc, openai.APIStatusError):
                text = _readable(exc)
            else:
                text = "The assistant cannot be reached right now. Please try again in a minute."
            history[-1] = {"role": "assistant", "content": text}
            yield history, answers, gr.update()
            return
        if not answer:
            answer = "(The model returned an empty answer. Try rephrasing the question.)"
            history[-1] = {"role": "assistant", "content": answer}
        answers = {
            **answers,
            # what a rating names: the server keeps the question and answer itself
            str(len(history) - 1): {"completion_id": completion_id},
        }
        if sources:
            history.append(_sources_box(sources, self.link_base))
        if not grounded:
            history.append(
                {
                    "role": "assistant",
                    "content": NOT_COVERED,
                    "metadata": {"title": NOT_COVERED_TITLE, "status": "done"},
                }
            )
        yield history, answers, gr.update()

    def retry(self, history: list, model_name: str, answers: dict, request: gr.Request):
        """Ask the last question again, in place of its answer."""
        last_user = max((i for i, m in enumerate(history) if m["role"] == "user"), default=None)
        if last_user is None:
            yield history, answers, gr.update()
            return
        question = text_of(history[last_user]["content"])
        yield from self.ask(question, history[:last_user], model_name, answers, request)

    def clear(self):
        """An empty chat, no answers to rate, no feedback note."""
        return [], {}, ""

    def rate(self, data: gr.LikeData, answers: dict, correction: str, request: gr.Request):
        """Save a thumbs up or down (with the correction, if any); the feedback note."""
        index = data.index if isinstance(data.index, int) else data.index[0]
        # the thumbs sit under a group of messages (answer + its sources box): rate the answer
        earlier = [int(k) for k in answers if int(k) <= index]
        if not earlier:
            return "Only answers can be rated."
        record = answers[str(max(earlier))]
        liked = data.liked is True or data.liked == "Like"
        try:
            self.client.request(
                "POST",
                "/feedback",
                session=session_of(request),
                json={
                    "completion_id": record["completion_id"],
                    "rating": "like" if liked else "dislike",
                    "correction": (correction or None) if not liked else None,
                },
            )
        except PageError as exc:
            return f"Your rating could not be saved: {exc}"
        if liked:
            return "Thanks, your rating was saved."
        if correction:
            return "Thanks, your rating and correction were saved."
        return (
            "Thanks, your rating was saved. If you know the right answer, write it in the "
            "correction box and press the thumbs down again."
        )

    # --- history ---------------------------------------------------------------------
    def list_history(self, request: gr.Request):
        """The person's conversations for the picker, and a note."""
        try:
            found = self.client.request("GET", "/conversations", session=session_of(request)).json()
        except PageError as exc:
            return gr.update(choices=[], value=None), f"History is not available: {exc}"
        choices = [(f"{c['title']} · {_when(c['updated_at'])}", c["id"]) for c in found["data"]]
        note = "" if choices else "No conversations yet: ask something first."
        return gr.update(choices=choices, value=choices[0][1] if choices else None), note

    def open_conversation(self, conversation: str | None, request: gr.Request):
        """A stored conversation into the chat; outputs: chat, rating map, note, tabs."""
        if not conversation:
            return gr.update(), gr.update(), "Pick a conversation first.", gr.update()
        try:
            found = self.client.request(
                "GET", f"/conversations/{quote(conversation)}", session=session_of(request)
            ).json()
        except PageError as exc:
            return gr.update(), gr.update(), f"It could not be opened: {exc}", gr.update()
        history, ratings = reopened(found, self.link_base)
        return history, ratings, "", gr.Tabs(selected="ask")

    def rename_conversation(self, conversation: str | None, title: str, request: gr.Request):
        if not conversation or not (title or "").strip():
            return "Pick a conversation and type its new title."
        try:
            self.client.request(
                "PATCH", f"/conversations/{quote(conversation)}",
                session=session_of(request), json={"title": title},
            )  # fmt: skip
        except PageError as exc:
            return f"It could not be renamed: {exc}"
        return "Renamed."

    def delete_conversation(self, conversation: str | None, request: gr.Request):
        if not conversation:
            return "Pick a conversation first."
        try:
            self.client.request(
                "DELETE", f"/conversations/{quote(conversation)}", session=session_of(request)
            )
        except PageError as exc:
            return f"It could not be deleted: {exc}"
        return "Deleted for good."

    # --- admin -----------------------------------------------------------------------
    # Each admin call goes with the admin key the person typed or, with none, as the
    # signed-in person (their session): an admin account needs no key, others are refused.
    def admin_login(self, key: str, request: gr.Request):
        """Check the admin key, or with none typed, that the signed-in person is an admin;
        outputs: the admin panel, a note, the key kept for later ("": the session's)."""
        key = (key or "").strip()
        session = session_of(request)
        try:
            self.client.request("GET", "/admin/index", key, session=session)
        except PageError as exc:
            if exc.status not in {401, 403}:
                message = str(exc)
            elif key:
                message = "Wrong admin key."
            elif session and exc.status == 403:
                message = "Your account is not an admin: type the admin key."
            else:
                message = "Type the admin key."
            return gr.update(visible=False), f"Problem: {message}", ""
        except Exception:
            return gr.update(visible=False), "Problem: The server cannot be reached.", ""
        if key:
            return gr.update(visible=True), "Signed in as admin.", key
        return gr.update(visible=True), "Signed in as admin with your account.", ""

    def admin_open(self, request: gr.Request):
        """When the Admin tab opens: a signed-in admin is let straight in (the panel, a note,
        no key, and the overviews as ``refresh``); nothing changes for anyone else."""
        same = (gr.update(),) * 7
        if not session_of(request):
            return same
        panel, note, key = self.admin_login("", request)
        if not panel.get("visible"):
            return same
        return (panel, note, key, *self.refresh(key, request))

    def index_overview(self, key: str, request: gr.Request):
        """The index table's rows, and where the docs folder is."""
        try:
            data = self.client.request(
                "GET", "/admin/index", key, session=session_of(request)
            ).json()
        except PageError as exc:
            return [], f"Problem: {exc}"
        rows = [
            [
                c["name"],
                c["documents"],
                c["chunks"],
                _when(c.get("last_reindex")),
                c.get("embedding_model") or "",
            ]
            for c in data["collections"]
        ]
        return rows, f"Docs folder: `{data['docs_dir']}`"

    def upload_and_reindex(self, files, key: str, request: gr.Request, progress=gr.Progress()):
        """Upload ``files`` (if any) into the docs folder, reindex, report the counts."""
        client = self.client
        session = session_of(request)
        try:
            if files:
                payload = []
                for f in files:
                    path = f if isinstance(f, str) else f.name
                    with open(path, "rb") as fh:
                        payload.append(("files", (path.rsplit("/", 1)[-1], fh.read())))
                saved = client.request(
                    "POST", "/admin/docs", key, session=session, files=payload
                ).json()["saved"]
                progress(0, desc=f"Saved {', '.join(saved)}; reindexing...")
            job = client.request("POST", "/admin/reindex", key, session=session, json={})
            job_id = job.json()["job"]
            while True:
                state = client.request(
                    "GET", f"/admin/reindex/{job_id}", key, session=session
                ).json()
                done = state["progress"].get("files_done", 0)
                total = state["progress"].get("files_total", 0)
                if total:
                    progress(done / total, desc=f"Reindexing: {done} of {total} files")
                if state["state"] in {"done", "failed"}:
                    break
                time.sleep(0.5)
        except PageError as exc:
            return f"Problem: {exc}"
        if state["state"] == "failed":
            return f"Problem: Reindexing failed: {state['error']}"
        c = state["counts"]
        skipped = c.get("skipped_files") or []
        note = "".join(f"\n- skipped {s['source']}: {s['reason']}" for s in skipped)
        return (
            f"Reindexed: {c['added']} added, {c['updated']} updated, {c['removed']} removed, "
            f"{c['unchanged']} unchanged; {c['chunks']} chunks in the index." + note
        )

    def reindex_all(self, key: str, request: gr.Request, progress=gr.Progress()):
        """Reindex the whole docs folder, uploading nothing."""
        return self.upload_and_reindex(None, key, request, progress)

    def feedback_overview(self, key: str, request: gr.Request):
        """The feedback summary line, and the latest ratings' rows."""
        try:
            data = self.client.request(
                "GET", "/admin/feedback", key, session=session_of(request)
            ).json()
        except PageError as exc:
            return f"Problem: {exc}", []
        c = data["counts"]
        rows = [
            [
                _when(r["created_at"]),
                "liked" if r["rating"] == 1 else "disliked",
                text_of(r["messages"][-1]["content"])[:120],
                r["answer"][:160],
                r.get("correction") or "",
                r["model"],
            ]
            for r in data["latest"]
        ]
        summary = f"{c['liked']} liked, {c['disliked']} disliked ({c['corrected']} corrected)."
        return summary, rows

    def refresh(self, key: str, request: gr.Request):
        """The admin panel's overviews: index rows, docs folder, feedback summary and rows."""
        rows, where = self.index_overview(key, request)
        summary, latest = self.feedback_overview(key, request)
        return rows, where, summary, latest

    def export_feedback(self, key: str, request: gr.Request):
        """The feedback as training data (JSONL), in a file for Gradio to offer."""
        try:
            body = self.client.request(
                "GET", "/admin/feedback/export", key, session=session_of(request)
            ).text
        except PageError as exc:
            raise gr.Error(str(exc)) from None
        out = tempfile.NamedTemporaryFile(  # noqa: SIM115 - handed to Gradio as a download
            "w", suffix="-feedback-training.jsonl", delete=False, encoding="utf-8"
        )
        out.write(body)
        out.close()
        return out.name

    # --- when the page opens ---------------------------------------------------------
    def load_models(self, current: str, request: gr.Request):
        """The picker, filled when the page opens: the server is up by then."""
        names = self.client.models(session_of(request)) or [self.model]
        return gr.update(choices=names, value=current if current in names else names[0])

    def whoami(self, request: gr.Request):
        """'Signed in as ...' and a sign-out link, when the person came through sign-in."""
        session = session_of(request)
        if not session:
            return gr.update(visible=False)
        try:
            me = self.client.request("GET", "/me", session=session).json()
        except PageError:
            return gr.update(visible=False)
        return gr.update(
            value=f"Signed in as **{_plain(me['user'])}** · [Sign out](/logout)", visible=True
        )
