"""Background jobs (reindexing) with their state in SQLite, so it outlives a restart.

One worker thread runs jobs in order: two reindexes never write the same collection at
once. A job can be cancelled (``JobRunner.cancel``), and shutting the runner down cancels
every job, so a server that is asked to stop does not wait for a long reindex: the work is
handed an event that it checks between steps, and ends in state "cancelled". A job that was
queued or running when the server died is marked failed ("interrupted") at the next start;
the indexer's own crash safety keeps the index whole.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from assistant.storage.sqlite import SqliteStore, script
from retrieval.progress import Progress

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,          -- JSON
    state TEXT NOT NULL,           -- queued | running | done | failed | cancelled
    progress TEXT NOT NULL,        -- JSON: {"files_done", "files_total", "chunks"}
    result TEXT,                   -- JSON counts when done
    error TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
)
"""
MIGRATIONS = [script("jobs", SCHEMA)]

# Given the job's progress and its cancel event, returns counts (or raises JobCancelled
# once it has stopped because the event was set).
Work = Callable[["JobProgress", threading.Event], dict]


class JobCancelled(Exception):
    """Raised by a job's work when it stopped early because it was cancelled."""

    def __init__(self, result: dict | None = None) -> None:
        super().__init__("cancelled")
        self.result = result  # what it did before it stopped


class JobStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._store = SqliteStore(self.path, MIGRATIONS)
        self._store.execute(
            "UPDATE jobs SET state='failed', error='interrupted: the server stopped', "
            "finished_at=? WHERE state IN ('queued', 'running')",
            (time.time(),),
        )

    def _exec(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self._store.fetchall(sql, args)

    def create(self, kind: str, params: dict) -> str:
        job_id = uuid.uuid4().hex[:16]
        self._exec(
            "INSERT INTO jobs (id, kind, params, state, progress, created_at) "
            "VALUES (?, ?, ?, 'queued', '{}', ?)",
            (job_id, kind, json.dumps(params), time.time()),
        )
        return job_id

    def update(self, job_id: str, **fields: Any) -> None:
        sets, args = [], []
        for key, value in fields.items():
            sets.append(f"{key}=?")
            args.append(json.dumps(value) if key in {"progress", "result"} else value)
        self._exec(f"UPDATE jobs SET {', '.join(sets)} WHERE id=?", (*args, job_id))

    def get(self, job_id: str) -> dict | None:
        rows = self._exec(f"SELECT {_COLUMNS} FROM jobs WHERE id=?", (job_id,))
        return _row(rows[0]) if rows else None

    def latest(self, limit: int = 20) -> list[dict]:
        rows = self._exec(f"SELECT {_COLUMNS} FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,))
        return [_row(r) for r in rows]

    def close(self) -> None:
        self._store.close()


_COLUMNS = "id, kind, params, state, progress, result, error, created_at, started_at, finished_at"


def _row(row: tuple) -> dict:
    keys = _COLUMNS.split(", ")
    data = dict(zip(keys, row, strict=True))
    for key in ("params", "progress", "result"):
        data[key] = json.loads(data[key]) if data[key] else None
    return data


class JobProgress:
    """A reindex's ``retrieval.progress.IndexObserver`` that keeps its progress with the
    job: at most every half second, and always once every file is done."""

    def __init__(self, store: JobStore, job_id: str) -> None:
        self.store = store
        self.job_id = job_id
        self._last = 0.0

    def started(self, progress: Progress) -> None:
        self._keep(progress)

    def advanced(self, progress: Progress, files: int) -> None:
        self._keep(progress)

    def message(self, text: str) -> None:
        pass

    def finished(self, progress: Progress) -> None:
        self._keep(progress)

    def _keep(self, progress: Progress) -> None:
        now = time.monotonic()
        if now - self._last >= 0.5 or progress.files_done == progress.files_total:
            self._last = now
            self.store.update(self.job_id, progress=asdict(progress))


class JobRunner:
    """Runs jobs one at a time in a worker thread, recording their state in the store."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobs")
        self._lock = threading.Lock()
        self._cancels: dict[str, threading.Event] = {}  # jobs queued or running
        self._closed = False

    def submit(self, kind: str, params: dict, work: Work) -> str:
        with self._lock:
            if self._closed:
                raise RuntimeError("the job runner is shut down")
            job_id = self.store.create(kind, params)
            self._cancels[job_id] = threading.Event()
            self._pool.submit(self._run, job_id, work)
        return job_id

    def cancel(self, job_id: str) -> bool:
        """Ask a queued or running job to stop; ``False`` when it has already ended."""
        with self._lock:
            event = self._cancels.get(job_id)
        if event is None:
            return False
        event.set()
        return True

    def _run(self, job_id: str, work: Work) -> None:
        with self._lock:
            cancel = self._cancels[job_id]
        try:
            self._run_job(job_id, work, cancel)
        finally:
            with self._lock:
                self._cancels.pop(job_id, None)

    def _run_job(self, job_id: str, work: Work, cancel: threading.Event) -> None:
        if cancel.is_set():  # cancelled while it waited its turn
            self.store.update(job_id, state="cancelled", error="cancelled", finished_at=time.time())
            return
        self.store.update(job_id, state="running", started_at=time.time())
        try:
            result = work(JobProgress(self.store, job_id), cancel)
        except JobCancelled as stopped:
            self.store.update(
                job_id,
                state="cancelled",
                result=stopped.result,
                error="cancelled",
                finished_at=time.time(),
            )
            return
        except Exception as exc:  # a job's failure is its state, never the server's
            self.store.update(
                job_id,
                state="failed",
                error=str(exc) or type(exc).__name__,
                finished_at=time.time(),
            )
            traceback.print_exc()
            return
        self.store.update(job_id, state="done", result=result, finished_at=time.time())

    def wait(self, timeout: float | None = None) -> None:
        """Block until the jobs submitted so far are done (for tests and shutdown)."""
        self._pool.submit(lambda: None).result(timeout=timeout)

    def shutdown(self) -> None:
        """Cancel every job, queued or running, and wait for the running one to stop
        (between two of its steps: about a second for a reindex)."""
        with self._lock:
            self._closed = True
            events = list(self._cancels.values())
        for event in events:
            event.set()
        self._pool.shutdown(wait=True)  # queued jobs pass by, recorded as cancelled
