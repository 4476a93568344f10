"""Embeddings of analytics questions, kept so that each question is embedded once.

Embedding is most of a content-gap report's time (MiniLM: a few hundred questions a second
on two CPU cores); the admin tab asks again and again for overlapping ranges, and a weekly
report overlaps the server's own. Vectors are kept in SQLite by (model, SHA-256 of the
text), as float32; those not used for ``keep_days`` are deleted. The cache is an
optimisation only: where its file cannot be written, texts are embedded every time.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from pathlib import Path

from assistant.errors import UserError
from assistant.storage.sqlite import SqliteStore, script

log = logging.getLogger("assistant")

SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    model TEXT NOT NULL,
    key BLOB NOT NULL,          -- SHA-256 of the text
    vector BLOB NOT NULL,       -- float32
    used_at REAL NOT NULL,
    PRIMARY KEY (model, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vectors_used ON vectors (used_at);
"""
MIGRATIONS = [script("vectors", SCHEMA)]
CHUNK = 500


def _key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "replace")).digest()


class VectorCache:
    def __init__(self, path: Path, keep_days: float = 90) -> None:
        self.path = Path(path)
        self.keep_s = keep_days * 86400
        self._lock = threading.Lock()  # one embedding at a time: each text embedded once
        self._sqlite: SqliteStore | None = None

    def _open(self) -> SqliteStore | None:
        if self._sqlite is None:
            try:
                self._sqlite = SqliteStore(
                    self.path,
                    MIGRATIONS,
                    pragmas={"synchronous": "NORMAL"},  # a lost vector is embedded again
                    timeout=30,
                )
            except (OSError, sqlite3.Error, UserError) as exc:
                log.warning("no vector cache at %s (%s): embedding every question", self.path, exc)
        return self._sqlite

    def embed(self, embedder, texts: list[str]):
        """Vectors of ``texts`` (an n x d float32 array) with ``embedder.embed``, reusing
        every one already known for ``embedder.name``."""
        import numpy as np

        model = str(getattr(embedder, "name", type(embedder).__name__))
        keys = [_key(t) for t in texts]
        with self._lock:
            known = self._lookup(model, keys)
            missing = [i for i, k in enumerate(keys) if k not in known]
            fresh = embedder.embed([texts[i] for i in missing]) if missing else []
            fresh = np.asarray(fresh, dtype=np.float32)
            self._store(model, [(keys[i], fresh[n]) for n, i in enumerate(missing)], known)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        dim = fresh.shape[1] if len(missing) else len(next(iter(known.values())))
        out = np.empty((len(texts), dim), dtype=np.float32)
        for n, i in enumerate(missing):
            out[i] = fresh[n]
        for i, k in enumerate(keys):
            if k in known:
                out[i] = known[k]
        return out

    def _lookup(self, model: str, keys: list[bytes]) -> dict:
        import numpy as np

        store = self._open()
        found: dict[bytes, object] = {}
        if store is None:
            return found
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), CHUNK):
            part = unique[start : start + CHUNK]
            rows = store.fetchall(
                f"SELECT key, vector FROM vectors WHERE model = ? AND key IN "
                f"({', '.join('?' * len(part))})",
                (model, *part),
            )
            for key, blob in rows:
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def _store(self, model: str, new: list[tuple[bytes, object]], known: dict) -> None:
        store = self._open()
        if store is None:
            return
        now = time.time()
        try:
            with store.transaction() as db:
                db.executemany(
                    "INSERT OR REPLACE INTO vectors (model, key, vector, used_at) "
                    "VALUES (?, ?, ?, ?)",
                    [(model, key, vector.tobytes(), now) for key, vector in new],
                )
                db.executemany(
                    "UPDATE vectors SET used_at = ? WHERE model = ? AND key = ?",
                    [(now, model, key) for key in known],
                )
                db.execute("DELETE FROM vectors WHERE used_at < ?", (now - self.keep_s,))
        except sqlite3.Error as exc:  # a full disk or a read-only HOME: keep going uncached
            log.warning("vector cache not updated (%s)", exc)

    def close(self) -> None:
        with self._lock:
            if self._sqlite is not None:
                self._sqlite.close()
                self._sqlite = None
