"""Embed the questions the docs did not answer while the server runs, ahead of any report.

Embedding is nearly all of a cold content-gap report's time (MiniLM: a few hundred
questions a second on two idle cores, far fewer on a busy machine). Inside the server a
thread looks every ``interval_s`` for answers not grounded since its last look (at start:
the last ``backlog_days``), and puts their questions' vectors into the ``VectorCache``, a
small batch at a time so that searches for chat answers never wait long behind it. A
report then embeds only disliked or escalated questions that were grounded. It reads the
answer log's file read-only, like the reports.
"""

from __future__ import annotations

import logging
import threading
import time

from assistant.analytics.content_gaps import gap_text

log = logging.getLogger("assistant")


class GapWarmer:
    def __init__(
        self, sources, cache, embedder, *, interval_s: float = 30.0, batch: int = 32,
        backlog_days: float = 7.0,
    ) -> None:  # fmt: skip
        """``sources``: ``AnalyticsSources``; ``cache``: ``VectorCache``; ``embedder``: the
        one the reports use."""
        self.sources = sources
        self.cache = cache
        self.embedder = embedder
        self.interval_s = interval_s
        self.batch = batch
        self.after = time.time() - backlog_days * 86400
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, limit: int = 256) -> int:
        """Embed what is new (up to ``limit`` answers); returns how many answers were seen."""
        rows = self.sources.not_grounded_since(self.after, limit)
        texts = list(dict.fromkeys(gap_text(question) for _, question in rows if question))
        for start in range(0, len(texts), self.batch):
            if self._stop.is_set():
                return 0
            self.cache.embed(self.embedder, texts[start : start + self.batch])
        if rows:
            self.after = rows[-1][0]
        return len(rows)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once() > 0
            except Exception:  # a locked or damaged file: try again at the next interval
                log.exception("embedding content-gap questions ahead failed")
                busy = False
            self._stop.wait(0.5 if busy else self.interval_s)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gap-warmer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @classmethod
    def of(cls, analytics, interval_s: float) -> GapWarmer | None:
        """The warmer of an ``AnalyticsService``: its sources, cache and embedder (none
        without an embedder, or with ``interval_s`` 0)."""
        gaps = analytics.gaps
        if interval_s <= 0 or gaps.embedder is None or gaps.cache is None:
            return None
        return cls(analytics.sources, gaps.cache, gaps.embedder, interval_s=interval_s)
