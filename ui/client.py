"""The gateway as the page sees it: ``Client`` (its HTTP API), ``PageError`` (an API error
as one sentence and a status) and ``session_of`` (the person's sign-in session).

Like the rest of the page, it imports nothing from ``assistant``: everything goes over HTTP.
"""

from typing import Any

SESSION_COOKIE = "hd_session"  # the gateway's sign-in cookie, passed on to its API


def session_of(request) -> str | None:
    """The sign-in session of the person using the page (from their browser's cookie)."""
    if request is None:
        return None
    from http.cookies import CookieError, SimpleCookie

    jar = SimpleCookie()
    try:
        jar.load(request.headers.get("cookie", ""))
    except CookieError:
        return None
    morsel = jar.get(SESSION_COOKIE)
    return morsel.value if morsel is not None else None


class PageError(Exception):
    def __init__(self, message: str, status: int, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code  # the API error's code, e.g. "escalations_disabled"


class Client:
    """The gateway, as the page uses it. ``http``: the HTTP client to go through (default:
    a new ``httpx.Client``; tests pass a ``fastapi.testclient.TestClient``), used both for
    the page's own calls and by the OpenAI client."""

    def __init__(self, api_base: str, api_key: str | None, http=None) -> None:
        import httpx
        import openai

        self.api_base = api_base.rstrip("/")
        self.api_key = api_key
        self.http = http if http is not None else httpx.Client(timeout=60)
        self.openai = openai.OpenAI(
            base_url=self.api_base,
            api_key=api_key or "unused",
            max_retries=0,
            timeout=300,
            http_client=http,
        )

    def headers(self, key: str | None = None, session: str | None = None) -> dict:
        key = key or self.api_key
        out = {"Authorization": f"Bearer {key}"} if key else {}
        if session:
            out["Cookie"] = f"{SESSION_COOKIE}={session}"
        return out

    def as_person(self, session: str | None) -> dict:
        """Per-request headers for the OpenAI client that make it act as the signed-in
        person: their session, and no key at all (a key would win over the session)."""
        if not session:
            return {}
        import openai

        return {"Authorization": openai.Omit(), "Cookie": f"{SESSION_COOKIE}={session}"}

    def openai_headers(self, session: str | None) -> dict:
        """Per-request headers for the OpenAI client: as the signed-in person when there is
        a session, else as the page's key; with neither, no ``Authorization`` at all (the
        OpenAI client would send "Bearer unused", which an open gateway refuses)."""
        if session or self.api_key:
            return self.as_person(session)
        import openai

        return {"Authorization": openai.Omit()}

    def models(self, session: str | None = None) -> list[str]:
        try:
            return [
                m.id for m in self.openai.models.list(extra_headers=self.openai_headers(session))
            ]
        except Exception:  # the page still opens; the picker falls back to the default
            return []

    def request(
        self, method: str, path: str, key: str | None = None, session: str | None = None, **kw
    ) -> Any:
        headers = self.headers(key, session)
        resp = self.http.request(method, self.api_base + path, headers=headers, **kw)
        if resp.status_code >= 400:
            code = None
            try:
                error = resp.json()["error"]
                message, code = error["message"], error.get("code")
            except (ValueError, KeyError, TypeError, AttributeError):
                message = resp.text[:200]
            raise PageError(message, resp.status_code, code)
        return resp
