"""Search the indexed docs: passages with score, source, title, section and page for citing.

Dense search over Chroma with the collection's own embedding model. Hybrid keyword fusion
and reranking come with the retrieval issue and plug in behind the same ``search``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from retrieval.embeddings import Embedder
from retrieval.errors import RetrievalError


@dataclass
class Hit:
    rank: int
    source: str
    title: str
    section: str
    page: int | None
    score: float  # cosine similarity, 1 is identical
    text: str

    @property
    def snippet(self) -> str:
        text = " ".join(self.text.split())
        return text if len(text) <= 240 else text[:237].rsplit(" ", 1)[0] + "..."

    def citation(self) -> dict:
        """The public form, as returned in the API's ``sources``."""
        data = asdict(self)
        data.pop("text")
        data["score"] = round(self.score, 4)
        data["snippet"] = self.snippet
        return data


class Retriever:
    """Top-k passages of a collection for a query."""

    def __init__(self, client, embedder: Embedder, default_collection: str = "docs") -> None:
        self.client = client
        self.embedder = embedder
        self.default_collection = default_collection
        self._collections: dict[str, object] = {}

    def _collection(self, name: str):
        if name not in self._collections:
            try:
                collection = self.client.get_collection(name)
            except Exception:  # chromadb raises NotFoundError or ValueError by version
                raise RetrievalError(
                    f"collection '{name}' does not exist; index it first"
                ) from None
            stored = (collection.metadata or {}).get("embedding_model")
            if stored and stored != self.embedder.name:
                raise RetrievalError(
                    f"collection '{name}' was built with '{stored}', not '{self.embedder.name}'"
                )
            self._collections[name] = collection
        return self._collections[name]

    def search(self, query: str, k: int = 4, collection: str | None = None) -> list[Hit]:
        coll = self._collection(collection or self.default_collection)
        size = coll.count() if query.strip() else 0
        if size == 0:
            return []
        vector = self.embedder.embed([query])[0]
        found = coll.query(
            query_embeddings=[vector],
            n_results=min(k, size),
            include=["documents", "metadatas", "distances"],
        )
        hits = []
        for rank, (text, meta, distance) in enumerate(
            zip(found["documents"][0], found["metadatas"][0], found["distances"][0], strict=True),
            start=1,
        ):
            hits.append(
                Hit(
                    rank=rank,
                    source=meta["source"],
                    title=meta.get("title", meta["source"]),
                    section=meta.get("section", ""),
                    page=meta.get("page"),
                    score=1.0 - float(distance),
                    text=text,
                )
            )
        return hits
