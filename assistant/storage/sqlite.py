"""One way to open, lock and migrate the SQLite files the server keeps in HOME.

``SqliteStore(path, migrations)`` opens a file in WAL mode (readers never wait for the
writer), serialises this process's writes behind one lock, and brings the schema up to
date with numbered migrations, as simonw/llm does for its log: a ``_migrations`` table
records each one applied (number, name, when); at every open the ones not recorded yet
run in order, each in its own write transaction (``BEGIN IMMEDIATE``) together with its
record, so a migration that fails leaves nothing behind and runs again at the next open,
and two processes opening the same file at once apply each migration once.

A store's first migration is its whole current schema, written with ``IF NOT EXISTS``;
later ones are its upgrades, written to do nothing where they were already done. So a
file made before this table existed is migrated in place: the first migration creates
only what it lacks, an added column is added only where it is missing (``add_column``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from assistant.errors import UserError


class Migration(NamedTuple):
    """One numbered change of a store's schema (its number is its place in the list)."""

    name: str
    apply: Callable[[sqlite3.Connection], None]


def statements(script: str) -> Iterator[str]:
    """The statements of an SQL script, one by one (``executescript`` would commit the
    migration's transaction first)."""
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\n;"):
                yield pending
            pending = ""


def script(name: str, sql: str) -> Migration:
    """A migration that runs every statement of ``sql``."""

    def apply(db: sqlite3.Connection) -> None:
        for statement in statements(sql):
            db.execute(statement)

    return Migration(name, apply)


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def add_column(table: str, column: str, declaration: str, *backfill: str) -> Migration:
    """A migration that adds ``table.column`` where it is missing, then runs ``backfill``
    (what the rows from before the column get); a table that has it is left alone."""

    def apply(db: sqlite3.Connection) -> None:
        if column not in columns(db, table):
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            for statement in backfill:
                db.execute(statement)

    return Migration(f"{table}.{column}", apply)


@contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction, taken at once (other processes' writers wait for it)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # a failed COMMIT (a full disk) leaves it open too
            db.execute("ROLLBACK")
        raise


def _applied(db: sqlite3.Connection) -> dict[int, str]:
    return dict(db.execute("SELECT number, name FROM _migrations").fetchall())


def migrate(db: sqlite3.Connection, migrations: Sequence[Migration], where: Path) -> list[str]:
    """Apply the migrations not yet recorded in ``db``, in order; the names applied now."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (number INTEGER PRIMARY KEY, "
        "name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    done: list[str] = []
    applied = _applied(db)
    for number, migration in enumerate(migrations, 1):
        if number not in applied:
            with immediate(db):
                applied = _applied(db)  # another process may have applied it meanwhile
                if number not in applied:
                    migration.apply(db)
                    db.execute(
                        "INSERT INTO _migrations (number, name, applied_at) VALUES (?, ?, ?)",
                        (number, migration.name, time.time()),
                    )
                    applied[number] = migration.name
                    done.append(migration.name)
        if applied[number] != migration.name:
            raise UserError(
                f"{where}: its migration {number} is '{applied[number]}', not "
                f"'{migration.name}': the file belongs to another store or version"
            )
    return done


def connect(path: Path, timeout: float = 5.0) -> sqlite3.Connection:
    """A connection any thread may use, in autocommit mode (transactions are explicit)."""
    return sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=timeout)


class SqliteStore:
    """One SQLite file: a connection for writes (and the reads that may wait behind them),
    one lock for this process's writers, WAL, ``pragmas`` set on every open (such as
    ``{"synchronous": "FULL"}``) and ``migrations`` applied. ``timeout``: how long a
    statement waits for another process's write transaction before failing."""

    def __init__(
        self,
        path: Path,
        migrations: Sequence[Migration] = (),
        *,
        pragmas: dict[str, str] | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self.lock = threading.Lock()
        self._readers: list[sqlite3.Connection] = []
        self.db = connect(self.path, timeout)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            for name, value in (pragmas or {}).items():
                self.db.execute(f"PRAGMA {name}={value}")
            self.migrated = migrate(self.db, migrations, self.path)
        except BaseException:
            self.db.close()
            raise

    def reader(self) -> sqlite3.Connection:
        """A read-only connection of its own: in WAL mode its reads never wait, not even
        behind a write of this process that waits for the database lock."""
        db = connect(self.path, self.timeout)
        db.execute("PRAGMA query_only=ON")
        self._readers.append(db)
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (this process's other writers and other processes wait)."""
        with self.lock, immediate(self.db) as db:
            yield db

    def execute(self, sql: str, args: tuple | dict = ()) -> sqlite3.Cursor:
        """One statement under the lock (a write: its ``rowcount`` and ``lastrowid``)."""
        with self.lock:
            return self.db.execute(sql, args)

    def fetchall(self, sql: str, args: tuple | dict = ()) -> list[tuple]:
        """The rows of one query, read under the lock."""
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    def close(self) -> None:
        with self.lock:
            for db in self._readers:
                db.close()
            self.db.close()
