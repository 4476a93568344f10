"""Which version of each document is live: the commit record of a collection.

Chunks are written to the collection first, invisible to queries, and a document becomes
live when its record here names their content hash: one upsert of one record, which Chroma
applies whole or not at all. A reindex killed at any point therefore leaves each document
at its old or its new version, never both and never half; chunks that no record names are
leftovers that the next run deletes. The records live in a companion collection
``<name>.manifest`` of the same Chroma (local folder or server), so both modes behave alike.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

SUFFIX = ".manifest"
_UNIT = [1.0]  # Chroma wants an embedding per record; the manifest is never searched


@dataclass(frozen=True)
class Entry:
    source: str
    content_hash: str
    n_chunks: int
    indexed_at: float


def record_id(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()


def is_manifest(name: str) -> bool:
    return name.endswith(SUFFIX)


class Manifest:
    def __init__(self, client, collection: str) -> None:
        self.client = client
        self.name = collection + SUFFIX
        self.records = client.get_or_create_collection(
            self.name, metadata={"revision": 0}, embedding_function=None
        )

    def all(self) -> dict[str, Entry]:
        found = get_all(self.records, include=["metadatas"])
        return {m["source"]: _entry(m) for m in found["metadatas"]}

    def live(self, sources: set[str]) -> dict[str, str]:
        """source -> live content hash, for the given sources that are live."""
        if not sources:
            return {}
        found = self.records.get(ids=[record_id(s) for s in sources], include=["metadatas"])
        return {m["source"]: m["content_hash"] for m in found["metadatas"]}

    def commit(self, entries: list[tuple[str, str, int]]) -> None:
        """Make these (source, content hash, chunk count) versions live."""
        if not entries:
            return
        now = time.time()
        self.records.upsert(
            ids=[record_id(source) for source, _, _ in entries],
            embeddings=[_UNIT] * len(entries),
            metadatas=[
                {"source": s, "content_hash": h, "n_chunks": n, "indexed_at": now}
                for s, h, n in entries
            ],
        )

    def remove(self, sources: list[str]) -> None:
        if sources:
            self.records.delete(ids=[record_id(s) for s in sources])

    def revision(self) -> int:
        """A counter bumped after each reindex run; read fresh from the store."""
        return self.state()[0]

    def bump(self, access: str | None = None) -> None:
        """Mark the end of a reindex run; ``access`` is the rules now in force (JSON)."""
        meta = dict(self.client.get_collection(self.name).metadata or {})
        meta.update(revision=int(meta.get("revision", 0)) + 1, updated_at=time.time())
        if access is not None:
            meta["access"] = access
        self.records.modify(metadata=meta)

    def state(self) -> tuple[int, str | None]:
        """(revision, access rules in force as JSON or None) in one read."""
        meta = self.client.get_collection(self.name).metadata or {}
        return int(meta.get("revision", 0)), meta.get("access")

    def updated_at(self) -> float | None:
        meta = self.client.get_collection(self.name).metadata or {}
        return meta.get("updated_at")


def _entry(meta: dict) -> Entry:
    return Entry(meta["source"], meta["content_hash"], int(meta["n_chunks"]), meta["indexed_at"])


def get_all(collection, include: list[str], page: int = 5000) -> dict:
    """Every record of a collection, read in pages (a single get of 100k rows is slow)."""
    out: dict = {"ids": [], **{key: [] for key in include}}
    offset = 0
    while True:
        found = collection.get(include=include, limit=page, offset=offset)
        out["ids"] += found["ids"]
        for key in include:
            values = found[key]
            out[key] += list(values) if values is not None else []
        if len(found["ids"]) < page:
            return out
        offset += page
