"""The feedback store: rated answers from the chat page, in SQLite, and their training use.

The page (through the gateway) adds a row per rating: the conversation up to the
question, the answer, its sources, the model, +1 or -1, and an optional correction.
``training_conversations`` turns them into chat records for ``assistant finetune``:
liked answers as they are; disliked ones only where someone wrote a correction, which
then stands as the answer. Everything else stays out of training.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from assistant.storage.sqlite import SqliteStore, add_column, script

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    model TEXT NOT NULL,
    messages TEXT NOT NULL,          -- JSON: the conversation up to and with the question
    answer TEXT NOT NULL,
    sources TEXT NOT NULL DEFAULT '[]',  -- JSON: the citations shown with the answer
    rating INTEGER NOT NULL CHECK (rating IN (-1, 1)),
    correction TEXT,                 -- what the answer should have said, if someone wrote it
    user TEXT,
    completion_id TEXT               -- the rated answer's id in the server's answer log
);
CREATE INDEX IF NOT EXISTS feedback_created ON feedback (created_at);
"""
# the schema as it is now; a file from before ``completion_id`` gets it (NULL in old rows)
MIGRATIONS = [script("feedback", SCHEMA), add_column("feedback", "completion_id", "TEXT")]

COLUMNS = ("id", "created_at", "model", "messages", "answer", "sources", "rating", "correction",
           "user", "completion_id")  # fmt: skip


class FeedbackStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._store = SqliteStore(self.path, MIGRATIONS)

    def add(
        self,
        *,
        model: str,
        messages: list[dict],
        answer: str,
        rating: int,
        sources: list[dict] | None = None,
        correction: str | None = None,
        user: str | None = None,
        completion_id: str | None = None,
    ) -> int:
        if rating not in (-1, 1):
            raise ValueError("rating must be 1 (liked) or -1 (disliked)")
        if not messages or messages[-1].get("role") != "user":
            raise ValueError("messages must end with the user's question")
        cursor = self._store.execute(
            "INSERT INTO feedback (created_at, model, messages, answer, sources, rating, "
            "correction, user, completion_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                time.time(),
                model,
                json.dumps(messages, ensure_ascii=False),
                answer,
                json.dumps(sources or [], ensure_ascii=False),
                rating,
                (correction or "").strip() or None,
                user,
                completion_id,
            ),
        )
        return int(cursor.lastrowid)

    def latest(self, limit: int = 20) -> list[dict]:
        rows = self._store.fetchall(
            f"SELECT {', '.join(COLUMNS)} FROM feedback ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [_row(r) for r in rows]

    def all(self) -> list[dict]:
        rows = self._store.fetchall(f"SELECT {', '.join(COLUMNS)} FROM feedback ORDER BY id")
        return [_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        [(liked, disliked, corrected)] = self._store.fetchall(
            "SELECT COALESCE(SUM(rating = 1), 0), COALESCE(SUM(rating = -1), 0), "
            "COALESCE(SUM(rating = -1 AND correction IS NOT NULL), 0) FROM feedback"
        )
        return {"liked": liked, "disliked": disliked, "corrected": corrected}

    def training_conversations(self) -> list[dict]:
        """``{"id", "messages"}`` records: liked answers, and corrections of disliked ones."""
        records = []
        for row in self.all():
            if row["rating"] == 1:
                answer = row["answer"]
            elif row["correction"]:
                answer = row["correction"]
            else:
                continue
            messages = [m for m in row["messages"] if m.get("role") in {"user", "assistant"}]
            records.append(
                {
                    "id": f"feedback-{row['id']}",
                    "messages": [*messages, {"role": "assistant", "content": answer}],
                }
            )
        return records

    def close(self) -> None:
        self._store.close()


def _row(row: tuple) -> dict:
    data = dict(zip(COLUMNS, row, strict=True))
    data["messages"] = json.loads(data["messages"])
    data["sources"] = json.loads(data["sources"])
    return data
