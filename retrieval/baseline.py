"""The naive baseline: what a user writes in an afternoon, kept as the yardstick.

LangChain's ``RecursiveCharacterTextSplitter`` (1,000 characters, 150 overlap) over each
file's raw text (BeautifulSoup ``get_text()`` for HTML), the same embedding model, a Chroma
collection, the top k chunks by cosine similarity. No titles, no headings, no keyword
ranking, no grouping by document. ``assistant eval-retrieval --compare`` scores it next to
the product's own modes, so a report always shows what the product adds.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from retrieval.embeddings import Embedder
from retrieval.indexer import IndexReport, scan
from retrieval.loaders import LoadError, load
from retrieval.store import drop_collection

CHUNK_CHARS = 1000
OVERLAP_CHARS = 150


@dataclass
class NaiveHit:
    rank: int
    source: str
    score: float
    text: str


def naive_text(path: Path, source: str) -> str:
    """A file's text as a quick script reads it: markup stripped, nothing else."""
    suffix = path.suffix.lower()
    if suffix in {".html", ".htm"}:
        from bs4 import BeautifulSoup

        return BeautifulSoup(path.read_text(errors="replace"), "html.parser").get_text()
    if suffix in {".pdf", ".docx"}:
        return load(path, source).text
    return path.read_text(errors="replace")


class NaiveBaseline:
    """Index ``roots`` into ``collection`` of ``client`` and search it densely."""

    def __init__(self, client, embedder: Embedder, collection: str = "naive-baseline") -> None:
        self.client = client
        self.embedder = embedder
        self.name = collection
        self.collection = None

    def index(self, roots: list[Path], keep: Callable[[str], bool] = lambda s: True) -> int:
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        splitter = RecursiveCharacterTextSplitter(
            chunk_size=CHUNK_CHARS, chunk_overlap=OVERLAP_CHARS
        )
        files = [f for f in scan(roots, IndexReport()).values() if keep(f.source)]
        signature = hashlib.sha1(
            "\n".join(f"{f.source}\x00{f.digest}" for f in files).encode()
            + f"|{self.embedder.name}|{CHUNK_CHARS}/{OVERLAP_CHARS}".encode()
        ).hexdigest()
        with contextlib.suppress(Exception):  # absent: build it below
            existing = self.client.get_collection(self.name)
            if (existing.metadata or {}).get("signature") == signature:
                self.collection = existing  # same files, same model: reuse (a --store run)
                return existing.count()
        ids, texts, metas = [], [], []
        for file in files:
            try:
                text = naive_text(file.path, file.source)
            except (LoadError, OSError):
                continue
            for i, piece in enumerate(splitter.split_text(text)):
                if piece.strip():
                    ids.append(f"{file.source}#{i}")
                    texts.append(piece)
                    metas.append({"source": file.source})
        drop_collection(self.client, self.name)
        self.collection = self.client.create_collection(
            self.name,
            metadata={"hnsw:space": "cosine", "signature": "building"},
            embedding_function=None,
        )
        batch = 1024
        for start in range(0, len(texts), batch):
            part = slice(start, start + batch)
            self.collection.add(
                ids=ids[part],
                documents=texts[part],
                embeddings=self.embedder.embed(texts[part]),
                metadatas=metas[part],
            )
        self.collection.modify(metadata={"signature": signature})  # complete: reusable
        return len(texts)

    def search(self, query: str, k: int = 5) -> list[NaiveHit]:
        if self.collection is None or not query.strip():
            return []
        size = self.collection.count()
        if size == 0:
            return []
        found = self.collection.query(
            query_embeddings=self.embedder.embed_query([query]),
            n_results=min(k, size),
            include=["documents", "metadatas", "distances"],
        )
        return [
            NaiveHit(rank, meta["source"], 1.0 - float(distance), text)
            for rank, (text, meta, distance) in enumerate(
                zip(
                    found["documents"][0],
                    found["metadatas"][0],
                    found["distances"][0],
                    strict=True,
                ),
                start=1,
            )
        ]
