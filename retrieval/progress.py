"""What an indexing run tells as it goes, and to whom: one ``IndexObserver``.

The ``assistant index`` command shows a progress bar and its messages (``ConsoleObserver``),
a server's reindex job keeps its progress for ``GET /v1/admin/reindex/{id}``
(``assistant.knowledge.jobs.JobProgress``), tests and scripts hear nothing (``QuietObserver``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass
class Progress:
    """Where a run is: files done of total, chunks embedded so far."""

    files_done: int = 0
    files_total: int = 0
    chunks: int = 0


class IndexObserver(Protocol):
    """Told by ``retrieval.indexer.Indexer.run``, in this order: ``started`` once, then
    ``advanced`` and ``message`` as the files go by, ``finished`` once, then the run's last
    ``message``s. ``progress`` is the run's own, updated in place: read it, don't keep it."""

    def started(self, progress: Progress) -> None:
        """The files to (re)index are counted (``progress.files_total``); none is done yet."""

    def advanced(self, progress: Progress, files: int) -> None:
        """``files`` more files are done: written (``progress.chunks`` then counts the
        chunks embedded so far), skipped, or counted by a dry run."""

    def message(self, text: str) -> None:
        """One line for the person who runs it: what a dry run would do, a file skipped
        and why."""

    def finished(self, progress: Progress) -> None:
        """No file is left to do: every one is, or the run was cancelled."""


class QuietObserver:
    """Hears nothing."""

    def started(self, progress: Progress) -> None:
        pass

    def advanced(self, progress: Progress, files: int) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def finished(self, progress: Progress) -> None:
        pass


class ConsoleObserver:
    """A tqdm bar on stderr ("indexing", files, and the chunks embedded so far) unless
    ``bar`` is false or nothing is to be done; the messages go to ``log``."""

    def __init__(self, log: Callable[[str], None] = print, *, bar: bool = True) -> None:
        self.log = log
        self.bar = bar
        self._tqdm = None

    def started(self, progress: Progress) -> None:
        from tqdm import tqdm

        total = progress.files_total
        self._tqdm = tqdm(
            total=total, desc="indexing", unit="file", disable=not self.bar or not total
        )

    def advanced(self, progress: Progress, files: int) -> None:
        self._tqdm.update(files)
        if progress.chunks:
            self._tqdm.set_postfix(chunks=progress.chunks)

    def message(self, text: str) -> None:
        self.log(text)

    def finished(self, progress: Progress) -> None:
        self._tqdm.close()
