"""What the server answered, to whom: the record that feedback points at, and each
user's conversation history.

Every chat completion the gateway returns (streamed or not) is kept with its id, the user
who asked, the conversation as they sent it, the answer, the sources and the model. A
rating then names a completion id of the caller's own, and the feedback store takes the
question and answer from here, never from the client: nobody can put invented "liked
answers" into the data that ``finetune --from-feedback`` trains on.

Answers are grouped into conversations without any id from the client: a request whose
earlier messages are exactly a recorded conversation plus its last answer continues that
conversation (the OpenAI API sends the whole history each time). History older than the
retention is deleted for real (SQLite's secure_delete overwrites the freed pages).

For the IT team's analytics (``assistant.analytics.service``) each answer also keeps whether it was
grounded and its question PII-scrubbed (``finetune.pii``): reports read only that column,
never the conversation as sent. The scrubbing runs on a thread of its own after the answer
is written, so history never waits for it (the first scrub of a process may load the
given-names list; on a machine without its cache, that takes seconds); a report that finds
the column still empty scrubs the question itself. Files from before these columns are
migrated when opened.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from assistant.storage.sqlite import SqliteStore, add_column, script
from finetune.pii import Scrubber

log = logging.getLogger("assistant")

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id TEXT NOT NULL,                    -- the completion id the client saw
    user TEXT NOT NULL,
    created_at REAL NOT NULL,
    model TEXT NOT NULL,
    messages TEXT NOT NULL,              -- JSON: the conversation as the user sent it
    answer TEXT NOT NULL,
    sources TEXT NOT NULL DEFAULT '[]',  -- JSON: the citations returned with it
    conversation TEXT NOT NULL,
    state TEXT NOT NULL,                 -- hash of messages + answer: what a follow-up extends
    grounded INTEGER,                    -- 1/0: answered from the docs or not; NULL: retrieval off
    question TEXT,                       -- the last question, PII-scrubbed, for analytics
    tried TEXT,                          -- JSON: passages found but not given to the model
    PRIMARY KEY (id, user)               -- ids come from the engine: never trust them unique
);
CREATE INDEX IF NOT EXISTS answers_user ON answers (user, created_at);
CREATE INDEX IF NOT EXISTS answers_created ON answers (created_at);
CREATE INDEX IF NOT EXISTS answers_state ON answers (user, state);
CREATE INDEX IF NOT EXISTS answers_conversation ON answers (conversation, created_at);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    title TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_user ON conversations (user, updated_at);
"""

# The schema as it is now, then the columns added after the first release (a file from
# before a column gets it when opened), with what older rows get: an answer that came with
# sources was grounded; one without is counted as not grounded (retrieval was on by
# default); its question is scrubbed when a report first needs it.
MIGRATIONS = [
    script("answers, conversations", SCHEMA),
    add_column("answers", "grounded", "INTEGER", "UPDATE answers SET grounded = (sources != '[]')"),
    add_column("answers", "question", "TEXT"),
    add_column("answers", "tried", "TEXT"),
]


def last_question(messages: list[dict]) -> str:
    """The last user message's text ("" when there is none)."""
    found = (m.get("content") for m in reversed(messages) if m.get("role") == "user")
    return str(next(found, "") or "")


def default_scrub() -> Callable[[str], str]:
    return Scrubber().scrub


def state_of(messages: list[dict]) -> str:
    """A conversation's fingerprint: what a follow-up (or an escalation) is matched on."""
    canonical = [{"role": m.get("role"), "content": m.get("content") or ""} for m in messages]
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


