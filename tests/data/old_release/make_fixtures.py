"""Writes the database files in this folder with the stores of earlier releases.

Run from the repository root with the release before the storage layer (41c0176) on the
path; the older schemas are taken from the commits before each ad-hoc upgrade:

    git archive 41c0176 assistant retrieval finetune | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old python tests/data/old_release/make_fixtures.py

Each file is then rewritten with 1 KiB pages (VACUUM; the rows and schema stay as the old
code wrote them) so that the fixtures stay a few KB. The secrets in ``secrets.json`` (a
key, a session, a password) are made up for these files only.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
MESSAGES = [{"role": "user", "content": "My VPN says TP-204"}]
FOLLOW = [*MESSAGES, {"role": "assistant", "content": "Reconnect."},
          {"role": "user", "content": "and on my Mac?"}]  # fmt: skip
SOURCES = [{"source": "vpn.md", "title": "VPN"}]


def old_module(commit: str, path: str, name: str) -> types.ModuleType:
    """A module as it was at ``commit`` (those files import the standard library only)."""
    source = subprocess.run(
        ["git", "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
    ).stdout
    module = types.ModuleType(name)
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(source, f"{commit}:{path}", "exec"), module.__dict__)
    return module


def fresh(name: str) -> Path:
    path = HERE / name
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def small(path: Path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("PRAGMA page_size=1024")
    db.execute("VACUUM")
    db.execute("PRAGMA journal_mode=WAL")
    db.close()


def users(secrets: dict) -> None:
    from assistant.identity.users import UserStore

    store = UserStore(fresh("users.sqlite"))
    store.add("alice", ["staff", "vpn"], admin=True, password="old-password-1")
    store.add("bob", [])
    _, secrets["key"] = store.create_key("bob", "laptop")
    _, revoked = store.create_key("bob", "old")
    store.revoke_key(2)
    secrets["revoked_key"] = revoked
    secrets["session"] = store.start_session("alice", 20 * 365 * 86400.0)
    secrets["password"] = "old-password-1"
    store.close()


def answers() -> None:
    from assistant.chat.answer_log import AnswerLog

    log = AnswerLog(fresh("answers.sqlite"), scrub=lambda text: text.upper())
    log.record(id="c1", user="alice", model="m", messages=MESSAGES, answer="Reconnect.",
               sources=SOURCES, grounded=True, tried=[{"source": "wifi.md"}])  # fmt: skip
    log.record(id="c2", user="alice", model="m", messages=FOLLOW, answer="Same.", grounded=False)
    log.settle()
    log.close()
    first = old_module("53c991a^", "assistant/answer_log.py", "answer_log_first")
    log = first.AnswerLog(fresh("answers-first-release.sqlite"))
    log.record(id="c1", user="alice", model="m", messages=MESSAGES, answer="Reconnect.",
               sources=SOURCES)  # fmt: skip
    log.record(id="c2", user="alice", model="m", messages=FOLLOW, answer="Same.")
    log.close()
    before = old_module("162ca05^", "assistant/answer_log.py", "answer_log_before_tried")
    log = before.AnswerLog(fresh("answers-before-tried.sqlite"), scrub=lambda t: t.upper())
    log.record(id="c1", user="alice", model="m", messages=MESSAGES, answer="Reconnect.",
               sources=SOURCES, grounded=True)  # fmt: skip
    log.settle()
    log.close()


def feedback() -> None:
    from finetune.feedback import FeedbackStore  # where the last release kept it

    store = FeedbackStore(fresh("feedback.sqlite"))
    store.add(model="m", messages=MESSAGES, answer="Reconnect.", rating=1, user="alice",
              sources=SOURCES, completion_id="c1")  # fmt: skip
    store.add(model="m", messages=MESSAGES, answer="No.", rating=-1, correction="Reboot.")
    store.close()
    first = old_module("53c991a^", "finetune/feedback.py", "feedback_first")
    store = first.FeedbackStore(fresh("feedback-first-release.sqlite"))
    store.add(model="m", messages=MESSAGES, answer="Reconnect.", rating=1, user="alice",
              sources=SOURCES)  # fmt: skip
    store.add(model="m", messages=MESSAGES, answer="No.", rating=-1, correction="Reboot.")
    store.close()


def escalations() -> None:
    from assistant.escalation.store import EscalationStore

    for name, store in (
        ("escalations.sqlite", EscalationStore),
        ("escalations-first-release.sqlite",
         old_module("7653151^", "assistant/escalation_store.py", "esc_first").EscalationStore),
        ("escalations-before-lease.sqlite",
         old_module("55a0d40^", "assistant/escalation_store.py", "esc_lease").EscalationStore),
    ):  # fmt: skip
        outbox = store(fresh(name))
        outbox.add({"id": "esc-1", "summary": "VPN down"}, "alice", ["webhook"])
        outbox.record_delivery("esc-1", "webhook", {"state": "sent", "reference": "T-1"})
        outbox.finish("esc-1", "sent", 1, None)
        outbox.add({"id": "esc-2", "summary": "Printer"}, "bob", ["webhook"])
        outbox.close()


def jobs() -> None:
    from assistant.knowledge.jobs import JobStore

    store = JobStore(fresh("jobs.sqlite"))
    done = store.create("reindex", {"collection": "docs"})
    store.update(done, state="done", result={"added": 2}, finished_at=1.0)
    store.create("reindex", {"collection": "docs"})  # queued when the server stopped
    store.close()


def vectors() -> None:
    import numpy as np

    from assistant.analytics.vector_cache import VectorCache

    class Embedder:
        name = "fixture-embedder"

        def embed(self, texts):
            return np.array([[len(t), 1.0, 2.0] for t in texts], dtype=np.float32)

    cache = VectorCache(fresh("analytics-cache.sqlite"))
    cache.embed(Embedder(), ["vpn down", "printer jam"])
    cache.close()


def main() -> None:
    secrets: dict = {}
    users(secrets)
    answers()
    feedback()
    escalations()
    jobs()
    vectors()
    (HERE / "secrets.json").write_text(json.dumps(secrets, indent=1) + "\n")
    for path in sorted(HERE.glob("*.sqlite")):
        small(path)
        print(path.name, path.stat().st_size)


if __name__ == "__main__":
    main()
