"""Keyword ranking (Okapi BM25) over the chunks of a collection, in memory.

Dense embeddings blur exact tokens: an error code (``TP-204``), a host name or a product
name. BM25 ranks on those tokens; fused with the dense ranking it finds both the passage
that says the same thing in other words and the one that names the exact thing.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

WORD = re.compile(r"[a-z0-9]+")
# Joined tokens such as tp-204, 10.0.0.1, wi-fi, smtp.fennmoor.com, kept besides their parts.
COMPOUND = re.compile(r"[a-z0-9]+(?:[-_./:][a-z0-9]+)+")
STOPWORDS = frozenset(
    """a an and are as at be but by can do does for from has have how i if in into is it its
    me my no not of on or our so than that the their then there these they this to was we
    what when where which who why will with you your""".split()  # noqa: SIM905
)


def _stem(word: str) -> str:
    """A light plural stemmer: 'printers' -> 'printer', but 'access' and 'os' stay."""
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-3] + "y" if word.endswith("ies") else word[:-1]
    return word


def _is_code(token: str) -> bool:
    """NO_PUBKEY, tp-204, 0x80070005, ah00124, 404; not 5s, ipv6, 2am or plain words."""
    if "_" in token:
        return True
    digits = sum(c.isdigit() for c in token)
    letters = sum(c.isalpha() for c in token)
    if any(sep in token for sep in "-./:"):
        return (digits >= 1 and letters >= 1) or digits >= 3
    return (digits >= 2 and letters >= 1) or (digits >= 3 and letters == 0)


def tokenize(text: str) -> list[str]:
    text = text.lower()
    words = [_stem(w) for w in WORD.findall(text) if w not in STOPWORDS]
    return words + COMPOUND.findall(text)


@dataclass
class Posting:
    rows: np.ndarray  # chunk positions
    weights: np.ndarray  # BM25 weight of the term in each of those chunks


class BM25:
    """Okapi BM25 (k1=1.2, b=0.75) with postings as numpy arrays: a query costs O(matches)."""

    def __init__(self, texts: list[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.size = len(texts)
        counts = [Counter(tokenize(t)) for t in texts]
        lengths = np.array([sum(c.values()) for c in counts], dtype=np.float32)
        avg = float(lengths.mean()) if self.size else 1.0
        rows: dict[str, list[int]] = defaultdict(list)
        tfs: dict[str, list[int]] = defaultdict(list)
        for row, counter in enumerate(counts):
            for term, tf in counter.items():
                rows[term].append(row)
                tfs[term].append(tf)
        self.postings: dict[str, Posting] = {}
        for term, term_rows in rows.items():
            r = np.array(term_rows, dtype=np.int64)
            tf = np.array(tfs[term], dtype=np.float32)
            df = len(term_rows)
            idf = math.log(1.0 + (self.size - df + 0.5) / (df + 0.5))
            norm = tf + k1 * (1.0 - b + b * lengths[r] / max(avg, 1e-9))
            self.postings[term] = Posting(r, (idf * tf * (k1 + 1.0) / norm).astype(np.float32))

    def rare_codes(self, query: str, max_share: float = 0.01) -> list[str]:
        """The query's code-like tokens (TP-204, 0x80070005, NO_PUBKEY, AH00124, port 8080)
        that few chunks contain: where exact matching beats any paraphrase."""
        text = query.lower()
        limit = max(1, int(max_share * self.size))
        return sorted(
            t
            for t in set(COMPOUND.findall(text)) | set(WORD.findall(text))
            if _is_code(t) and t in self.postings and len(self.postings[t].rows) <= limit
        )

    def top(self, query: str, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The ``n`` best (position, score) pairs; chunks sharing no term are never returned,
        nor positions where the boolean mask ``allowed`` is false."""
        terms = [t for t in set(tokenize(query)) if t in self.postings]
        if not terms or n <= 0:
            return []
        scores = np.zeros(self.size, dtype=np.float32)
        for term in terms:
            posting = self.postings[term]
            scores[posting.rows] += posting.weights
        if allowed is not None:
            scores[~allowed] = 0.0
        hit = np.flatnonzero(scores)
        if len(hit) > n:
            hit = hit[np.argpartition(-scores[hit], n - 1)[:n]]
        order = hit[np.argsort(-scores[hit], kind="stable")]
        return [(int(i), float(scores[i])) for i in order]
