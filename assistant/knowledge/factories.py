"""Everything retrieval the settings describe, built in one place: the embedder, the
retriever, the store and its lock, the access rules, and an indexing run (``index_into``).

The CLI, the server, the demo model's training and the benchmarks build these here; the
parts themselves (``retrieval``) take plain parameters and never read settings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from assistant.models.install import resolve
from assistant.settings import Settings
from retrieval.access import ACCESS_FILE, AccessRules
from retrieval.embeddings import SentenceTransformerEmbedder
from retrieval.progress import IndexObserver
from retrieval.rerank import CrossEncoderReranker
from retrieval.retriever import Retriever
from retrieval.store import StoreLock, build_indexer, open_client


def open_store(settings: Settings):
    """The Chroma client of the settings: the server at ``chroma_url``, else the local
    folder ``index_dir``."""
    return open_client(settings.index_dir, settings.chroma_url)


def store_lock(settings: Settings, what: str):
    """The lock on the local store (``retrieval.store.StoreLock``), not yet taken, held by
    ``what``; ``None`` with a Chroma server, which needs none."""
    return None if settings.chroma_url else StoreLock(settings.index_dir, what)


def make_embedder(settings: Settings):
    """The sentence-transformers embedder of the settings (indexing, search, /v1/embeddings);
    a catalogue name loads from its installed folder and keeps the name as its id."""
    folder = resolve(settings.embedding_model, settings.models_dir, "embedding")
    return SentenceTransformerEmbedder(
        settings.embedding_model,
        batch_size=settings.embed_batch_size,
        query_prefix=settings.embedding_query_prefix,
        passage_prefix=settings.embedding_passage_prefix,
        source=folder if folder != settings.embedding_model else None,
        precision=settings.embedding_precision,
    )


def make_retriever(settings: Settings, client, embedder, *, background_refresh: bool = False):
    reranker = None
    if settings.reranker_model:
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


def open_index(settings: Settings, client, embedder, log):
    """The docs retriever over the configured Chroma; answers stay ungrounded without it."""
    if not settings.retrieval_enabled:
        return None
    names = {c if isinstance(c, str) else c.name for c in client.list_collections()}
    if settings.collection not in names:
        log(
            f"note: no '{settings.collection}' collection in {settings.index_dir} yet; answers "
            f"are not grounded until you run 'assistant index'"
        )
    import threading

    retriever = make_retriever(settings, client, embedder, background_refresh=True)
    if settings.retrieval_mode != "dense":
        threading.Thread(target=retriever.warm, name="warm-keyword-index", daemon=True).start()
    return retriever


def index_into(
    settings: Settings,
    client,
    embedder,
    roots: list[Path],
    *,
    collection: str | None = None,
    full: bool = False,
    dry_run: bool = False,
    observer: IndexObserver | None = None,
    cancel: Callable[[], bool] | None = None,
    access=None,
):
    """Index ``roots`` into a collection; returns the indexer's report (``observer``,
    ``cancel``: see ``retrieval.indexer.Indexer.run``). ``access``: the document
    permissions to apply, as read beforehand (default: ``access_rules`` now; an invalid
    file stops the run before anything is written, and the rules in force stay as they
    were)."""
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
        observer=observer,
        cancel=cancel,
    )


def access_rules(settings: Settings, roots: list[Path]):
    """The rules of ``settings.access_file``, else of access.yaml in the (first) folder
    indexed; raises ``retrieval.access.AccessError`` naming the line of a bad rule."""
    path = settings.access_file
    if path is None and roots and Path(roots[0]).is_dir():
        path = Path(roots[0]) / ACCESS_FILE
    return AccessRules.load(path)
