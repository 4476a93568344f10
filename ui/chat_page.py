"""The chat page: a Gradio Blocks client of the gateway's own HTTP API.

For employees: streaming answers with the sources under each one, a plain notice and the
escalation text when the docs do not cover the question, like/dislike with an optional
correction, stop/retry/clear, and a model picker (base model and adapters).
For IT admins (behind the admin key): upload documents and reindex with progress, the
index overview, and the feedback overview with an export as training data.

It imports nothing from ``assistant``: everything goes over HTTP, like any other client.
"""

# No `from __future__ import annotations` here: Gradio reads the `gr.LikeData` annotation
# at runtime to know which argument gets the event data.
import re
import tempfile
import time
from typing import Any
from urllib.parse import quote

TITLE = "IT help desk"
HELP = (
    "Ask about VPN, passwords and MFA, laptops, printing, Wi-Fi, email, shared drives and "
    "software requests. Answers come from the company's IT documentation, with the "
    "sources listed under each answer. Rate answers with the thumbs to help improve them."
)
ESCALATION = (
    "**The IT documentation does not cover this.** The answer above may be incomplete, so "
    "please contact the Service Desk. To get help fast, tell them:\n"
    "- what you were trying to do, and on which device (laptop, phone, depot scanner...);\n"
    "- the exact error message or code (for example TP-204), and when it started;\n"
    "- what you have already tried.\n\n"
    "Your question, to copy into the ticket:\n\n> {question}"
)
SOURCES_TITLE = "Sources"
SESSION_COOKIE = "hd_session"  # the gateway's sign-in cookie, passed on to its API


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


def reopened(conversation: dict, link_base: str = "/v1/sources") -> tuple[list, dict]:
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
            history.append(
                {
                    "role": "assistant",
                    "content": sources_markdown(sources, link_base),
                    "metadata": {"title": f"{SOURCES_TITLE} ({len(sources)})", "status": "done"},
                }
            )
    return history, ratings


class Client:
    """The gateway, as the page uses it."""

    def __init__(self, api_base: str, api_key: str | None) -> None:
        import httpx
        import openai

        self.api_base = api_base.rstrip("/")
        self.api_key = api_key
        self.openai = openai.OpenAI(
            base_url=self.api_base, api_key=api_key or "unused", max_retries=0, timeout=300
        )
        self.http = httpx.Client(timeout=60)

    def headers(self, key: str | None = None, session: str | None = None) -> dict:
        key = key or self.api_key
        out = {"Authorization": f"Bearer {key}"} if key else {}
        if session:
            out["Cookie"] = f"{SESSION_COOKIE}={session}"
        return out

    def chat(self, session: str | None = None):
        """The OpenAI client, acting as the signed-in person when there is a session."""
        if not session:
            return self.openai
        return self.openai.with_options(default_headers=self.headers(session=session))

    def models(self, session: str | None = None) -> list[str]:
        try:
            return [m.id for m in self.chat(session).models.list()]
        except Exception:  # the page still opens; the picker falls back to the default
            return []

    def request(
        self, method: str, path: str, key: str | None = None, session: str | None = None, **kw
    ) -> Any:
        headers = self.headers(key, session)
        resp = self.http.request(method, self.api_base + path, headers=headers, **kw)
        if resp.status_code >= 400:
            try:
                message = resp.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = resp.text[:200]
            raise PageError(message, resp.status_code)
        return resp


