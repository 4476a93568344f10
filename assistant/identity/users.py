"""Local users and their API keys, in SQLite under HOME.

Passwords are kept as argon2id hashes (argon2-cffi). API keys are random 32-byte tokens,
shown once when made and kept as SHA-256 digests: a key is as strong as a long random
password, so a fast hash is enough and a lookup is one indexed query. A user who is
removed takes their keys along (a removed user's key is refused at once).

Every request with a user's key or session looks its caller up here, on the gateway's
event loop, so those lookups must never wait: reads go through a connection of their own
(in WAL mode a reader never waits for a writer, but a connection shared with a write that
waits on the database lock is held by it, up to the busy timeout), and the key's
``last_used_at`` is written later on a thread of the store's own, at most once a minute per
key. Everything else that writes (sign-in, sessions, users and keys) is called from worker
threads by the routes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import secrets
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from assistant.storage.sqlite import SqliteStore, script
from retrieval.access import EVERYONE, GROUP

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
KEY_PREFIX = "hd-"
TOUCH_EVERY_S = 60.0  # how fresh a key's last_used_at is kept
SERVICE_USER = "service"  # who ASSISTANT_API_KEYS act as

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    groups TEXT NOT NULL DEFAULT '',      -- comma-separated
    admin INTEGER NOT NULL DEFAULT 0,
    password_hash TEXT,                   -- argon2id; NULL: this user signs in by key only
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    label TEXT NOT NULL DEFAULT '',
    digest TEXT NOT NULL UNIQUE,          -- sha256 of the key
    hint TEXT NOT NULL,                   -- the key's last 4 characters, for lists
    created_at REAL NOT NULL,
    last_used_at REAL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS sessions (
    digest TEXT PRIMARY KEY,              -- sha256 of the session id (the cookie holds the id)
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
"""
MIGRATIONS = [script("users, api_keys, sessions", SCHEMA)]


class UserStoreError(ValueError):
    """Bad input to the store: an unusable name, a duplicate, an unknown user."""


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    admin: bool

    @property
    def all_groups(self) -> frozenset[str]:
        """The groups retrieval filters on: the user's own plus ``everyone``."""
        return frozenset((*self.groups, EVERYONE))


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_name(name: str) -> str:
    if not NAME.fullmatch(name or ""):
        raise UserStoreError(
            f"'{name}' is not a usable user name: letters, digits, '.', '_', '@' and '-', "
            "starting with a letter or digit"
        )
    return name


def check_groups(groups: list[str]) -> tuple[str, ...]:
    for group in groups:
        if not GROUP.fullmatch(group or ""):
            raise UserStoreError(
                f"'{group}' is not a usable group name: letters, digits, '.', '_' and '-', "
                "starting with a letter or digit, at most 64 characters"
            )
    return tuple(dict.fromkeys(groups))


