"""Retrieval quality on questions with known answers: recall@1, recall@5 and MRR.

A question line is ``{"question": "...", "gold": ["file-name.ext", ...]}``; a hit counts
when its source's file name is one of the gold names. A gold name with a folder in it
(``"mod/mod_ssl.html"``) must match the end of the source's path instead, for manuals
whose folders reuse file names (``howto/htaccess.html`` and ``rewrite/htaccess.html``).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from retrieval.errors import RetrievalError


@dataclass(frozen=True)
class Question:
    text: str
    gold: frozenset[str]


def load_questions(path: Path) -> list[Question]:
    path = Path(path)
    if not path.is_file():
        raise RetrievalError(f"questions file '{path}' does not exist")
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            text, gold = data["question"], data["gold"]
            if not isinstance(text, str) or not text.strip():
                raise ValueError("'question' must be a non-empty string")
            if isinstance(gold, str):
                gold = [gold]
            if not gold or not all(isinstance(g, str) for g in gold):
                raise ValueError("'gold' must be a list of file names")
        except (ValueError, KeyError, TypeError) as exc:
            raise RetrievalError(f"{path}:{number}: not a question line ({exc})") from None
        questions.append(Question(text.strip(), frozenset(_normal(g) for g in gold)))
    if not questions:
        raise RetrievalError(f"'{path}' has no questions")
    return questions


def _normal(gold: str) -> str:
    return PurePosixPath(gold.replace("\\", "/").removeprefix("./")).as_posix()


def is_gold(source: str, gold: frozenset[str]) -> bool:
    """Does a hit from ``source`` (a path relative to the docs root) answer the question?"""
    path = PurePosixPath(source)
    for name in gold:
        if "/" in name:
            if path.as_posix() == name or path.as_posix().endswith("/" + name):
                return True
        elif path.name == name:
            return True
    return False


def evaluate(search: Callable[[str, int], list], questions: list[Question], k: int = 5) -> dict:
    """``search(question, k)`` returns ranked hits with a ``source``; scores over the top k."""
    k = max(k, 1)
    ranks: list[int | None] = []
    seconds: list[float] = []
    for question in questions:
        start = time.perf_counter()
        hits = search(question.text, max(k, 5))
        seconds.append(time.perf_counter() - start)
        sources = [h.source for h in hits[:k]]
        ranks.append(next((i for i, s in enumerate(sources, 1) if is_gold(s, question.gold)), None))
    n = len(questions)

    def recall(at: int) -> float:
        return round(sum(1 for r in ranks if r is not None and r <= at) / n, 4)

    return {
        "n": n,
        "recall@1": recall(1),
        "recall@5": recall(min(5, k)),
        "mrr": round(sum(1.0 / r for r in ranks if r is not None) / n, 4),
        "k": k,
        "query_ms_p50": round(statistics.median(seconds) * 1000, 1),
        "missed": [q.text for q, r in zip(questions, ranks, strict=True) if r is None],
    }
