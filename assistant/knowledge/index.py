"""The docs index inside the assistant: search for grounding, reindex runs, an overview.

The CLI and the server's admin routes index through the same ``index_into``; the server
runs it as a background job on its own Chroma client, so its searches see every write
at once and keep working while a reindex runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from assistant.errors import APIError
from assistant.knowledge.jobs import JobCancelled, JobRunner
from assistant.settings import Settings


def make_embedder(settings: Settings):
    """The sentence-transformers embedder of the settings (indexing, search, /v1/embeddings)."""
    from retrieval.embeddings import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(
        settings.embedding_model,
        batch_size=settings.embed_batch_size,
        query_prefix=settings.embedding_query_prefix,
        passage_prefix=settings.embedding_passage_prefix,
    )


def make_retriever(settings: Settings, client, embedder, *, background_refresh: bool = False):
    from retrieval.retriever import Retriever

    reranker = None
    if settings.reranker_model:
        from retrieval.rerank import CrossEncoderReranker

        reranker = CrossEncoderReranker(settings.reranker_model)
    return Retriever(
        client,
        embedder,
        settings.collection,
        mode=settings.retrieval_mode,
        candidates=settings.retrieval_candidates,
        fusion=settings.retrieval_fusion,
        keyword_weight=settings.retrieval_keyword_weight,
        code_weight=settings.retrieval_code_weight,
        per_document=settings.retrieval_per_document or None,
        reranker=reranker,
        background_refresh=background_refresh,
    )


def index_into(
    settings: Settings,
    client,
    embedder,
    roots: list[Path],
    *,
    collection: str | None = None,
    full: bool = False,
    dry_run: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    on_progress: Callable | None = None,
    cancel: Callable[[], bool] | None = None,
    access=None,
):
    """Index ``roots`` into a collection; returns the indexer's report (``cancel``: see
    ``retrieval.indexer.Indexer.run``). ``access``: the document permissions to apply, as
    read beforehand (default: ``access_rules`` now; an invalid file stops the run before
    anything is written, and the rules in force stay as they were)."""
    from retrieval.store import build_indexer

    indexer = build_indexer(
        client=client,
        collection=collection or settings.collection,
        embedder=embedder,
        chunk_tokens=settings.chunk_tokens,
        chunk_overlap_tokens=settings.chunk_overlap_tokens,
        full=full and not dry_run,
        flush_chunks=settings.index_batch_chunks,
        headers=settings.chunk_headers,
        access=access if access is not None else access_rules(settings, roots),
    )
    return indexer.run(
        roots,
        full=full,
        dry_run=dry_run,
        progress=progress,
        log=log,
        on_progress=on_progress,
        cancel=cancel,
    )


def access_rules(settings: Settings, roots: list[Path]):
    """The rules of ``settings.access_file``, else of access.yaml in the (first) folder
    indexed; raises ``retrieval.access.AccessError`` naming the line of a bad rule."""
    from retrieval.access import ACCESS_FILE, AccessRules

    path = settings.access_file
    if path is None and roots and Path(roots[0]).is_dir():
        path = Path(roots[0]) / ACCESS_FILE
    return AccessRules.load(path)


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
        from retrieval.errors import RetrievalError
        from retrieval.store import check_name

        name = collection or self.settings.collection
        try:
            check_name(name)
        except RetrievalError as exc:
            raise APIError(400, str(exc)) from None
        root = self.root_for(path)
        access = self.check_access(root)
        params = {"collection": name, "path": str(root), "full": full, "dry_run": dry_run}

        def work(progress: Callable[[dict], None], cancel: threading.Event) -> dict:
            report = index_into(
                self.settings,
                self.client,
                self.embedder,
                [root],
                collection=name,
                full=full,
                dry_run=dry_run,
                progress=False,
                log=lambda line: None,
                on_progress=lambda state: progress(asdict(state)),
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
        from retrieval.access import AccessError

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
        from retrieval.store import describe

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
