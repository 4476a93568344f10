"""The escalation outbox: every ticket asked for, kept in SQLite before the request returns.

A row holds the whole ticket (transcript, sources, user, model, links) as JSON, its state
(``queued`` until every connector has it, then ``sent``; ``failed`` once a connector gave
up), what each connector answered, and when the worker tries next. Rows still ``queued``
when the server dies are picked up at the next start (``EscalationWorker``), so nothing
asked for is lost; each row's idempotency key is sent with every attempt, so a receiver
that honours it makes one ticket however often a delivery is retried.

Writes are ``synchronous=FULL``: a 201 means the row is on disk, power cut included.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

from assistant.storage.sqlite import SqliteStore, add_column, script

SCHEMA = """
CREATE TABLE IF NOT EXISTS escalations (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    state TEXT NOT NULL,                  -- queued | sent | failed
    ticket TEXT NOT NULL,                 -- JSON: what the connectors render
    idempotency_key TEXT NOT NULL,
    connectors TEXT NOT NULL,             -- JSON list: where it must go, in order
    deliveries TEXT NOT NULL DEFAULT '{}',-- JSON: {connector: {"state", "reference", "reason"}}
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    reason TEXT,                          -- why it failed, or the last retryable error
    queued_at REAL,                       -- re-queued by an admin at (give-up clock), or NULL
    leased_until REAL                     -- being delivered by a worker until then, or NULL
);
CREATE INDEX IF NOT EXISTS escalations_due ON escalations (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS escalations_user ON escalations (user, created_at);
"""
# the schema as it is now, then the columns an outbox from an older version gets
MIGRATIONS = [
    script("escalations", SCHEMA),
    add_column("escalations", "queued_at", "REAL"),
    add_column("escalations", "leased_until", "REAL"),
]

STATES = ("queued", "sent", "failed")
_COLUMNS = (
    "id, user, created_at, updated_at, state, ticket, idempotency_key, connectors, "
    "deliveries, attempts, next_attempt_at, reason, queued_at, leased_until"
)


def _row(row: tuple) -> dict:
    data = dict(zip(_COLUMNS.split(", "), row, strict=True))
    for key in ("ticket", "connectors", "deliveries"):
        data[key] = json.loads(data[key])
    return data


class EscalationStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._store = SqliteStore(self.path, MIGRATIONS, pragmas={"synchronous": "FULL"})

    def _exec(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self._store.fetchall(sql, args)

    @staticmethod
    def new_id() -> str:
        return "esc-" + secrets.token_hex(8)

    def add(self, ticket: dict, user: str, connectors: list[str]) -> dict:
        """Keep a new escalation (state ``queued``, due now); ``ticket["id"]`` is its id."""
        now = time.time()
        key = ticket.get("idempotency_key") or secrets.token_hex(16)
        self._exec(
            f"INSERT INTO escalations ({_COLUMNS}) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, '{{}}', "
            "0, ?, NULL, NULL, NULL)",
            (ticket["id"], user, now, now, json.dumps(ticket), key, json.dumps(connectors), now),
        )
        return self.get(ticket["id"])  # type: ignore[return-value]

    def get(self, escalation: str, user: str | None = None) -> dict | None:
        """The escalation, if it is ``user``'s (any user's with ``None``)."""
        rows = self._exec(f"SELECT {_COLUMNS} FROM escalations WHERE id = ?", (escalation,))
        if not rows or (user is not None and rows[0][1] != user):
            return None
        return _row(rows[0])

    def listing(self, state: str | None = None, limit: int = 50) -> list[dict]:
        where, args = ("WHERE state = ?", (state,)) if state else ("", ())
        rows = self._exec(
            f"SELECT {_COLUMNS} FROM escalations {where} ORDER BY created_at DESC LIMIT ?",
            (*args, limit),
        )
        return [_row(r) for r in rows]

    def claim(self, limit: int = 10, lease_s: float = 600.0) -> list[dict]:
        """Queued escalations whose next attempt is due, oldest first, each leased for
        ``lease_s`` (its next attempt moved that far on) in one write transaction, so two
        gateway processes sharing HOME never deliver the same one at once. The worker sets
        the real next attempt when it is done; a lease left by a killed process runs out
        (or ``make_all_due`` ends it at the next start)."""
        now = time.time()
        with self._store.transaction() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM escalations WHERE state = 'queued' "
                "AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
                (now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE escalations SET next_attempt_at = ?, leased_until = ? WHERE id = ?",
                [(now + lease_s, now + lease_s, row[0]) for row in rows],
            )
        return [_row(r) for r in rows]

    def next_due_at(self) -> float | None:
        rows = self._exec("SELECT MIN(next_attempt_at) FROM escalations WHERE state = 'queued'")
        return rows[0][0] if rows else None

    def make_all_due(self) -> int:
        """At start-up: every queued escalation is tried again now (leases included)."""
        now = time.time()
        return self._store.execute(
            "UPDATE escalations SET next_attempt_at = ?, leased_until = NULL "
            "WHERE state = 'queued' AND next_attempt_at > ?",
            (now, now),
        ).rowcount

    def hurry(self) -> int:
        """Every queued escalation waiting out a backoff is due now (one being delivered,
        leased by this or another process, is left alone); how many."""
        now = time.time()
        return self._store.execute(
            "UPDATE escalations SET next_attempt_at = ? WHERE state = 'queued' "
            "AND next_attempt_at > ? AND (leased_until IS NULL OR leased_until <= ?)",
            (now, now, now),
        ).rowcount

    def record_delivery(self, escalation: str, connector: str, result: dict) -> None:
        """What one connector did, kept at once (a delivered connector is never sent again)."""
        with self._store.transaction() as db:
            row = db.execute(
                "SELECT deliveries FROM escalations WHERE id = ?", (escalation,)
            ).fetchone()
            deliveries = json.loads(row[0]) if row else {}
            deliveries[connector] = result
            db.execute(
                "UPDATE escalations SET deliveries = ?, updated_at = ? WHERE id = ?",
                (json.dumps(deliveries), time.time(), escalation),
            )

    def finish(self, escalation: str, state: str, attempts: int, reason: str | None) -> None:
        self._exec(
            "UPDATE escalations SET state = ?, attempts = ?, reason = ?, updated_at = ?, "
            "leased_until = NULL WHERE id = ?",
            (state, attempts, reason, time.time(), escalation),
        )

    def retry_later(self, escalation: str, attempts: int, at: float, reason: str) -> None:
        self._exec(
            "UPDATE escalations SET attempts = ?, next_attempt_at = ?, reason = ?, "
            "updated_at = ?, leased_until = NULL WHERE id = ?",
            (attempts, at, reason, time.time(), escalation),
        )

    def requeue(self, escalation: str) -> tuple[dict | None, bool]:
        """A ``failed`` escalation queued again, due now, its give-up clock restarted: the
        connectors that failed are tried again, those that delivered keep their ticket.
        The escalation afterwards (``None``: there is none) and whether it was re-queued
        (only a ``failed`` one is)."""
        now = time.time()
        with self._store.transaction() as db:
            row = db.execute(
                "SELECT state, deliveries FROM escalations WHERE id = ?", (escalation,)
            ).fetchone()
            if row is None:
                return None, False
            requeued = row[0] == "failed"
            if requeued:
                kept = {n: d for n, d in json.loads(row[1]).items() if d.get("state") == "sent"}
                db.execute(
                    "UPDATE escalations SET state = 'queued', deliveries = ?, attempts = 0, "
                    "reason = NULL, next_attempt_at = ?, queued_at = ?, updated_at = ? "
                    "WHERE id = ?",
                    (json.dumps(kept), now, now, now, escalation),
                )
        return self.get(escalation), requeued

    def counts(self) -> dict[str, int]:
        found = dict(self._exec("SELECT state, COUNT(*) FROM escalations GROUP BY state"))
        return {state: int(found.get(state, 0)) for state in STATES}

    def close(self) -> None:
        self._store.close()
