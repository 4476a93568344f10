"""What the analytics read: the answer log, the feedback store and the escalation outbox.

Each is an SQLite file in HOME, opened read-only here (``mode=ro``), so the same code serves
``GET /v1/admin/analytics`` inside the server and ``assistant report`` with no server
running, and neither ever writes to them. A file that does not exist yet reads as empty;
files from older versions (no ``grounded``/``question`` column in the answer log, no
``completion_id`` in the feedback store) are read with what they have.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from assistant.chat.answer_log import last_question, state_of

CHUNK = 500  # ids per "IN (...)": well under SQLite's variable limit


@contextmanager
def _read(path: Path) -> Iterator[sqlite3.Connection | None]:
    if not path.is_file():
        yield None
        return
    # read-only: a report never writes to the server's files (quoted: '?' or '#' in a path)
    db = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=30)
    try:
        yield db
    finally:
        db.close()


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _chunks(items: list, size: int = CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class AnalyticsSources:
    def __init__(self, answers: Path, feedback: Path, escalations: Path) -> None:
        self.answers_path = Path(answers)
        self.feedback_path = Path(feedback)
        self.escalations_path = Path(escalations)

    @classmethod
    def from_home(cls, home: Path) -> AnalyticsSources:
        """The files as ``assistant serve`` names them (see ``Settings``)."""
        home = Path(home)
        return cls(home / "answers.sqlite", home / "feedback.sqlite", home / "escalations.sqlite")

    # --- answers ---------------------------------------------------------------------------
    def _answer_select(self, db: sqlite3.Connection) -> str:
        have = _columns(db, "answers")
        grounded = "grounded" if "grounded" in have else "(sources != '[]')"
        question = "question" if "question" in have else "NULL"
        # the raw conversation is read only where no scrubbed question was kept
        return (
            f"SELECT id, user, created_at, conversation, {grounded}, {question}, "
            f"CASE WHEN {question} IS NULL THEN messages END, sources FROM answers"
        )

    @staticmethod
    def _answer(row: tuple) -> dict:
        messages = json.loads(row[6]) if row[6] is not None else None
        return {
            "id": row[0],
            "user": row[1],
            "created_at": row[2],
            "conversation": row[3],
            "grounded": None if row[4] is None else bool(row[4]),
            "question": row[5],  # scrubbed; None in rows from before the column
            "raw_question": last_question(messages) if messages is not None else None,
            "sources": json.loads(row[7] or "[]"),
        }

    def answers(self, start: float, end: float) -> list[dict]:
        """Every answer given in ``[start, end)`` (Unix times), oldest first."""
        with _read(self.answers_path) as db:
            if db is None:
                return []
            rows = db.execute(
                self._answer_select(db) + " WHERE created_at >= ? AND created_at < ? "
                "ORDER BY created_at",
                (start, end),
            ).fetchall()
        return [self._answer(r) for r in rows]

    def answers_by_id(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
        """Answers by (completion id, user), wherever in time they are."""
        found: dict[tuple[str, str], dict] = {}
        with _read(self.answers_path) as db:
            if db is None or not keys:
                return found
            select = self._answer_select(db)
            for part in _chunks(sorted({k[0] for k in keys})):
                marks = ", ".join("?" * len(part))
                for row in db.execute(f"{select} WHERE id IN ({marks})", part):
                    found[(row[0], row[1])] = self._answer(row)
        return {k: found[k] for k in keys if k in found}

    def answer_matching(self, user: str, answer: str) -> dict | None:
        """The latest answer of ``user`` with this text (feedback from before
        ``completion_id`` was kept names its answer only by content)."""
        with _read(self.answers_path) as db:
            if db is None:
                return None
            row = db.execute(
                self._answer_select(db) + " WHERE user = ? AND answer = ? "
                "ORDER BY created_at DESC LIMIT 1",
                (user, answer),
            ).fetchone()
        return self._answer(row) if row else None

    def last_answer(
        self, user: str, before: float, conversation: str | None = None,
        transcript: list[dict] | None = None,
    ) -> dict | None:  # fmt: skip
        """The answer an escalation was about: the conversation's last one before
        ``before``, or (escalations sent as ``messages``) the answer whose conversation
        is exactly the transcript."""
        with _read(self.answers_path) as db:
            if db is None:
                return None
            if conversation is not None:
                where, args = "conversation = ? AND user = ? AND created_at <= ?", (
                    conversation, user, before,
                )  # fmt: skip
            elif transcript:
                where, args = "user = ? AND state = ?", (user, state_of(transcript))
            else:
                return None
            row = db.execute(
                f"{self._answer_select(db)} WHERE {where} ORDER BY created_at DESC LIMIT 1", args
            ).fetchone()
        return self._answer(row) if row else None

    def not_grounded_since(self, after: float, limit: int = 256) -> list[tuple[float, str]]:
        """(time, scrubbed question) of answers not grounded after ``after``, oldest first."""
        with _read(self.answers_path) as db:
            if db is None or "question" not in _columns(db, "answers"):
                return []
            return db.execute(
                "SELECT created_at, question FROM answers WHERE created_at > ? AND grounded = 0 "
                "AND question IS NOT NULL ORDER BY created_at LIMIT ?",
                (after, limit),
            ).fetchall()

    # --- feedback --------------------------------------------------------------------------
    def feedback(self, start: float, end: float) -> list[dict]:
        """Ratings given in ``[start, end)``."""
        with _read(self.feedback_path) as db:
            if db is None:
                return []
            completion = "completion_id" if "completion_id" in _columns(db, "feedback") else "NULL"
            rows = db.execute(
                f"SELECT id, created_at, rating, correction IS NOT NULL, user, {completion}, "
                "messages, answer FROM feedback WHERE created_at >= ? AND created_at < ? "
                "ORDER BY created_at",
                (start, end),
            ).fetchall()
        keys = ("id", "created_at", "rating", "corrected", "user", "completion_id")
        return [
            {
                **dict(zip(keys, r[:6], strict=True)),
                "raw_question": last_question(json.loads(r[6])),
                "answer": r[7],
            }
            for r in rows
        ]

    # --- escalations -----------------------------------------------------------------------
    def escalations(self, start: float, end: float) -> list[dict]:
        """Escalations asked for in ``[start, end)``, with the conversation they name."""
        with _read(self.escalations_path) as db:
            if db is None:
                return []
            rows = db.execute(
                "SELECT id, user, created_at, state, ticket FROM escalations "
                "WHERE created_at >= ? AND created_at < ? ORDER BY created_at",
                (start, end),
            ).fetchall()
        found = []
        for escalation, user, created_at, state, ticket in rows:
            ticket = json.loads(ticket)
            transcript = ticket.get("transcript") or []
            found.append(
                {
                    "id": escalation,
                    "user": user,
                    "created_at": created_at,
                    "state": state,
                    "conversation": ticket.get("conversation_id"),
                    "transcript": transcript,
                    "raw_question": last_question(transcript),
                }
            )
        return found
