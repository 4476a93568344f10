"""Settings of the gateway: address, keys and sign-in, sessions, history, analytics,
document permissions, and request limits."""

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from assistant.settings.common import CommaList, split_commas


class GatewaySettings(BaseModel):
    # --- gateway -------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the page and the API.")
    api_keys: CommaList = Field(
        default_factory=list,
        description="If set, every /v1 route wants 'Authorization: Bearer KEY' with one of these.",
    )
    admin_key: str | None = Field(None, description="Key for the /v1/admin routes.")
    auth: Literal["none", "local", "oidc", "header"] = Field(
        "none",
        description=(
            "Who is asking. none: no users (API keys, if set, act as the service user); "
            "local: accounts made with `assistant users add` (keys with `assistant keys "
            "create`); header: an auth proxy in front sets the user and groups headers "
            "(accepted only from trusted_proxies); oidc: the company's OpenID provider."
        ),
    )
    trusted_proxies: CommaList = Field(
        default_factory=list,
        description="Addresses (or CIDR networks) whose user/groups headers are believed "
        "with auth=header; a request from anywhere else is refused.",
    )
    auth_user_header: str = Field(
        "X-Forwarded-User", description="With auth=header: the header naming the user."
    )
    auth_groups_header: str = Field(
        "X-Forwarded-Groups",
        description="With auth=header: the header listing the user's groups (comma-separated).",
    )
    auth_admin_group: str = Field(
        "admins", description="Members of this group are admins (see every document)."
    )
    oidc_issuer: str | None = Field(
        None,
        description="With auth=oidc: the OpenID provider's issuer URL (its "
        "/.well-known/openid-configuration is read), e.g. https://login.microsoftonline.com/"
        "TENANT/v2.0 or https://keycloak.corp/realms/corp.",
    )
    oidc_client_id: str | None = Field(None, description="With auth=oidc: this app's client id.")
    oidc_client_secret: str | None = Field(
        None, description="With auth=oidc: the client secret (unset for a public client)."
    )
    oidc_scopes: str = Field("openid profile email", description="Scopes asked at sign-in.")
    oidc_groups_claim: str = Field(
        "groups", description="The ID token claim that lists the user's groups."
    )
    oidc_username_claim: str = Field(
        "preferred_username", description="The ID token claim used as the user name."
    )
    public_url: str | None = Field(
        None,
        description="The address people use to reach the server (e.g. https://helpdesk.corp), "
        "for the sign-in callback URL; unset: taken from each request.",
    )
    secret_key: str | None = Field(
        None,
        description="Signs session cookies and source links. Unset: a random key kept in "
        "HOME/secret.key (made on first start).",
    )
    session_hours: float = Field(
        12, gt=0, description="How long a sign-in lasts (the session cookie's expiry)."
    )
    login_max_failures: int = Field(
        5,
        ge=1,
        description="With auth=local: wrong passwords in a row after which an account is "
        "locked (login_lockout_s).",
    )
    login_lockout_s: float = Field(
        300,
        gt=0,
        description="With auth=local: seconds a locked account refuses every sign-in, the "
        "right password too; then it gets login_max_failures tries again.",
    )
    source_link_minutes: float = Field(
        60, gt=0, description="How long a source link in an answer opens its document."
    )
    history_days: float = Field(
        90,
        ge=0,
        description="Conversation history (and the answer records feedback points at) older "
        "than this many days is deleted for good; 0 keeps it.",
    )
    analytics_timezone: str = Field(
        "UTC",
        description="Time zone (IANA name, e.g. Europe/Berlin) whose days the analytics "
        "count in (GET /v1/admin/analytics, assistant report).",
    )
    # 0.5 on MiniLM: paraphrases of one question end up together while distinct topics stay
    # apart (the purity / topic-recall sweep of bench/content_gaps.py, and test_analytics)
    analytics_gap_threshold: float = Field(
        0.5,
        gt=0,
        lt=2,
        description="Content-gap clusters: questions whose average cosine distance is below "
        "this are grouped (lower: more, tighter clusters). Depends on the embedding model.",
    )
    analytics_warm_interval_s: float = Field(
        30,
        ge=0,
        description="Every this many seconds the server embeds the questions its docs did not "
        "answer since, so content-gap reports find them ready; 0: only when a report asks.",
    )
    access_file: Path | None = Field(
        None,
        description="Document permissions (ordered 'path' / 'groups' rules). Unset: "
        "access.yaml in the folder being indexed (the docs root); no file: every document "
        "is for everyone. Takes effect at the next reindex.",
    )
    max_request_bytes: int = Field(
        1_000_000, ge=1024, description="Largest request body accepted (413 beyond)."
    )
    max_upload_bytes: int = Field(
        20_000_000, ge=1024, description="Largest document an admin may upload (413 beyond)."
    )
    request_timeout_s: float = Field(
        600, gt=0, description="Longest time one request may wait on the engine."
    )
    rate_limit_per_minute: int = Field(
        0,
        ge=0,
        description="Model requests (chat, completions, embeddings) one caller may start per "
        "minute, a minute's worth at once at most; beyond it 429 with Retry-After. A caller is "
        "a user (any of their keys), one API key, or else a client address. 0 (default): no "
        "limit, since vLLM queues what it cannot run yet and callers behind one office NAT "
        "share an address; set it where the API is open to many clients. Counted per gateway "
        "process.",
    )
    max_concurrent_per_key: int = Field(
        0,
        ge=0,
        description="Model requests one caller (as for rate_limit_per_minute) may have running "
        "at once, a stream until its last byte or the client leaving; beyond it 429 with "
        "Retry-After. 0 (default): no limit.",
    )

    @field_validator("api_keys", "trusted_proxies", mode="before")
    @classmethod
    def _split_gateway_lists(cls, value: Any) -> Any:
        return split_commas(value)

    @field_validator("analytics_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not a known time zone, e.g. Europe/Berlin") from None
        return value
