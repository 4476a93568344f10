"""The docs index inside the assistant: search for grounding, reindex runs, an overview.

The CLI and the server's admin routes index through the same ``index_into``; the server
runs it as a background job on its own Chroma client, so its searches see every write
at once and keep working while a reindex runs.
"""

from __future__ import annotations

import threading
from pathlib import Path

from assistant.errors import APIError
from assistant.knowledge.factories import access_rules, index_into
from assistant.knowledge.jobs import JobCancelled, JobProgress, JobRunner
from assistant.settings import Settings
from retrieval.access import AccessError
from retrieval.errors import RetrievalError
from retrieval.store import check_name, describe


class IndexService:
    """Reindex jobs and the index overview for the admin routes."""

    def __init__(self, settings: Settings, client, embedder, runner: JobRunner) -> None:
        self.settings = settings
        self.client = client
        self.embedder = embedder
        self.runner = runner

    def root_for(self, path: str | None) -> Path:
        """A folder inside the docs root (never outside it), or the docs root itself."""
        docs = self.settings.docs_dir.resolve()
        if not path:
            return docs
        try:
            candidate = (docs / path).resolve()
            if candidate != docs and docs not in candidate.parents:
                raise APIError(400, f"'{path}' is outside the docs folder")
            found = candidate.exists()
        except (OSError, ValueError):  # a NUL byte, a name too long, a symlink loop
            found = False
        if not found:
            raise APIError(400, f"'{path}' does not exist in the docs folder")
        return candidate

    def start_reindex(
        self, *, collection: str | None, path: str | None, full: bool, dry_run: bool
    ) -> str:
        name = collection or self.settings.collection
        try:
            check_name(name)
        except RetrievalError as exc:
            raise APIError(400, str(exc)) from None
        root = self.root_for(path)
        access = self.check_access(root)
        params = {"collection": name, "path": str(root), "full": full, "dry_run": dry_run}

        def work(progress: JobProgress, cancel: threading.Event) -> dict:
            report = index_into(
                self.settings,
                self.client,
                self.embedder,
                [root],
                collection=name,
                full=full,
                dry_run=dry_run,
                observer=progress,
                cancel=cancel.is_set,
                access=access,
            )
            counts = {**report.counts(), "skipped_files": report.skipped}
            if report.cancelled:
                raise JobCancelled(counts)
            return counts

        return self.runner.submit("reindex", params, work)

    def check_access(self, root: Path):
        """The access rules a reindex of ``root`` applies, read now: an invalid file is a
        400 naming its line, before any job starts, and the rules in force stay."""
        try:
            return access_rules(self.settings, [root])
        except AccessError as exc:
            raise APIError(400, str(exc), code="invalid_access_rules") from None

    def job(self, job_id: str) -> dict:
        job = self.runner.store.get(job_id)
        if job is None or job["kind"] != "reindex":
            raise APIError(404, f"no reindex job '{job_id}'", code="job_not_found")
        return _public(job)

    def cancel(self, job_id: str) -> dict:
        """Ask a reindex to stop between two files or embedding batches; it ends in state
        "cancelled" with every document at its old or new version, whole."""
        self.job(job_id)  # 404 for an unknown id
        self.runner.cancel(job_id)
        return self.job(job_id)

    def jobs(self, limit: int = 20) -> list[dict]:
        return [_public(j) for j in self.runner.store.latest(limit) if j["kind"] == "reindex"]

    def overview(self) -> dict:
        return {"collections": describe(self.client), "docs_dir": str(self.settings.docs_dir)}


def _public(job: dict) -> dict:
    return {
        "job": job["id"],
        "state": job["state"],
        "params": job["params"],
        "progress": job["progress"] or {},
        "counts": job["result"],
        "error": job["error"],
        "created_at": job["created_at"],
        "started_at": job["started_at"],
        "finished_at": job["finished_at"],
    }
