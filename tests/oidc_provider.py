"""A real OpenID Connect provider on loopback, for end-to-end tests of OIDC sign-in.

It is django-oauth-toolkit (DOT) with OIDC enabled, configured entirely in code (no Django
project on disk; only a SQLite file in a temporary folder) and served by Django's threaded
WSGI server on ``127.0.0.1:<free port>`` in a background thread, so a browser and an HTTP
client can both use it.

* issuer ``http://127.0.0.1:PORT/o`` (discovery at ``<issuer>/.well-known/openid-configuration``)
* one confidential client, authorization-code grant, RS256 ID tokens, PKCE (S256 only) required,
  client authentication ``client_secret_basic`` or ``client_secret_post``
* sign-in form at ``/accounts/login/`` (Django's ``LoginView``: fields ``username``,
  ``password``, submit button ``#login``); no consent page (``skip_authorization``)
* claims in the ID token and at userinfo: ``sub``, ``preferred_username``, ``name``, ``email``
  (scopes ``profile``/``email``) and ``groups`` (the user's Django group names, with ``openid``)

Django can be configured once per process: the first :func:`start_provider` call sets it up
and migrates the database in its ``tmp_dir``; later calls in the same process reuse that
database (and signing key) and start another server with a new client.

Redirect URIs on ``http://127.0.0.1`` match on any port (RFC 8252 loopback rule, built into
DOT), so registering ``http://127.0.0.1/callback`` is enough when the app's port is unknown.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

__all__ = ["LOGIN_PATH", "Provider", "oidc_provider", "start_provider"]

LOGIN_PATH = "/accounts/login/"
SCOPES = {"openid": "OpenID Connect", "profile": "Your name", "email": "Your email address"}

_LOGIN_TEMPLATE = """<!doctype html>
<html><head><title>Test OpenID provider: sign in</title></head><body>
<h1>Sign in</h1>
{% if form.errors %}<p id="error">Wrong username or password.</p>{% endif %}
<form method="post" action="{{ request.path }}">{% csrf_token %}
<label>Username <input type="text" name="username" id="username" autofocus></label>
<label>Password <input type="password" name="password" id="password"></label>
<input type="hidden" name="next" value="{{ next }}">
<button type="submit" id="login">Sign in</button>
</form></body></html>
"""

_lock = threading.Lock()
_configured_db: Path | None = None
# All ORM work from the test side runs on this one thread: it keeps Django's per-thread
# connection in one place and works even when the caller runs inside an event loop.
_orm = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oidc-provider-orm")
_T = TypeVar("_T")


def _on_orm_thread(fn: Callable[[], _T]) -> _T:
    return _orm.submit(fn).result()


def _rsa_private_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _configure_django(tmp_dir: Path) -> None:
    """Configure Django and migrate, once per process."""
    global _configured_db
    with _lock:
        if _configured_db is not None:
            return
        import django
        from django.conf import settings

        if settings.configured:
            raise RuntimeError("Django settings are already configured by something else")
        db = Path(tmp_dir) / "oidc-provider.sqlite3"
        settings.configure(
            DEBUG=False,
            SECRET_KEY=secrets.token_urlsafe(32),
            ALLOWED_HOSTS=["127.0.0.1", "localhost"],
            USE_TZ=True,
            INSTALLED_APPS=[
                "django.contrib.auth",
                "django.contrib.contenttypes",
                "django.contrib.sessions",
                "oauth2_provider",
            ],
            MIDDLEWARE=[
                "django.contrib.sessions.middleware.SessionMiddleware",
                "django.middleware.csrf.CsrfViewMiddleware",
                "django.contrib.auth.middleware.AuthenticationMiddleware",
            ],
            DATABASES={
                "default": {
                    "ENGINE": "django.db.backends.sqlite3",
                    "NAME": str(db),
                    "OPTIONS": {"timeout": 30, "init_command": "PRAGMA synchronous=OFF"},
                }
            },
            DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
            ROOT_URLCONF=__name__,  # resolved lazily: see module __getattr__ below
            TEMPLATES=[
                {
                    "BACKEND": "django.template.backends.django.DjangoTemplates",
                    "OPTIONS": {
                        "context_processors": ["django.template.context_processors.request"],
                        "loaders": [
                            (
                                "django.template.loaders.locmem.Loader",
                                {"oidc_test/login.html": _LOGIN_TEMPLATE},
                            ),
                            "django.template.loaders.app_directories.Loader",
                        ],
                    },
                }
            ],
            LOGIN_URL=LOGIN_PATH,
            # The app under test also lives on 127.0.0.1, and cookies ignore ports: use
            # cookie names of our own so the two never overwrite each other's session.
            SESSION_COOKIE_NAME="oidc_provider_session",
            CSRF_COOKIE_NAME="oidc_provider_csrftoken",
            # Fast hashing: users and the client secret are hashed on every test run.
            PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
            OAUTH2_PROVIDER={
                "OIDC_ENABLED": True,
                "OIDC_RSA_PRIVATE_KEY": _rsa_private_key_pem(),
                "PKCE_REQUIRED": True,
                "SCOPES": SCOPES,
                "DEFAULT_SCOPES": ["openid"],
                "OAUTH2_VALIDATOR_CLASS": f"{__name__}._validator_class",
                "OIDC_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "OIDC_RESPONSE_TYPES_SUPPORTED": ["code"],
                "REQUEST_APPROVAL_PROMPT": "auto",
                # RFC 9700 behaviour (DOT 3.x warns while these are off): no implicit or
                # password grant, S256 only, `iss` in the authorization response.
                "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
                "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
                "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
                "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
                "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
            },
            LOGGING={
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {"stderr": {"class": "logging.StreamHandler"}},
                "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
            },
        )
        django.setup()

        def migrate() -> None:
            from django.core.management import call_command

            call_command("migrate", verbosity=0, interactive=False)

        _on_orm_thread(migrate)
        _configured_db = db


def _urlpatterns() -> list[Any]:
    from django.contrib.auth.views import LoginView
    from django.urls import include, path

    return [
        path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
        path(
            LOGIN_PATH.strip("/") + "/",
            LoginView.as_view(template_name="oidc_test/login.html"),
            name="login",
        ),
    ]


def _make_validator_class() -> type:
    from oauth2_provider.oauth2_validators import OAuth2Validator

    class Validator(OAuth2Validator):
        """Standard profile/email claims plus ``groups`` (granted with ``openid``)."""

        oidc_claim_scope: ClassVar[dict[str, str]] = {
            **OAuth2Validator.oidc_claim_scope,
            "groups": "openid",
        }

        # No `request` parameter: DOT then lists these claims in discovery's claims_supported.
        def get_additional_claims(self) -> dict[str, Callable[[Any], Any]]:
            return {
                "preferred_username": lambda r: r.user.get_username(),
                "name": lambda r: r.user.get_full_name(),
                "email": lambda r: r.user.email,
                "groups": lambda r: sorted(r.user.groups.values_list("name", flat=True)),
            }

    return Validator


_lazy: dict[str, Callable[[], Any]] = {
    "urlpatterns": _urlpatterns,
    "_validator_class": _make_validator_class,
}
_built: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    # Django imports ROOT_URLCONF and DOT imports the validator class by dotted path; both
    # need Django set up first, so they are built on first access.
    if name in _lazy:
        if name not in _built:
            _built[name] = _lazy[name]()
        return _built[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class Provider:
    """A running provider with one confidential client. See the module docstring."""

    issuer: str
    client_id: str
    client_secret: str
    _server: Any = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def login_url(self) -> str:
        return self.issuer.removesuffix("/o") + LOGIN_PATH

    def add_user(
        self, username: str, password: str, groups: list[str], email: str = "", name: str = ""
    ) -> None:
        """Create (or reset) a user with exactly these groups; `name` becomes the `name` claim."""

        def create() -> None:
            from django.contrib.auth.models import Group, User

            first, _, last = name.partition(" ")
            user, _ = User.objects.update_or_create(
                username=username,
                defaults={"email": email, "first_name": first, "last_name": last},
            )
            user.set_password(password)
            user.save()
            user.groups.set([Group.objects.get_or_create(name=g)[0] for g in groups])

        _on_orm_thread(create)

    def set_redirect_uris(self, uris: list[str]) -> None:
        """Replace the client's registered redirect URIs (exact match, any port on 127.0.0.1)."""

        def update() -> None:
            from oauth2_provider.models import get_application_model

            app = get_application_model().objects.get(client_id=self.client_id)
            app.redirect_uris = " ".join(uris)
            app.save(update_fields=["redirect_uris"])

        _on_orm_thread(update)

    def allow_redirect(self, uri: str) -> None:
        """Register one more redirect URI for the client."""

        def update() -> None:
            from oauth2_provider.models import get_application_model

            app = get_application_model().objects.get(client_id=self.client_id)
            uris = app.redirect_uris.split()
            if uri not in uris:
                app.redirect_uris = " ".join([*uris, uri])
                app.save(update_fields=["redirect_uris"])

        _on_orm_thread(update)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def start_provider(tmp_dir: Path, redirect_uris: list[str]) -> Provider:
    """Start a provider on 127.0.0.1 and a free port; `tmp_dir` holds its SQLite database."""
    _configure_django(tmp_dir)
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    client_id = "test-" + secrets.token_hex(8)
    client_secret = secrets.token_urlsafe(32)

    def create_client() -> None:
        from oauth2_provider.models import get_application_model

        application = get_application_model()
        application.objects.create(
            name="app under test",
            client_id=client_id,
            client_secret=client_secret,  # hashed on save; the plaintext stays with us
            client_type=application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=application.GRANT_AUTHORIZATION_CODE,
            redirect_uris=" ".join(redirect_uris),
            algorithm=application.RS256_ALGORITHM,
            skip_authorization=True,
        )

    _on_orm_thread(create_client)

    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=False)
    server.set_app(WSGIHandler())
    thread = threading.Thread(
        target=server.serve_forever, name="oidc-provider", kwargs={"poll_interval": 0.1}
    )
    thread.daemon = True
    thread.start()
    port = server.server_address[1]
    return Provider(
        issuer=f"http://127.0.0.1:{port}/o",
        client_id=client_id,
        client_secret=client_secret,
        _server=server,
        _thread=thread,
    )


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    """One provider per test session, no redirect URIs yet: call `allow_redirect(uri)`."""
    provider = start_provider(tmp_path_factory.mktemp("oidc-provider"), redirect_uris=[])
    yield provider
    provider.stop()
