"""The storage layer: numbered migrations (in order, once, a failed one rolled back and run
again), and every store opening the files that earlier releases wrote (tests/data/old_release,
made by make_fixtures.py there with the code of those releases): old rows read, new ones
written, the file migrated in place."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from assistant.analytics.vector_cache import VectorCache
from assistant.chat.answer_log import AnswerLog
from assistant.chat.feedback_store import FeedbackStore
from assistant.errors import UserError
from assistant.escalation.store import EscalationStore
from assistant.identity.users import UserStore
from assistant.knowledge.jobs import JobStore
from assistant.storage.sqlite import Migration, SqliteStore, add_column, script, statements

OLD = Path(__file__).parent / "data" / "old_release"
SECRETS = json.loads((OLD / "secrets.json").read_text())


def recorded(path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT number, name FROM _migrations ORDER BY number").fetchall()


def columns(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def old_file(tmp_path: Path, name: str) -> Path:
    assert not list(OLD.glob(f"{name}-*")), "a fixture must be one file (no -wal beside it)"
    return Path(shutil.copy(OLD / name, tmp_path / name))


# --- SqliteStore --------------------------------------------------------------------------
def logged(name: str, log: list[str], sql: str = "") -> Migration:
    def apply(db: sqlite3.Connection) -> None:
        log.append(name)
        for statement in statements(sql):
            db.execute(statement)

    return Migration(name, apply)


def test_migrations_run_in_order_once_each(tmp_path):
    log: list[str] = []
    first = [
        logged("one", log, "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1)"),
        logged("two", log, "INSERT INTO t VALUES (2)"),
    ]
    store = SqliteStore(tmp_path / "s.sqlite", first)
    assert store.migrated == ["one", "two"] and log == ["one", "two"]
    assert store.fetchall("PRAGMA journal_mode") == [("wal",)]
    store.close()

    again = SqliteStore(tmp_path / "s.sqlite", first)  # nothing left to do
    assert again.migrated == [] and log == ["one", "two"]
    again.close()
    more = [*first, logged("three", log, "INSERT INTO t VALUES (3)")]
    later = SqliteStore(tmp_path / "s.sqlite", more)  # only the new one runs
    assert later.migrated == ["three"] and log == ["one", "two", "three"]
    assert later.fetchall("SELECT a FROM t ORDER BY rowid") == [(1,), (2,), (3,)]
    later.close()
    assert recorded(tmp_path / "s.sqlite") == [(1, "one"), (2, "two"), (3, "three")]


def test_a_failing_migration_is_rolled_back_and_runs_again_at_the_next_open(tmp_path):
    def broken(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half (a INTEGER)")
        db.execute("INSERT INTO t VALUES (2)")
        raise RuntimeError("disk on fire")

    one = script("one", "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1);")
    with pytest.raises(RuntimeError, match="disk on fire"):
        SqliteStore(tmp_path / "s.sqlite", [one, Migration("two", broken)])
    with sqlite3.connect(tmp_path / "s.sqlite") as db:
        assert db.execute("SELECT a FROM t").fetchall() == [(1,)]
        assert not db.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchall()
    assert recorded(tmp_path / "s.sqlite") == [(1, "one")]

    fixed = script("two", "CREATE TABLE half (a INTEGER); INSERT INTO t VALUES (2)")
    store = SqliteStore(tmp_path / "s.sqlite", [one, fixed])
    assert store.migrated == ["two"]
    assert store.fetchall("SELECT a FROM t ORDER BY a") == [(1,), (2,)]
    store.close()
    assert recorded(tmp_path / "s.sqlite") == [(1, "one"), (2, "two")]


def test_a_file_of_another_store_is_refused(tmp_path):
    SqliteStore(tmp_path / "s.sqlite", [script("jobs", "CREATE TABLE jobs (a)")]).close()
    with pytest.raises(UserError, match="migration 1 is 'jobs', not 'users'"):
        SqliteStore(tmp_path / "s.sqlite", [script("users", "CREATE TABLE users (a)")])


def test_scripts_split_where_sqlite_does_and_columns_are_added_once(tmp_path):
    sql = "CREATE TABLE t (a TEXT); -- a comment; with a semicolon\nINSERT INTO t VALUES ('x;y');"
    assert len(list(statements(sql))) == 2
    added = add_column("t", "b", "INTEGER", "UPDATE t SET b = 7")
    store = SqliteStore(tmp_path / "s.sqlite", [script("t", sql), added])
    assert store.fetchall("SELECT a, b FROM t") == [("x;y", 7)]
    added.apply(store.db)  # a column that is there already: nothing happens
    assert store.fetchall("SELECT a, b FROM t") == [("x;y", 7)]
    reader = store.reader()
    with pytest.raises(sqlite3.OperationalError):
        reader.execute("DELETE FROM t")
    with pytest.raises(ZeroDivisionError), store.transaction() as db:
        db.execute("DELETE FROM t")
        _ = 1 / 0
    assert reader.execute("SELECT COUNT(*) FROM t").fetchone() == (1,)  # rolled back
    store.close()


# --- the files earlier releases wrote -------------------------------------------------------
def test_users_keys_and_sessions_of_the_last_release(tmp_path):
    path = old_file(tmp_path, "users.sqlite")
    store = UserStore(path)
    assert store.get("alice").groups == ("staff", "vpn") and store.get("alice").admin
    assert store.verify_password("alice", SECRETS["password"]).name == "alice"
    assert store.user_for_key(SECRETS["key"]).name == "bob"
    assert store.user_for_key(SECRETS["revoked_key"]) is None
    assert store.session_user(SECRETS["session"]).name == "alice"
    store.add("carol", ["vpn"], password="new-password-2")
    _, key = store.create_key("carol")
    assert store.user_for_key(key).name == "carol"
    assert [(u["name"], u["keys"]) for u in store.list()] == [
        ("alice", 0), ("bob", 1), ("carol", 1),
    ]  # fmt: skip
    store.remove("bob")  # foreign keys still on: his keys go with him
    assert store.user_for_key(SECRETS["key"]) is None
    store.close()
    assert recorded(path) == [(1, "users, api_keys, sessions")]


@pytest.mark.parametrize(
    "name", ["answers.sqlite", "answers-before-tried.sqlite", "answers-first-release.sqlite"]
)
def test_answer_logs_of_earlier_releases(tmp_path, name):
    path = old_file(tmp_path, name)
    log = AnswerLog(path, scrub=str.upper)
    [listed] = log.conversations("alice")
    assert listed["title"] == "My VPN says TP-204" and listed["answers"] == (
        1 if name == "answers-before-tried.sqlite" else 2
    )
    old = log.get("c1", "alice")
    assert old["answer"] == "Reconnect." and old["sources"][0]["source"] == "vpn.md"
    follow = [{"role": "user", "content": "My VPN says TP-204"},
              {"role": "assistant", "content": "Reconnect."},
              {"role": "user", "content": "still down"}]  # fmt: skip
    joined = log.record(id="c9", user="alice", model="m", messages=follow, answer="Call IT.",
                        grounded=True, tried=[{"source": "x.md"}])  # fmt: skip
    assert joined == listed["id"]  # a follow-up of an old answer continues its conversation
    log.settle()
    conversation = log.conversation(joined, "alice")
    assert conversation["answers"][-1]["tried"] == [{"source": "x.md"}]
    assert conversation["answers"][0]["tried"] == (
        [{"source": "wifi.md"}] if name == "answers.sqlite" else []
    )
    log.close()
    assert {"grounded", "question", "tried"} <= set(columns(path, "answers"))
    with sqlite3.connect(path) as db:
        rows = dict(db.execute("SELECT id, grounded FROM answers").fetchall())
        asked = db.execute("SELECT question FROM answers WHERE id = 'c9'").fetchone()[0]
    assert rows["c1"] == 1 and rows["c9"] == 1 and asked == "STILL DOWN"
    if "c2" in rows:  # no sources: not grounded (backfilled in the first release's file)
        assert rows["c2"] == 0
    assert [n for n, _ in recorded(path)] == [1, 2, 3, 4]


@pytest.mark.parametrize("name", ["feedback.sqlite", "feedback-first-release.sqlite"])
def test_feedback_of_earlier_releases(tmp_path, name):
    path = old_file(tmp_path, name)
    store = FeedbackStore(path)
    liked, disliked = store.all()
    assert liked["answer"] == "Reconnect." and liked["user"] == "alice"
    assert liked["completion_id"] == ("c1" if name == "feedback.sqlite" else None)
    assert disliked["correction"] == "Reboot." and disliked["rating"] == -1
    store.add(model="m", messages=[{"role": "user", "content": "q"}], answer="a", rating=1,
              completion_id="c2")  # fmt: skip
    assert store.latest(1)[0]["completion_id"] == "c2"
    assert store.counts() == {"liked": 2, "disliked": 1, "corrected": 1}
    assert len(store.training_conversations()) == 3
    store.close()
    assert recorded(path) == [(1, "feedback"), (2, "feedback.completion_id")]


@pytest.mark.parametrize(
    "name",
    ["escalations.sqlite", "escalations-before-lease.sqlite", "escalations-first-release.sqlite"],
)
def test_escalation_outboxes_of_earlier_releases(tmp_path, name):
    path = old_file(tmp_path, name)
    store = EscalationStore(path)
    sent = store.get("esc-1")
    assert sent["state"] == "sent" and sent["deliveries"]["webhook"]["reference"] == "T-1"
    assert sent["queued_at"] is None and sent["leased_until"] is None
    [due] = store.claim()  # the one still queued is delivered after the upgrade
    assert due["id"] == "esc-2" and store.get("esc-2")["leased_until"] is not None
    store.add({"id": "esc-3", "summary": "new"}, "carol", ["webhook"])
    assert store.counts() == {"queued": 2, "sent": 1, "failed": 0}
    store.close()
    assert recorded(path) == [
        (1, "escalations"), (2, "escalations.queued_at"), (3, "escalations.leased_until"),
    ]  # fmt: skip


def test_jobs_of_the_last_release(tmp_path):
    path = old_file(tmp_path, "jobs.sqlite")
    store = JobStore(path)
    done, interrupted = sorted(store.latest(), key=lambda job: job["state"])
    assert done["state"] == "done" and done["result"] == {"added": 2}
    assert interrupted["state"] == "failed" and "interrupted" in interrupted["error"]
    new = store.create("reindex", {"collection": "docs"})
    assert store.get(new)["state"] == "queued"
    store.close()
    assert recorded(path) == [(1, "jobs")]


def test_the_vector_cache_of_the_last_release(tmp_path):
    class Embedder:
        name = "fixture-embedder"  # as make_fixtures.py names it

        def __init__(self) -> None:
            self.embedded: list[str] = []

        def embed(self, texts):
            self.embedded += texts
            return np.array([[len(t), 1.0, 2.0] for t in texts], dtype=np.float32)

    path = old_file(tmp_path, "analytics-cache.sqlite")
    cache = VectorCache(path)
    embedder = Embedder()
    vectors = cache.embed(embedder, ["printer jam", "new one", "vpn down"])
    assert embedder.embedded == ["new one"]  # the others were in the old file
    assert vectors[:, 0].tolist() == [11.0, 7.0, 8.0]
    cache.close()
    assert recorded(path) == [(1, "vectors")]
