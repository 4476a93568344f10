"""Chroma: a PersistentClient in a local folder, or a Chroma server by URL."""

from __future__ import annotations

import contextlib
from pathlib import Path
from urllib.parse import urlparse

from retrieval.chunking import Chunker
from retrieval.errors import RetrievalError
from retrieval.indexer import Indexer
from retrieval.loaders import LOADER_VERSION
from retrieval.manifest import SUFFIX, Manifest, is_manifest


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


def check_name(name: str) -> str:
    """A collection name Chroma accepts and that is not one of the manifests."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]", name) or is_manifest(name):
        raise RetrievalError(
            f"'{name}' is not a valid collection name: use 3-512 letters, digits, '.', '_' or "
            "'-', starting and ending with a letter or digit (and not ending in '.manifest')"
        )
    return name


def get_collection(client, name: str, embedding_model: str):
    """The collection, created with cosine distance; it remembers its embedding model."""
    collection = client.get_or_create_collection(
        check_name(name),
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


def check_dimension(collection, embedder) -> None:
    """Vectors of another size than the store's cannot be searched or added: say so first."""
    dimension = getattr(embedder, "dimension", None)
    if dimension is None or collection.count() == 0:
        return
    sample = collection.peek(1)["embeddings"]
    stored = len(sample[0]) if sample is not None and len(sample) else None
    if stored and stored != dimension:
        raise RetrievalError(
            f"collection '{collection.name}' holds {stored}-dimensional vectors, but "
            f"'{embedder.name}' makes {dimension}-dimensional ones; reindex with --full or "
            "use another collection"
        )


def drop_collection(client, name: str) -> None:
    """Delete a collection and its manifest; absent ones are fine."""
    for each in (name, name + SUFFIX):
        # An absent collection raises (its type differs across Chroma versions): nothing to drop.
        with contextlib.suppress(Exception):
            client.delete_collection(each)


def stored_model(client, name: str) -> str | None:
    try:
        return (client.get_collection(name).metadata or {}).get("embedding_model")
    except Exception:  # absent
        return None


def describe(client) -> list[dict]:
    """Every docs collection: name, documents, live chunks, embedding model, last reindex."""
    out = []
    names = sorted(c if isinstance(c, str) else c.name for c in client.list_collections())
    for name in names:
        if is_manifest(name):
            continue
        row = {"name": name, "documents": None, "chunks": None, "last_reindex": None}
        row["embedding_model"] = stored_model(client, name)
        if name + SUFFIX in names:  # else not built by `assistant index`: left untouched
            manifest = Manifest(client, name)
            entries = manifest.all()
            row["documents"] = len(entries)
            row["chunks"] = sum(e.n_chunks for e in entries.values())
            row["last_reindex"] = manifest.updated_at()
        out.append(row)
    return out


def build_indexer(
    *,
    client,
    collection: str,
    embedder,
    chunk_tokens: int,
    chunk_overlap_tokens: int,
    full: bool = False,
    flush_chunks: int | None = None,
    headers: bool = True,
    access=None,
):
    """An Indexer for ``collection``. ``full`` drops it first only when its embedding model
    differs (vectors of two models cannot share a collection); otherwise a full run
    re-embeds in place, so queries keep working while it runs."""
    check_name(collection)
    if full and stored_model(client, collection) not in {None, embedder.name}:
        drop_collection(client, collection)
    chunk_tokens = min(chunk_tokens, embedder.max_tokens)
    chunker = Chunker(embedder.count_tokens, chunk_tokens, chunk_overlap_tokens)
    chunks = get_collection(client, collection, embedder.name)
    check_dimension(chunks, embedder)
    manifest = Manifest(client, collection)
    prefix = getattr(embedder, "passage_prefix", "")
    recipe = index_recipe(chunk_tokens, chunk_overlap_tokens, headers, prefix)
    options = {"headers": headers, "recipe": recipe, "access": access}
    if flush_chunks is not None:
        options["flush_chunks"] = flush_chunks
    return Indexer(chunks, manifest, embedder, chunker, **options)


def index_recipe(chunk_tokens: int, overlap_tokens: int, headers: bool, prefix: str) -> str:
    """How files become vectors; part of every document's version (see ``Indexer``)."""
    return f"loader{LOADER_VERSION}|{chunk_tokens}/{overlap_tokens}|h{int(headers)}|{prefix}"


class StoreLock:
    """One process at a time writes a local store: Chroma's PersistentClient is not safe
    across processes (a second process's writes stay invisible to the first's searches).

    ``assistant serve`` holds the lock while it runs and reindexes in-process
    (``POST /v1/admin/reindex``); ``assistant index`` takes it for its run.
    """

    def __init__(self, store_dir: Path, what: str) -> None:
        self.path = Path(store_dir) / ".assistant.lock"
        self.what = what
        self._file = None

    def acquire(self) -> StoreLock:
        import fcntl
        import os

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RetrievalError(
                f"the store '{self.path.parent}' is in use by {holder}; while a server runs on "
                "it, reindex through it (POST /v1/admin/reindex or the page's admin tab), or "
                "stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{self.what} (pid {os.getpid()})")
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