class PageError(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def build_page(
    api_base: str,
    model: str,
    api_key: str | None = None,
    *,
    notice: str | None = None,
    max_tokens: int = 256,
):
    """The page, talking to ``api_base`` (…/v1) as ``api_key``; ``model`` is the default."""
    import gradio as gr
    import openai

    client = Client(api_base, api_key)
    link_base = "/v1/sources"

    # --- chat ------------------------------------------------------------------------
    def ask(question: str, history: list, model_name: str, answers: dict, request: gr.Request):
        question = (question or "").strip()
        if not question:
            yield history, answers, gr.update()
            return
        history = [*history, {"role": "user", "content": question}]
        messages = history_for_api(history)
        history.append({"role": "assistant", "content": ""})
        yield history, answers, ""
        answer, sources, grounded, completion_id = "", [], True, None
        try:
            stream = client.chat(session_of(request)).chat.completions.create(
                model=model_name or model, messages=messages, stream=True, max_tokens=max_tokens
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
            history.append(
                {
                    "role": "assistant",
                    "content": sources_markdown(sources, link_base),
                    "metadata": {"title": f"{SOURCES_TITLE} ({len(sources)})", "status": "done"},
                }
            )
        if not grounded:
            history.append(
                {
                    "role": "assistant",
                    "content": ESCALATION.format(question=question),
                    "metadata": {"title": "Not covered by the documentation", "status": "done"},
                }
            )
        yield history, answers, gr.update()

    def retry(history: list, model_name: str, answers: dict, request: gr.Request):
        last_user = max((i for i, m in enumerate(history) if m["role"] == "user"), default=None)
        if last_user is None:
            yield history, answers, gr.update()
            return
        question = text_of(history[last_user]["content"])
        yield from ask(question, history[:last_user], model_name, answers, request)

    def rate(data: gr.LikeData, answers: dict, correction: str, request: gr.Request):
        index = data.index if isinstance(data.index, int) else data.index[0]
        # the thumbs sit under a group of messages (answer + its sources box): rate the answer
        earlier = [int(k) for k in answers if int(k) <= index]
        if not earlier:
            return "Only answers can be rated."
        record = answers[str(max(earlier))]
        liked = data.liked is True or data.liked == "Like"
        try:
            client.request(
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
    def list_history(request: gr.Request):
        try:
            found = client.request("GET", "/conversations", session=session_of(request)).json()
        except PageError as exc:
            return gr.update(choices=[], value=None), f"History is not available: {exc}"
        choices = [(f"{c['title']} · {_when(c['updated_at'])}", c["id"]) for c in found["data"]]
        note = "" if choices else "No conversations yet: ask something first."
        return gr.update(choices=choices, value=choices[0][1] if choices else None), note

    def open_conversation(conversation: str | None, request: gr.Request):
        if not conversation:
            return gr.update(), gr.update(), "Pick a conversation first.", gr.update()
        try:
            found = client.request(
                "GET", f"/conversations/{quote(conversation)}", session=session_of(request)
            ).json()
        except PageError as exc:
            return gr.update(), gr.update(), f"It could not be opened: {exc}", gr.update()
        history, ratings = reopened(found, link_base)
        return history, ratings, "", gr.Tabs(selected="ask")

    def rename_conversation(conversation: str | None, title: str, request: gr.Request):
        if not conversation or not (title or "").strip():
            return "Pick a conversation and type its new title."
        try:
            client.request(
                "PATCH", f"/conversations/{quote(conversation)}",
                session=session_of(request), json={"title": title},
            )  # fmt: skip
        except PageError as exc:
            return f"It could not be renamed: {exc}"
        return "Renamed."

    def delete_conversation(conversation: str | None, request: gr.Request):
        if not conversation:
            return "Pick a conversation first."
        try:
            client.request(
                "DELETE", f"/conversations/{quote(conversation)}", session=session_of(request)
            )
        except PageError as exc:
            return f"It could not be deleted: {exc}"
        return "Deleted for good."

    # --- admin -----------------------------------------------------------------------
    def admin_login(key: str):
        key = (key or "").strip()
        try:
            client.request("GET", "/admin/index", key)
        except PageError as exc:
            message = "Wrong admin key." if exc.status in {401, 403} else str(exc)
            return gr.update(visible=False), f"Problem: {message}", ""
        except Exception:
            return gr.update(visible=False), "Problem: The server cannot be reached.", ""
        return gr.update(visible=True), "Signed in as admin.", key

    def index_overview(key: str):
        try:
            data = client.request("GET", "/admin/index", key).json()
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

    def upload_and_reindex(files, key: str, progress=gr.Progress()):
        try:
            if files:
                payload = []
                for f in files:
                    path = f if isinstance(f, str) else f.name
                    with open(path, "rb") as fh:
                        payload.append(("files", (path.rsplit("/", 1)[-1], fh.read())))
                saved = client.request("POST", "/admin/docs", key, files=payload).json()["saved"]
                progress(0, desc=f"Saved {', '.join(saved)}; reindexing...")
            job = client.request("POST", "/admin/reindex", key, json={}).json()["job"]
            while True:
                state = client.request("GET", f"/admin/reindex/{job}", key).json()
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

    def feedback_overview(key: str):
        try:
            data = client.request("GET", "/admin/feedback", key).json()
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

    def export_feedback(key: str):
        try:
            body = client.request("GET", "/admin/feedback/export", key).text
        except PageError as exc:
            raise gr.Error(str(exc)) from None
        out = tempfile.NamedTemporaryFile(  # noqa: SIM115 - handed to Gradio as a download
            "w", suffix="-feedback-training.jsonl", delete=False, encoding="utf-8"
        )
        out.write(body)
        out.close()
        return out.name

    def load_models(current: str, request: gr.Request):
        """The picker, filled when the page opens: the server is up by then."""
        names = client.models(session_of(request)) or [model]
        return gr.update(choices=names, value=current if current in names else names[0])

    def whoami(request: gr.Request):
        """'Signed in as ...' and a sign-out link, when the person came through sign-in."""
        session = session_of(request)
        if not session:
            return gr.update(visible=False)
        try:
            me = client.request("GET", "/me", session=session).json()
        except PageError:
            return gr.update(visible=False)
        return gr.update(
            value=f"Signed in as **{_plain(me['user'])}** · [Sign out](/logout)", visible=True
        )

    description = HELP + (f"\n\n**{notice}**" if notice else "")
    with gr.Blocks(title=TITLE, fill_height=True) as page:
        gr.Markdown(f"# {TITLE}\n{description}", elem_id="intro")
        signed_in = gr.Markdown(visible=False, elem_id="signed-in")
        with gr.Tabs() as tabs:
            with gr.Tab("Ask", id="ask"):
                with gr.Row(equal_height=True):
                    picker = gr.Dropdown(
                        [model],
                        value=model,
                        label="Model",
                        elem_id="model-picker",
                        scale=1,
                        min_width=160,
                    )
                chatbot = gr.Chatbot(
                    label="Conversation",
                    elem_id="chat",
                    height=480,
                    feedback_options=("Like", "Dislike"),
                    placeholder="Ask your IT question below.",
                )
                question = gr.Textbox(
                    placeholder="Describe the problem, e.g. “My VPN says TP-204”",
                    show_label=False,
                    lines=1,
                    max_lines=6,
                    elem_id="question",
                    submit_btn=True,
                    stop_btn=True,
                )
                with gr.Row():
                    retry_btn = gr.Button("Retry", size="sm", elem_id="retry")
                    clear_btn = gr.Button("Clear", size="sm", elem_id="clear")
                with gr.Accordion("Correct a wrong answer", open=False):
                    correction = gr.Textbox(
                        label="What should the answer have said? "
                        "Then give that answer a thumbs-down.",
                        lines=2,
                        elem_id="correction",
                    )
                feedback_status = gr.Markdown(elem_id="feedback-status")
                answers = gr.State({})

                asked = question.submit(
                    ask, [question, chatbot, picker, answers], [chatbot, answers, question]
                )
                question.stop(None, cancels=[asked])
                retry_btn.click(retry, [chatbot, picker, answers], [chatbot, answers, question])
                clear_btn.click(lambda: ([], {}, ""), None, [chatbot, answers, feedback_status])
                chatbot.like(rate, [answers, correction], feedback_status)

            with gr.Tab("History", id="history") as history_tab:
                with gr.Row(equal_height=True):
                    past = gr.Dropdown(
                        [], label="Your conversations", elem_id="history-list", scale=3
                    )
                    open_btn = gr.Button("Open", elem_id="history-open", scale=1)
                with gr.Row(equal_height=True):
                    new_title = gr.Textbox(label="New title", elem_id="history-title", scale=3)
                    rename_btn = gr.Button("Rename", size="sm", scale=1, elem_id="history-rename")
                    delete_btn = gr.Button(
                        "Delete", size="sm", variant="stop", scale=1, elem_id="history-delete"
                    )
                history_status = gr.Markdown(elem_id="history-status")
                history_tab.select(list_history, None, [past, history_status])
                open_btn.click(open_conversation, past, [chatbot, answers, history_status, tabs])
                rename_btn.click(rename_conversation, [past, new_title], history_status).then(
                    list_history, None, [past, history_status]
                )
                delete_btn.click(delete_conversation, past, history_status).then(
                    list_history, None, [past, history_status]
                )

            with gr.Tab("Admin", id="admin"):
                admin_key = gr.State("")
                with gr.Row():
                    key_box = gr.Textbox(
                        label="Admin key", type="password", elem_id="admin-key", scale=3
                    )
                    login = gr.Button("Sign in", elem_id="admin-login", scale=1)
                login_status = gr.Markdown(elem_id="admin-status")
                with gr.Column(visible=False, elem_id="admin-panel") as panel:
                    gr.Markdown("### Documents")
                    files = gr.File(
                        label="Add documents (Markdown, text, HTML, PDF, DOCX)",
                        file_count="multiple",
                        file_types=[".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx"],
                        elem_id="upload",
                    )
                    with gr.Row():
                        add_btn = gr.Button("Upload and reindex", variant="primary", elem_id="add")
                        reindex_btn = gr.Button("Reindex the whole folder", elem_id="reindex")
                    reindex_status = gr.Markdown(elem_id="reindex-status")
                    gr.Markdown("### Index")
                    overview = gr.Dataframe(
                        headers=["collection", "documents", "chunks", "last reindex", "embedding"],
                        interactive=False,
                        elem_id="index-table",
                    )
                    docs_dir = gr.Markdown()
                    gr.Markdown("### Feedback")
                    feedback_summary = gr.Markdown(elem_id="feedback-summary")
                    latest = gr.Dataframe(
                        headers=["when", "rating", "question", "answer", "correction", "model"],
                        interactive=False,
                        wrap=True,
                        elem_id="feedback-table",
                    )
                    with gr.Row():
                        refresh_btn = gr.Button("Refresh", size="sm")
                        export_btn = gr.Button(
                            "Export as training data", size="sm", elem_id="export"
                        )
                    export_file = gr.File(label="Training data (JSONL)", interactive=False)

                def refresh(key):
                    rows, where = index_overview(key)
                    summary, fb = feedback_overview(key)
                    return rows, where, summary, fb

                admin_outputs = [overview, docs_dir, feedback_summary, latest]
                login.click(admin_login, key_box, [panel, login_status, admin_key]).then(
                    refresh, admin_key, admin_outputs
                )
                add_btn.click(upload_and_reindex, [files, admin_key], reindex_status).then(
                    refresh, admin_key, admin_outputs
                )
                reindex_btn.click(
                    lambda key, progress=gr.Progress(): upload_and_reindex(None, key, progress),
                    admin_key,
                    reindex_status,
                ).then(refresh, admin_key, admin_outputs)
                refresh_btn.click(refresh, admin_key, admin_outputs)
                export_btn.click(export_feedback, admin_key, export_file)
        page.load(load_models, picker, picker)
        page.load(whoami, None, signed_in)
    return page


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))
