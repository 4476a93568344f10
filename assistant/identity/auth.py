"""Who is asking: the caller of a request as a ``Principal`` (name, groups, admin).

A request is identified, in this order, by
- ``Authorization: Bearer KEY``: the admin key (``ASSISTANT_ADMIN_KEY``), one of
  ``ASSISTANT_API_KEYS`` (the built-in service user, group ``everyone``), or a user's key
  from ``assistant keys create``;
- with ``auth=local`` (or ``oidc``): the signed session cookie set at sign-in;
- with ``auth=header``: the user and groups headers an auth proxy sets, believed only from
  ``trusted_proxies`` addresses;
- with ``auth=none`` and no API keys configured: an anonymous caller in group ``everyone``
  (the server then listens on loopback only, see ``assistant.gateway.serve``).
Everything else is refused with 401 (or 403 for a header from an untrusted address).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from assistant.errors import APIError
from assistant.identity.signing import Signer
from assistant.identity.users import KEY_PREFIX, SERVICE_USER, User, UserStore
from retrieval.access import EVERYONE, GROUP


@dataclass(frozen=True)
class Principal:
    name: str
    groups: frozenset[str]  # always holds ``everyone``
    admin: bool = False

    @property
    def scope(self) -> frozenset[str] | None:
        """The groups retrieval filters on; ``None`` (no filter) for admins."""
        return None if self.admin else self.groups


ANONYMOUS = Principal("anonymous", frozenset({EVERYONE}))
SERVICE = Principal(SERVICE_USER, frozenset({EVERYONE}))
ADMIN = Principal("admin", frozenset({EVERYONE}), admin=True)
COOKIE = "hd_session"


def bearer(header: str | None) -> str | None:
    if not header or not header.lower().startswith("bearer "):
        return None
    return header[7:].strip() or None


class Authenticator:
    def __init__(
        self,
        *,
        mode: str = "none",
        api_keys: list[str] = (),  # type: ignore[assignment]
        admin_key: str | None = None,
        users: UserStore | None = None,
        trusted_proxies: list[str] = (),  # type: ignore[assignment]
        user_header: str = "X-Forwarded-User",
        groups_header: str = "X-Forwarded-Groups",
        admin_group: str = "admins",
        secret: bytes | None = None,
        session_hours: float = 12.0,
    ) -> None:
        self.mode = mode
        self.api_keys = list(api_keys)
        self.admin_key = admin_key
        self.users = users
        self.proxies = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]
        self.user_header = user_header
        self.groups_header = groups_header
        self.admin_group = admin_group
        self.cookies = Signer(secret, "session") if secret is not None else None
        self.session_s = session_hours * 3600.0

    @classmethod
    def from_settings(
        cls, settings, users: UserStore | None, secret: bytes | None = None
    ) -> Authenticator:
        return cls(
            mode=settings.auth,
            api_keys=settings.api_keys,
            admin_key=settings.admin_key,
            users=users,
            trusted_proxies=settings.trusted_proxies,
            user_header=settings.auth_user_header,
            groups_header=settings.auth_groups_header,
            admin_group=settings.auth_admin_group,
            secret=secret,
            session_hours=settings.session_hours,
        )

    @property
    def open(self) -> bool:
        """Whether a caller with no credentials is let in (as ``anonymous``)."""
        return self.mode == "none" and not self.api_keys

    def principal(self, headers: Mapping[str, str], client: str | None) -> Principal:
        """The caller of a request with these headers from this address, or an APIError."""
        key = bearer(headers.get("authorization"))
        if key is not None:
            try:
                return self._by_key(key)
            except APIError:
                if not self.open or key.startswith(KEY_PREFIX):
                    raise  # a key of ours that is revoked or its user removed: say so
                # an open server ignores placeholder keys ("EMPTY", "sk-no-key"), as
                # OpenAI clients send one whether or not the server wants it
                return ANONYMOUS
        if self.mode == "header":
            session = self.session_user(headers.get("cookie"))
            if session is not None and not headers.get(self.user_header.lower()):
                return self._of(session)  # the page's own calls, with the session it was given
            return self._by_header(headers, client)
        if self.mode in {"local", "oidc"}:
            session = self.session_user(headers.get("cookie"))
            if session is not None:
                return self._of(session)
            raise APIError(
                401, "not signed in: sign in on the page, or send an API key", code="no_session"
            )
        if self.open:
            return ANONYMOUS
        raise APIError(
            401, "missing API key: send 'Authorization: Bearer KEY'", code="missing_api_key"
        )

    def admin(self, headers: Mapping[str, str], client: str | None) -> Principal:
        """The caller, who must be an admin (admin key, admin user or admin group)."""
        if not self.admin_key and self.mode == "none" and not self._has_users():
            raise APIError(
                403,
                "admin routes are off on this server: set ASSISTANT_ADMIN_KEY to use them",
                code="admin_disabled",
            )
        signed_in = self.mode in {"local", "oidc"} and headers.get("cookie")
        if bearer(headers.get("authorization")) is None and self.mode != "header" and not signed_in:
            raise APIError(401, "this route needs the admin key", code="invalid_admin_key")
        try:
            key = bearer(headers.get("authorization"))
            caller = self._by_key(key) if key is not None else self.principal(headers, client)
        except APIError as exc:
            if exc.status == 401 and exc.code == "invalid_api_key":
                raise APIError(
                    401, "this route needs the admin key", code="invalid_admin_key"
                ) from None
            raise
        if not caller.admin:
            raise APIError(403, f"'{caller.name}' is not an admin", code="not_admin")
        return caller

    def _by_key(self, key: str) -> Principal:
        if self.admin_key and hmac.compare_digest(key, self.admin_key):
            return ADMIN
        if any(hmac.compare_digest(key, k) for k in self.api_keys):
            return SERVICE
        if self.users is not None:
            user = self.users.user_for_key(key)
            if user is not None:
                return self._of(user)
        raise APIError(401, "invalid API key", code="invalid_api_key")

    def _of(self, user: User) -> Principal:
        return Principal(user.name, user.all_groups, user.admin or self.admin_group in user.groups)

    # --- sessions ------------------------------------------------------------------------
    def start_session(self, user: str) -> str:
        """The cookie value for a new session of ``user``: ``id.signature``."""
        if self.users is None or self.cookies is None:
            raise RuntimeError("sessions need a user store and a secret")
        session = self.users.start_session(user, self.session_s)
        return f"{session}.{self.cookies.sign(session)}"

    def session_user(self, cookie_header: str | None) -> User | None:
        """The user of the session cookie in a Cookie header; forged, expired or ended
        sessions give ``None``."""
        value = _cookie(cookie_header, COOKIE)
        if not value or self.users is None or self.cookies is None:
            return None
        session, _, signature = value.rpartition(".")
        if not session or not self.cookies.verify(session, signature):
            return None
        return self.users.session_user(session)

    def end_session(self, cookie_header: str | None) -> None:
        value = _cookie(cookie_header, COOKIE)
        if value and self.users is not None:
            self.users.end_session(value.rpartition(".")[0])

    def _by_header(self, headers: Mapping[str, str], client: str | None) -> Principal:
        if not self._trusted(client):
            raise APIError(
                403,
                "this server takes its users from an auth proxy; this request did not come "
                "through it",
                code="untrusted_proxy",
            )
        name = (headers.get(self.user_header.lower()) or "").strip()
        if not name:
            raise APIError(
                401, f"the auth proxy sent no '{self.user_header}' header", code="no_user"
            )
        raw = headers.get(self.groups_header.lower()) or ""
        groups = {g.strip() for g in raw.split(",") if g.strip()}
        bad = sorted(g for g in groups if not GROUP.fullmatch(g))
        if bad:
            raise APIError(400, f"the auth proxy sent an unusable group name '{bad[0]}'")
        return Principal(name, frozenset(groups | {EVERYONE}), self.admin_group in groups)

    def _trusted(self, client: str | None) -> bool:
        if not client:
            return False
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in network for network in self.proxies)

    def _has_users(self) -> bool:
        return self.users is not None and self.users.count() > 0


def _cookie(header: str | None, name: str) -> str | None:
    from http.cookies import CookieError, SimpleCookie

    if not header:
        return None
    jar = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None