class AnswerLog:
    def __init__(
        self, path: Path, retention_days: float = 0, scrub: Callable[[str], str] | None = None
    ) -> None:
        """``retention_days``: history older than this is deleted (0: kept); ``scrub``
        removes personal data from the question kept for analytics (default:
        ``finetune.pii.Scrubber``, built at the first answer)."""
        self.path = Path(path)
        self.retention_days = retention_days
        # WAL + NORMAL: a crash never corrupts the log; only a power cut can lose the last
        # answers written (no fsync per answer, which would cost the server more than the
        # answer itself).
        self._store = SqliteStore(
            self.path, MIGRATIONS, pragmas={"secure_delete": "ON", "synchronous": "NORMAL"}
        )
        self._db = self._store.db  # for reads, and for writes under self._store.lock
        self._scrub = scrub
        self._purged_at = 0.0
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="answer-log")
        self._pending: Future | None = None
        self._scrubber = ThreadPoolExecutor(max_workers=1, thread_name_prefix="answer-scrub")
        self._scrubbing: Future | None = None
        self.purge()

    def record_later(self, **answer) -> None:
        """``record`` on the log's own thread, in order; reads wait for it (``flush``)."""
        self._pending = self._writer.submit(self.record, **answer)

    def flush(self) -> None:
        """Wait for answers still being written."""
        pending = self._pending
        if pending is not None:
            try:
                pending.result(timeout=10)
            except Exception:  # a failed write was logged where it happened; reads go on
                log.exception("recording an answer failed")

    def settle(self) -> None:
        """Wait for answers being written and for their questions to be scrubbed."""
        self.flush()
        scrubbing = self._scrubbing
        if scrubbing is not None:
            try:
                scrubbing.result(timeout=60)
            except Exception:  # logged where it happened; a report scrubs what is missing
                log.exception("scrubbing a question for analytics failed")

    def _keep_question(self, id: str, user: str, question: str) -> None:
        """Store the question, PII-scrubbed, for analytics (on the scrubbing thread)."""
        try:
            if self._scrub is None:
                self._scrub = default_scrub()
            scrubbed = self._scrub(question)
        except Exception:  # the column stays empty: a report scrubs the question itself
            log.exception("scrubbing a question for analytics failed")
            return
        self._store.execute(
            "UPDATE answers SET question = ? WHERE id = ? AND user = ?", (scrubbed, id, user)
        )

    def purge(self, now: float | None = None) -> int:
        """Delete answers and conversations older than the retention; returns how many."""
        if not self.retention_days:
            return 0
        now = time.time() if now is None else now
        cutoff = now - self.retention_days * 86400
        self._purged_at = now
        with self._store.lock:
            gone = self._db.execute("DELETE FROM answers WHERE created_at < ?", (cutoff,)).rowcount
            self._db.execute(
                "DELETE FROM conversations WHERE id NOT IN (SELECT DISTINCT conversation "
                "FROM answers)"
            )
        return gone

    def record(
        self, *, id: str, user: str, model: str, messages: list[dict], answer: str,
        sources: list[dict] | None = None, grounded: bool | None = None,
        tried: list[dict] | None = None,
    ) -> str:  # fmt: skip
        """Keep an answer; returns the id of the conversation it belongs to. ``grounded``:
        whether retrieval found passages for it (``None``: retrieval was off); ``tried``:
        the passages it found that the model was not given (under the relevance bar)."""
        now = time.time()
        if now - self._purged_at > 3600:  # the retention is applied while the server runs too
            self.purge(now)
        state = state_of([*messages, {"role": "assistant", "content": answer}])
        with self._store.transaction():  # one commit (one fsync) per answer
            row = None
            if len(messages) > 1:
                row = self._db.execute(
                    "SELECT a.conversation FROM answers a JOIN conversations c "
                    "ON c.id = a.conversation WHERE a.user = ? AND a.state = ? "
                    "ORDER BY a.created_at DESC LIMIT 1",
                    (user, state_of(messages[:-1])),
                ).fetchone()
            if row is not None:
                conversation = row[0]
                self._db.execute(
                    "UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation)
                )
            else:
                conversation = "conv-" + secrets.token_hex(8)
                question = next(
                    (m["content"] for m in reversed(messages) if m.get("role") == "user"), ""
                )
                title = " ".join(str(question).split())[:80] or "(no question)"
                self._db.execute(
                    "INSERT INTO conversations (id, user, title, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (conversation, user, title, now, now),
                )
            self._db.execute(
                "INSERT OR REPLACE INTO answers (id, user, created_at, model, messages, answer, "
                "sources, conversation, state, grounded, tried) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (id, user, now, model, json.dumps(messages), answer, json.dumps(sources or []),
                 conversation, state, None if grounded is None else int(grounded),
                 json.dumps(tried or [])),
            )  # fmt: skip
        self._scrubbing = self._scrubber.submit(
            self._keep_question, id, user, last_question(messages)
        )
        return conversation

    # --- history ---------------------------------------------------------------------------
    def conversations(self, user: str, limit: int = 50) -> list[dict]:
        self.flush()
        rows = self._db.execute(
            "SELECT c.id, c.title, c.created_at, c.updated_at, COUNT(a.id) FROM conversations c "
            "JOIN answers a ON a.conversation = c.id WHERE c.user = ? GROUP BY c.id "
            "ORDER BY c.updated_at DESC LIMIT ?",
            (user, limit),
        ).fetchall()
        keys = ("id", "title", "created_at", "updated_at", "answers")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def conversation(self, conversation: str, user: str) -> dict | None:
        """The whole conversation (the last answer's history plus that answer), and each
        answer with its completion id and sources; ``None`` unless it is ``user``'s."""
        self.flush()
        head = self._db.execute(
            "SELECT id, title, created_at, updated_at FROM conversations WHERE id = ? AND user = ?",
            (conversation, user),
        ).fetchone()
        if head is None:
            return None
        rows = self._db.execute(
            "SELECT id, messages, answer, sources, model, created_at, tried FROM answers "
            "WHERE conversation = ? ORDER BY created_at",
            (conversation,),
        ).fetchall()
        if not rows:
            return None
        last = rows[-1]
        messages = [*json.loads(last[1]), {"role": "assistant", "content": last[2]}]
        return {
            "id": head[0],
            "title": head[1],
            "created_at": head[2],
            "updated_at": head[3],
            "messages": messages,
            "answers": [
                {
                    "completion_id": r[0],
                    "answer": r[2],
                    "sources": json.loads(r[3]),
                    "model": r[4],
                    "created_at": r[5],
                    "tried": json.loads(r[6] or "[]"),
                }
                for r in rows
            ],
        }

    def rename(self, conversation: str, user: str, title: str) -> bool:
        self.flush()
        changed = self._store.execute(
            "UPDATE conversations SET title = ? WHERE id = ? AND user = ?",
            (title, conversation, user),
        ).rowcount
        return bool(changed)

    def delete(self, conversation: str, user: str) -> bool:
        self.flush()
        with self._store.lock:
            owned = self._db.execute(
                "DELETE FROM conversations WHERE id = ? AND user = ?", (conversation, user)
            ).rowcount
            if owned:
                self._db.execute("DELETE FROM answers WHERE conversation = ?", (conversation,))
        return bool(owned)

    def get(self, completion_id: str, user: str) -> dict | None:
        """The answer with this id, if ``user`` was the one who got it."""
        self.flush()
        row = self._db.execute(
            "SELECT id, model, messages, answer, sources FROM answers WHERE id = ? AND user = ?",
            (completion_id, user),
        ).fetchone()
        if row is None:
            return None
        return {
            "id": row[0],
            "model": row[1],
            "messages": json.loads(row[2]),
            "answer": row[3],
            "sources": json.loads(row[4]),
        }

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._scrubber.shutdown(wait=True)
        self._store.close()
