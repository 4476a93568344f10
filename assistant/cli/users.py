"""``assistant users`` and ``assistant keys``: local accounts and their API keys."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from assistant.cli.common import ConfigOpt, JsonOpt, emit, load
from assistant.errors import UserError
from assistant.identity.users import UserStore, UserStoreError

users_app = typer.Typer(
    help="Local users (ASSISTANT_AUTH=local), their groups (which documents they may read, "
    "see access.yaml) and admin rights. Kept in HOME/users.sqlite; passwords as argon2 hashes.",
    no_args_is_help=True,
)
keys_app = typer.Typer(
    help="API keys that act as a user: a program calling /v1 with one gets that user's "
    "groups. The key is printed once, when made, and stored hashed.",
    no_args_is_help=True,
)


def _store(config: Path | None):
    return UserStore.from_settings(load(config))


def _read_password(from_stdin: bool) -> str | None:
    """From stdin with --password-stdin; else asked twice on a terminal; else none."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UserError("--password-stdin: no password on standard input")
        return password
    if not sys.stdin.isatty():
        return None
    import getpass

    first = getpass.getpass("password (empty: key-only user): ")
    if not first:
        return None
    if getpass.getpass("again: ") != first:
        raise UserError("the two passwords differ; nothing was changed")
    return first


def _checked(call):
    try:
        return call()
    except UserStoreError as exc:
        raise UserError(str(exc)) from None


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="Sign-in name, e.g. an e-mail address."),
    group: list[str] = typer.Option(
        [], "--group", "-g", help="A group the user is in (repeat for several)."
    ),
    admin: bool = typer.Option(
        False, "--admin", help="May use admin routes and see every document."
    ),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from the first line of stdin."
    ),
    as_json: bool = JsonOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Add a user. Every user is also in group 'everyone'.

    Without --password-stdin the password is asked on the terminal; a user without a
    password signs in only with API keys (`assistant keys create --user NAME`).
    """
    password = _read_password(password_stdin)
    user = _checked(lambda: _store(config).add(name, group, admin=admin, password=password))
    emit(
        {"user": user.name, "groups": list(user.groups), "admin": user.admin,
         "password": password is not None},
        as_json,
    )  # fmt: skip


@users_app.command("list")
def users_list(as_json: bool = JsonOpt, config: Path | None = ConfigOpt) -> None:
    """Users with their groups, admin flag, whether they have a password, live keys."""
    users = _store(config).list()
    if as_json:
        emit({"users": users}, True)
        return
    if not users:
        typer.echo("no users yet: add one with `assistant users add NAME --group G`")
    for u in users:
        flags = ("admin " if u["admin"] else "") + ("password" if u["password"] else "key-only")
        groups = ",".join(u["groups"]) or "-"
        typer.echo(f"{u['name']}\tgroups: {groups}\t{flags}\tkeys: {u['keys']}")


@users_app.command("remove")
def users_remove(
    name: str = typer.Argument(..., help="The user to remove."),
    config: Path | None = ConfigOpt,
) -> None:
    """Remove a user and every key of theirs (refused from the next request on)."""
    _checked(lambda: _store(config).remove(name))
    typer.echo(f"removed user '{name}' and their keys")


@keys_app.command("create")
def keys_create(
    user: str = typer.Option(..., "--user", help="The user the key acts as."),
    label: str = typer.Option("", "--label", help="What the key is for, e.g. 'ticket bot'."),
    config: Path | None = ConfigOpt,
) -> None:
    """Make a key for a user. The key is the last line of stdout, shown only this once."""
    key_id, key = _checked(lambda: _store(config).create_key(user, label))
    typer.echo(f"key {key_id} for '{user}' (store it now: it is not shown again):", err=True)
    typer.echo(key)


@keys_app.command("list")
def keys_list(
    user: str | None = typer.Option(None, "--user", help="Only this user's keys."),
    as_json: bool = JsonOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Keys by id, user, label and last 4 characters (never the key itself)."""
    keys = _store(config).keys(user)
    if as_json:
        emit({"keys": keys}, True)
        return
    for k in keys:
        state = "revoked" if k["revoked_at"] else "live"
        typer.echo(f"{k['id']}\t{k['user']}\t...{k['hint']}\t{state}\t{k['label']}")


@keys_app.command("revoke")
def keys_revoke(
    key_id: int = typer.Argument(..., help="The key's id, from `assistant keys list`."),
    config: Path | None = ConfigOpt,
) -> None:
    """Revoke a key: refused from the next request on."""
    _checked(lambda: _store(config).revoke_key(key_id))
    typer.echo(f"revoked key {key_id}")
