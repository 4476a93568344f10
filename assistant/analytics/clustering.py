"""Agglomerative clustering of unit vectors with a cosine-distance threshold.

Average linkage (UPGMA) over cosine distances, cut where clusters are further apart than
``threshold``: scipy's ``linkage`` (the nearest-neighbour-chain algorithm that
scikit-learn's ``AgglomerativeClustering`` also calls), fed with distances from one float32
matrix product instead of ``pdist``. That needs n^2 memory and time, so above ``exact_limit``
points a first pass groups near-duplicates (``leaders``: each point joins the first leader
within ``threshold / 2``, else leads a group of its own, in blocks of matrix products), and
the linkage runs over the groups' centroids; every point takes its group's cluster. Near
duplicates end up together either way, so the result differs from the exact one only at
the margins, and 10,000 questions cluster in a second or two on two cores.
"""

from __future__ import annotations

EXACT_LIMIT = 3000  # 3000^2 float32 distances: 36 MB and well under a second


def _unit(vectors):
    import numpy as np

    x = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def average_linkage(x, threshold: float):
    """Labels 0..k-1 of unit vectors ``x`` cut at cosine distance ``threshold``."""
    import numpy as np
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = len(x)
    if n < 2:
        return np.zeros(n, dtype=np.int64)
    distances = 1.0 - x @ x.T
    np.clip(distances, 0.0, 2.0, out=distances)
    np.fill_diagonal(distances, 0.0)
    distances = (distances + distances.T) / 2  # float32 products are not exactly symmetric
    tree = linkage(squareform(distances, checks=False).astype(np.float64), method="average")
    return fcluster(tree, t=threshold, criterion="distance").astype(np.int64) - 1


def leaders(x, radius: float, block: int = 1024):
    """One pass, in order: each point joins the most similar earlier leader within cosine
    distance ``radius``, else becomes a leader. Returns (group of each point, centroids)."""
    import numpy as np

    n, dim = x.shape
    floor = 1.0 - radius
    group = np.empty(n, dtype=np.int64)
    heads = np.empty((0, dim), dtype=np.float32)
    for start in range(0, n, block):
        part = x[start : start + block]
        if len(heads):
            sims = part @ heads.T
            best = sims.argmax(axis=1)
            close = sims[np.arange(len(part)), best] >= floor
        else:
            best = np.zeros(len(part), dtype=np.int64)
            close = np.zeros(len(part), dtype=bool)
        group[start + np.flatnonzero(close)] = best[close]
        rest = np.flatnonzero(~close)
        if not len(rest):
            continue
        among = part[rest] @ part[rest].T  # the block's newcomers against each other
        new: list[int] = []  # positions in ``rest`` that became leaders
        for i in range(len(rest)):
            if new:
                sims = among[i, new]
                j = int(sims.argmax())
                if sims[j] >= floor:
                    group[start + rest[i]] = len(heads) + j
                    continue
            group[start + rest[i]] = len(heads) + len(new)
            new.append(i)
        heads = np.vstack([heads, part[rest[new]]])
    sums = np.zeros_like(heads)
    np.add.at(sums, group, x)
    return group, _unit(sums)


def agglomerate(vectors, threshold: float, exact_limit: int = EXACT_LIMIT):
    """Cluster labels (0..k-1) of ``vectors``; put the most frequent items first, as
    they become the leaders of their groups when there are more than ``exact_limit``."""
    import numpy as np

    x = _unit(vectors)
    if len(x) <= exact_limit:
        return average_linkage(x, threshold)
    radius = threshold / 2
    group, centroids = leaders(x, radius)
    while len(centroids) > exact_limit:  # very spread-out data: coarser groups first
        radius *= 1.5
        coarse, centroids = leaders(centroids, radius)
        group = coarse[group]
    return np.asarray(average_linkage(centroids, threshold))[group]
