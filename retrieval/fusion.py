"""Combining rankings, and keeping the top passages from different documents.

Two fusions of the dense and the keyword ranking:
- ``convex`` (the default): every candidate's cosine similarity plus ``weight`` times its
  BM25 score divided by the best BM25 score among the candidates. Scores, not ranks, so a
  keyword match only moves a passage when the dense side has no clear favourite; with a
  small weight the order stays the dense one unless the keyword evidence is strong
  (Bruch et al., "An Analysis of Fusion Functions for Hybrid Retrieval", 2023).
- ``rrf``: reciprocal rank fusion (Cormack et al., 2009), ranks only.

``diversify`` puts at most ``per_document`` passages of each document first, so five
passages are five chances to find the right page rather than five pieces of the same one.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable

FUSIONS = ("convex", "rrf")
RRF_K = 60  # the constant of reciprocal rank fusion


def rrf(rankings: list[list[str]], k: int = RRF_K) -> list[str]:
    """Reciprocal rank fusion: each list adds 1/(k + rank) to an id's score."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda item: -scores[item])


def convex(
    cosine: dict[str, float],
    keyword: dict[str, float],
    weight: float,
    best: float | None = None,
) -> list[str]:
    """Ids of ``cosine`` (every candidate) by cosine + weight * keyword / best keyword score
    (``best``: the query's best BM25 score, by default the best in ``keyword``)."""
    best = max(keyword.values(), default=0.0) if best is None else best
    scale = weight / best if best > 0 else 0.0

    def score(item: str) -> float:
        return cosine[item] + scale * keyword.get(item, 0.0)

    return sorted(cosine, key=lambda item: -score(item))


def diversify(
    order: Iterable[str], document: Callable[[str], Hashable], per_document: int | None
) -> list[str]:
    """``order`` with at most ``per_document`` ids of each document first, then the others in
    their order (None: no limit). Five passages thus cover five documents where the
    candidates have them; where fewer documents are relevant, more passages of the same
    documents fill the remaining places instead of nothing."""
    order = list(order)
    if not per_document:
        return order
    seen: dict[Hashable, int] = {}
    first, rest = [], []
    for item in order:
        doc = document(item)
        if seen.get(doc, 0) < per_document:
            seen[doc] = seen.get(doc, 0) + 1
            first.append(item)
        else:
            rest.append(item)
    return first + rest
