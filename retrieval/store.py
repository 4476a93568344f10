"""Chroma: a PersistentClient in a local folder, or a Chroma server by URL."""

from __future__ import annotations

import contextlib
from pathlib import Path
from urllib.parse import urlparse

from retrieval.errors import RetrievalError


def open_client(store_dir: Path | None = None, chroma_url: str | None = None):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if chroma_url:
        url = urlparse(chroma_url)
        if url.scheme not in {"http", "https"} or not url.hostname:
            raise RetrievalError(f"'{chroma_url}' is not a Chroma server URL")
        try:
            return chromadb.HttpClient(
                host=url.hostname,
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
        except Exception as exc:  # chromadb raises several types for a dead server
            raise RetrievalError(f"cannot reach Chroma at {chroma_url}: {exc}") from None
    if store_dir is None:
        raise RetrievalError("give a store folder or a Chroma URL")
    Path(store_dir).mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(store_dir), settings=chroma_settings)


def get_collection(client, name: str, embedding_model: str):
    """The collection, created with cosine distance; it remembers its embedding model."""
    collection = client.get_or_create_collection(
        name,
        metadata={"hnsw:space": "cosine", "embedding_model": embedding_model},
        embedding_function=None,
    )
    stored = (collection.metadata or {}).get("embedding_model")
    if stored and stored != embedding_model:
        raise RetrievalError(
            f"collection '{name}' was built with '{stored}', not '{embedding_model}'; "
            "reindex with --full or use another collection"
        )
    return collection


def build_indexer(
    *,
    store_dir: Path | None,
    chroma_url: str | None,
    collection: str,
    embedding_model: str,
    chunk_tokens: int,
    chunk_overlap_tokens: int,
    batch_size: int,
    full: bool = False,
):
    from retrieval.chunking import Chunker
    from retrieval.embeddings import SentenceTransformerEmbedder
    from retrieval.indexer import Indexer

    client = open_client(store_dir, chroma_url)
    if full:
        # An absent collection raises (its type differs across Chroma versions): nothing to drop.
        with contextlib.suppress(Exception):
            client.delete_collection(collection)
    embedder = SentenceTransformerEmbedder(embedding_model, batch_size=batch_size)
    chunk_tokens = min(chunk_tokens, embedder.max_tokens)
    chunker = Chunker(embedder.count_tokens, chunk_tokens, chunk_overlap_tokens)
    return Indexer(get_collection(client, collection, embedding_model), embedder, chunker)
