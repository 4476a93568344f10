"""The content-gap report: which questions the docs fail, grouped, with the page to fix.

Input: the questions of one period that were not grounded, disliked or escalated (already
PII-scrubbed). The same wording (case and spacing aside) counts once per asking but is
embedded once; the distinct wordings are embedded with the server's embedder (through
``VectorCache``) and clustered (``assistant.analytics.clustering``: average linkage, cosine distance
``threshold``). Each cluster, largest first, comes with its size, why its questions are
there, example wordings, the wording nearest its centre, and the document the index finds
for that wording: a weak or missing match means a page to write, a good one a page to fix.
Without an embedder only identical wordings are grouped.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from assistant.analytics.clustering import agglomerate

log = logging.getLogger("assistant")

REASONS = ("not_grounded", "disliked", "escalated")
EMBED_CHARS = 400  # what a question is about is in its start; a pasted log costs only time


class Embedder(Protocol):  # retrieval.embeddings.Embedder, as far as it is used here
    name: str

    def embed(self, texts: list[str]) -> list[list[float]]: ...


class Index(Protocol):  # assistant.chat.prompt.Index, as far as it is used here
    def search(self, query: str, k: int = 4, collection: str | None = None,
               groups: frozenset[str] | None = None) -> list: ...  # fmt: skip


@dataclass
class GapQuestion:
    question: str  # PII-scrubbed
    reasons: set[str] = field(default_factory=set)


def _wording(text: str) -> str:
    return " ".join(text.split()).casefold()


def gap_text(question: str) -> str:
    """What is embedded of a question: spacing made single, at most ``EMBED_CHARS``
    (``GapWarmer`` embeds exactly this ahead of time)."""
    return " ".join(question.split())[:EMBED_CHARS]


class GapFinder:
    def __init__(
        self,
        embedder: Embedder | None = None,
        index: Index | None = None,
        cache=None,
        *,
        threshold: float = 0.5,
        write_below: float = 0.4,
        examples: int = 5,
    ) -> None:
        """``cache``: an ``assistant.analytics.vector_cache.VectorCache`` (none: embed every time);
        ``write_below``: a nearest document scoring less suggests a new page."""
        self.embedder = embedder
        self.index = index
        self.cache = cache
        self.threshold = threshold
        self.write_below = write_below
        self.examples = examples

    def report(self, items: list[GapQuestion], limit: int = 20) -> dict:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        groups: dict[str, dict] = {}
        for item in items:
            text = " ".join(item.question.split())
            if not text:
                continue
            group = groups.setdefault(
                _wording(text), {"count": 0, "forms": Counter(), "reasons": Counter()}
            )
            group["count"] += 1
            group["forms"][text] += 1
            group["reasons"].update(item.reasons)
        # most asked first: they lead their groups in the clustering's first pass
        distinct = sorted(groups.values(), key=lambda g: -g["count"])
        texts = [g["forms"].most_common(1)[0][0] for g in distinct]
        vectors, labels = self._cluster(texts, timings)
        clusters = self._clusters(distinct, texts, vectors, labels)
        shown = clusters[:limit]
        found = time.perf_counter()
        index = self.index
        for cluster in shown:
            try:
                cluster.update(self._nearest(index, cluster["representative"]))
            except Exception as exc:  # no collection yet, a store error: the report goes on
                log.warning("content gaps without nearest documents: %s", exc)
                index = None
                cluster.update(self._nearest(None, ""))
        timings["nearest_documents_s"] = time.perf_counter() - found
        timings["total_s"] = time.perf_counter() - started
        return {
            "questions": sum(g["count"] for g in distinct),
            "distinct": len(distinct),
            "clusters_total": len(clusters),
            "method": "agglomerative" if self.embedder is not None else "identical wording",
            "threshold": self.threshold if self.embedder is not None else None,
            "clusters": [{"rank": n, **c} for n, c in enumerate(shown, 1)],
            "timings": {k: round(v, 3) for k, v in timings.items()},
        }

    def _cluster(self, texts: list[str], timings: dict):
        import numpy as np

        if self.embedder is None or not texts:
            return None, np.arange(len(texts))
        start = time.perf_counter()
        heads = [gap_text(text) for text in texts]
        if self.cache is not None:
            vectors = self.cache.embed(self.embedder, heads)
        else:
            vectors = np.asarray(self.embedder.embed(heads), dtype=np.float32)
        timings["embed_s"] = time.perf_counter() - start
        start = time.perf_counter()
        labels = agglomerate(vectors, self.threshold)
        timings["cluster_s"] = time.perf_counter() - start
        return vectors, labels

    def _clusters(self, distinct: list[dict], texts: list[str], vectors, labels) -> list[dict]:
        import numpy as np

        members: dict[int, list[int]] = {}
        for i, label in enumerate(labels):
            members.setdefault(int(label), []).append(i)
        clusters = []
        for rows in members.values():
            counts = np.array([distinct[i]["count"] for i in rows], dtype=np.float32)
            if vectors is not None and len(rows) > 1:
                part = vectors[rows]
                centre = (part * counts[:, None]).sum(axis=0)
                representative = rows[int((part @ centre).argmax())]
            else:
                representative = rows[0]
            reasons: Counter = Counter()
            for i in rows:
                reasons.update(distinct[i]["reasons"])
            clusters.append(
                {
                    "size": int(counts.sum()),
                    "distinct": len(rows),
                    **{reason: reasons[reason] for reason in REASONS},
                    "representative": texts[representative],
                    "examples": [texts[i] for i in rows[: self.examples]],  # most asked first
                    "first": rows[0],
                }
            )
        clusters.sort(key=lambda c: (-c["size"], c["first"]))
        for cluster in clusters:
            del cluster["first"]
        return clusters

    def _nearest(self, index: Index | None, question: str) -> dict:
        """The document ``index`` finds for ``question``, and what to do: ``write`` a new
        page when nothing comes close, else ``improve`` that one (``None`` without an
        index to ask)."""
        if index is None:
            return {"nearest_document": None, "action": None}
        hits = index.search(question, k=1)
        if not hits:
            return {"nearest_document": None, "action": "write"}
        hit = hits[0]
        score = round(float(hit.score), 3)
        nearest = {"source": hit.source, "title": hit.title,
                   "section": getattr(hit, "section", "") or "", "score": score}  # fmt: skip
        return {"nearest_document": nearest,
                "action": "write" if score < self.write_below else "improve"}  # fmt: skip
