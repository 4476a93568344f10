"""The Admin tab's sign-in, documents, index and feedback: ``Admin``, used by
``PageController`` (the tab's analytics are ``ui.analytics``, its undelivered tickets
``ui.admin_tickets``).

Each admin call goes with the admin key the person typed or, with none, as the signed-in
person (their session): an admin account needs no key, others are refused.
"""

# Gradio reads the `gr.Request` annotations and the `gr.Progress` default at runtime: no
# postponed annotations.
import tempfile
import time

import gradio as gr

from ui.client import Client, PageError, session_of
from ui.render import text_of, when


class Admin:
    """The admin's documents, index and feedback, over ``client``."""

    def __init__(self, client: Client) -> None:
        self.client = client

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
                when(c.get("last_reindex")),
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
                when(r["created_at"]),
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