class UserStore:
    """Users, keys and sessions in SQLite at ``path``. ``max_failures`` wrong passwords in a
    row lock an account for ``lockout_s`` seconds (the server passes the
    ``login_max_failures`` and ``login_lockout_s`` settings, see ``from_settings``)."""

    def __init__(self, path: Path, *, max_failures: int = 5, lockout_s: float = 300.0) -> None:
        self.path = Path(path)
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self._store = SqliteStore(self.path, MIGRATIONS, pragmas={"foreign_keys": "ON"})
        self._read = self._store.reader()
        self._toucher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="users-touch")
        self._touched: dict[int, float] = {}  # key id -> when last_used_at was last queued

    @classmethod
    def from_settings(cls, settings) -> UserStore:
        """The store at ``settings.users_path``, with the settings' lock-out rules."""
        return cls(
            settings.users_path,
            max_failures=settings.login_max_failures,
            lockout_s=settings.login_lockout_s,
        )

    def close(self) -> None:
        self._toucher.shutdown(wait=True)
        self._store.close()

    # --- users ---------------------------------------------------------------------------
    def add(
        self, name: str, groups: list[str], *, admin: bool = False, password: str | None = None
    ) -> User:
        check_name(name)
        clean = check_groups(groups)
        if password is not None and len(password) < 8:
            raise UserStoreError("a password needs at least 8 characters")
        hashed = _hasher().hash(password) if password is not None else None
        try:
            self._store.execute(
                "INSERT INTO users (name, groups, admin, password_hash, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, ",".join(clean), int(admin), hashed, time.time()),
            )
        except sqlite3.IntegrityError:
            raise UserStoreError(f"user '{name}' already exists") from None
        return User(name, clean, admin)

    def sync_external(self, name: str, groups: list[str], admin: bool = False) -> User:
        """Create or update a user whose identity and groups come from a sign-in provider
        (no password here); the provider's groups replace the stored ones."""
        check_name(name)
        clean = check_groups(groups)
        self._store.execute(
            "INSERT INTO users (name, groups, admin, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET groups = excluded.groups, admin = excluded.admin",
            (name, ",".join(clean), int(admin), time.time()),
        )
        return User(name, clean, admin)

    def get(self, name: str) -> User | None:
        row = self._read.execute(
            "SELECT name, groups, admin FROM users WHERE name = ?", (name,)
        ).fetchone()
        return _user(row) if row else None

    def count(self) -> int:
        return self._read.execute("SELECT COUNT(*) FROM users").fetchone()[0]

    def list(self) -> list[dict]:
        rows = self._read.execute(
            "SELECT u.name, u.groups, u.admin, u.password_hash IS NOT NULL, u.created_at, "
            "(SELECT COUNT(*) FROM api_keys k WHERE k.user = u.name AND k.revoked_at IS NULL) "
            "FROM users u ORDER BY u.name"
        ).fetchall()
        return [
            {
                "name": name,
                "groups": [g for g in groups.split(",") if g],
                "admin": bool(admin),
                "password": bool(has_password),
                "created_at": created,
                "keys": keys,
            }
            for name, groups, admin, has_password, created, keys in rows
        ]

    def remove(self, name: str) -> None:
        deleted = self._store.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount
        if not deleted:
            raise UserStoreError(f"no user '{name}'")

    def verify_password(self, name: str, password: str) -> User | None:
        """The user if the password is right. Wrong tries are counted; after
        ``max_failures`` in a row the account is locked for ``lockout_s`` seconds (a right
        password is refused too while locked). Unknown names cost the same hashing time."""
        from argon2.exceptions import InvalidHashError, VerificationError

        hasher = _hasher()
        row = self._read.execute(
            "SELECT name, groups, admin, password_hash, failed_logins, locked_until "
            "FROM users WHERE name = ?",
            (name,),
        ).fetchone()
        if row is None or row[3] is None:
            _burn(password)
            return None
        if row[5] > time.time():
            _burn(password)
            return None
        try:
            hasher.verify(row[3], password)
        except (VerificationError, InvalidHashError):
            self._count_failure(name)
            return None
        self._store.execute(
            "UPDATE users SET failed_logins = 0, locked_until = 0 WHERE name = ?", (name,)
        )
        return _user(row[:3])

    def _count_failure(self, name: str) -> None:
        """One more wrong try, counted in SQL (tries at the same moment, in this process or
        another, each add one); the ``max_failures``-th locks the account and starts over."""
        self._store.execute(
            "UPDATE users SET "
            "locked_until = CASE WHEN failed_logins + 1 >= :most THEN :until "
            "ELSE locked_until END, "
            "failed_logins = CASE WHEN failed_logins + 1 >= :most THEN 0 "
            "ELSE failed_logins + 1 END "
            "WHERE name = :name",
            {"most": self.max_failures, "until": time.time() + self.lockout_s, "name": name},
        )

    # --- keys ----------------------------------------------------------------------------
    def create_key(self, user: str, label: str = "") -> tuple[int, str]:
        """A new key for ``user``: (key id, the key). The key is not stored, only its hash."""
        if self.get(user) is None:
            raise UserStoreError(f"no user '{user}'; add it first with `assistant users add`")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        cursor = self._store.execute(
            "INSERT INTO api_keys (user, label, digest, hint, created_at) VALUES (?, ?, ?, ?, ?)",
            (user, label, _digest(key), key[-4:], time.time()),
        )
        return int(cursor.lastrowid), key

    def user_for_key(self, key: str) -> User | None:
        """The user a (live) key belongs to; ``None`` for unknown or revoked keys. One
        indexed read that never waits on a write (see the module's docstring)."""
        row = self._read.execute(
            "SELECT k.id, u.name, u.groups, u.admin FROM api_keys k "
            "JOIN users u ON u.name = k.user WHERE k.digest = ? AND k.revoked_at IS NULL",
            (_digest(key),),
        ).fetchone()
        if row is None:
            return None
        now = time.time()
        if now - self._touched.get(row[0], 0.0) >= TOUCH_EVERY_S:
            self._touched[row[0]] = now
            self._toucher.submit(self._touch, row[0], now)
        return _user(row[1:])

    def _touch(self, key_id: int, when: float) -> None:
        try:
            self._store.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (when, key_id))
        except sqlite3.Error as exc:  # a busy database: the next use marks it again
            self._touched.pop(key_id, None)
            logging.getLogger("assistant").warning("could not mark key %s used: %s", key_id, exc)

    def keys(self, user: str | None = None) -> list[dict]:
        query = "SELECT id, user, label, hint, created_at, last_used_at, revoked_at FROM api_keys"
        args: tuple = ()
        if user is not None:
            query += " WHERE user = ?"
            args = (user,)
        rows = self._read.execute(query + " ORDER BY id", args).fetchall()
        keys = ("id", "user", "label", "hint", "created_at", "last_used_at", "revoked_at")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # --- sessions ------------------------------------------------------------------------
    def start_session(self, user: str, ttl_s: float) -> str:
        """A new session id for ``user``, valid ``ttl_s`` seconds (stored hashed)."""
        session = secrets.token_urlsafe(32)
        now = time.time()
        with self._store.transaction() as db:
            db.execute("DELETE FROM sessions WHERE expires_at < ?", (now,))
            db.execute(
                "INSERT INTO sessions (digest, user, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (_digest(session), user, now, now + ttl_s),
            )
        return session

    def session_user(self, session: str) -> User | None:
        """The user of a live session; ``None`` when unknown, expired or the user is gone."""
        row = self._read.execute(
            "SELECT u.name, u.groups, u.admin FROM sessions s JOIN users u ON u.name = s.user "
            "WHERE s.digest = ? AND s.expires_at > ?",
            (_digest(session), time.time()),
        ).fetchone()
        return _user(row) if row else None

    def end_session(self, session: str) -> None:
        self._store.execute("DELETE FROM sessions WHERE digest = ?", (_digest(session),))

    def revoke_key(self, key_id: int) -> None:
        changed = self._store.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (time.time(), key_id),
        ).rowcount
        if not changed:
            raise UserStoreError(f"no live key with id {key_id}")


def _user(row) -> User:
    name, groups, admin = row
    return User(name, tuple(g for g in groups.split(",") if g), bool(admin))


@lru_cache(maxsize=1)
def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher().hash(secrets.token_urlsafe(16))


def _burn(password: str) -> None:
    """Spend the time of one verification, so unknown and locked names answer as slowly as
    wrong passwords do (no telling which names exist)."""
    from argon2.exceptions import VerificationError

    with contextlib.suppress(VerificationError):
        _hasher().verify(_dummy_hash(), password)
