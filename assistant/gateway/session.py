"""Sessions of the page: the signed session cookie, and who may open the page.

With ``auth=local|oidc`` a visitor with no session is sent to the sign-in form; with
``auth=header`` the auth proxy's user gets a session at the page load, so the page (which
calls the API itself) acts as that person. ``create_app`` installs the middleware the
settings ask for; ``page_guard`` keeps the mounted Gradio page to the same rule."""

from __future__ import annotations

import asyncio

from fastapi import Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from assistant.errors import APIError
from assistant.gateway.deps import client_host
from assistant.identity.auth import COOKIE, Authenticator
from assistant.settings import Settings
from retrieval.access import EVERYONE


def set_session_cookie(
    response: Response, request: Request, auth: Authenticator, user: str
) -> None:
    """Start a session of ``auth`` (the gateway's ``Authenticator``; under a mounted page
    ``request.app`` is not the gateway) for ``user`` and give it to the browser: signed,
    HttpOnly, SameSite, expiring with the session."""
    response.set_cookie(
        COOKIE,
        auth.start_session(user),
        max_age=int(auth.session_s),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def sign_in_first(auth: Authenticator):
    """Middleware: the page itself sends a visitor with no session to the sign-in form."""

    async def middleware(request: Request, call_next):
        page = request.method == "GET" and request.url.path == "/"
        if page and auth.session_user(request.headers.get("cookie")) is None:
            return RedirectResponse("/login?next=/", status_code=303)
        return await call_next(request)

    return middleware


def session_from_proxy(auth: Authenticator):
    """Middleware: behind an auth proxy, the page gets a session for the user the proxy
    names, so the page (which calls the API itself) acts as that person."""

    async def middleware(request: Request, call_next):
        if request.method != "GET" or request.url.path != "/":
            return await call_next(request)
        try:
            caller = auth.principal(request.headers, client_host(request))
        except APIError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        if auth.users is None:
            return await call_next(request)
        current = auth.session_user(request.headers.get("cookie"))
        groups = sorted(caller.groups - {EVERYONE})
        try:  # the proxy's groups are the truth: kept up to date at every page load
            await asyncio.to_thread(auth.users.sync_external, caller.name, groups)
        except ValueError as exc:
            body = APIError(400, f"the auth proxy's user cannot be used here: {exc}").body()
            return JSONResponse(body, status_code=400)
        response = await call_next(request)
        if current is None or current.name != caller.name:
            await asyncio.to_thread(set_session_cookie, response, request, auth, caller.name)
        return response

    return middleware


def page_guard(auth: Authenticator, settings: Settings):
    """With sign-in, the page and its Gradio API answer only callers with a session."""
    if settings.auth == "none":
        return None

    def signed_in(request) -> str | None:
        user = auth.session_user(request.headers.get("cookie"))
        if user is not None:
            return user.name
        if settings.auth == "header":  # the first page load through the proxy
            try:
                return auth.principal(request.headers, client_host(request)).name
            except APIError:
                return None
        return None

    return signed_in
