"""Sign-in: a form for ``auth=local``, the OpenID provider's for ``auth=oidc``; then a
signed session cookie, and sign-out.

Wrong passwords are answered after a pause, and ``UserStore`` locks an account after
repeated failures; the answer is the same for an unknown name, a wrong password and a
locked account, so the form does not tell which names exist.
"""

from __future__ import annotations

import asyncio
import html
import re
from functools import lru_cache
from importlib import resources

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from assistant.errors import APIError
from assistant.gateway.deps import AuthDep, LoginDelayDep, OidcDep, SettingsDep
from assistant.gateway.session import set_session_cookie
from assistant.identity.auth import COOKIE, Authenticator
from assistant.identity.oidc import FLOW_COOKIE, FLOW_SECONDS
from assistant.settings import Settings

router = APIRouter(include_in_schema=False)
WRONG = "Wrong user name or password, or the account is locked for a few minutes."


def _safe_next(target: str | None) -> str:
    """Only a path on this server: never another site (``//evil``, ``https://...``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@lru_cache(maxsize=1)
def _template() -> str:
    return resources.files("assistant.gateway").joinpath("templates/login.html").read_text()


def login_form(title: str, *, next_url: str = "/", problem: str = "", username: str = "") -> str:
    return _template().format(
        title=html.escape(title),
        next=html.escape(_safe_next(next_url), quote=True),
        username=html.escape(username, quote=True),
        problem=f'<p class="problem" role="alert">{html.escape(problem)}</p>' if problem else "",
    )


def _title(settings: Settings) -> str:
    company = settings.company_name
    return "IT help desk" if company == "the company" else f"{company} IT help desk"


async def _session_response(
    request: Request, auth: Authenticator, user: str, target: str
) -> RedirectResponse:
    response = RedirectResponse(_safe_next(target), status_code=303)
    # a session is a row written to the user store: off the event loop
    await asyncio.to_thread(set_session_cookie, response, request, auth, user)
    return response


def _callback_url(request: Request, settings: Settings) -> str:
    base = settings.public_url or str(request.base_url)
    return base.rstrip("/") + "/auth/callback"


@router.get("/login")
async def login_page(request: Request, settings: SettingsDep, oidc: OidcDep, next: str = "/"):
    mode = settings.auth
    if mode == "oidc":
        url, flow = await oidc.start(_callback_url(request, settings), _safe_next(next))
        response = RedirectResponse(url, status_code=303)
        response.set_cookie(
            FLOW_COOKIE, flow, max_age=FLOW_SECONDS, httponly=True, samesite="lax",
            secure=request.url.scheme == "https", path="/auth",
        )  # fmt: skip
        return response
    if mode != "local":
        return RedirectResponse("/", status_code=303)
    return HTMLResponse(login_form(_title(settings), next_url=next))


@router.get("/auth/callback")
async def oidc_callback(
    request: Request,
    settings: SettingsDep,
    oidc: OidcDep,
    auth: AuthDep,
    state: str | None = None,
    code: str | None = None,
    error: str | None = None,
):
    """Where the OpenID provider sends the browser back: check, redeem, sign in."""
    if settings.auth != "oidc" or oidc is None:
        raise APIError(404, "no such route")
    if error:
        raise APIError(401, f"the OpenID provider refused the sign-in: {error}", code=error)
    flow = oidc.flow(request.cookies.get(FLOW_COOKIE))
    identity = await oidc.finish(flow, state, code)
    groups = [g for g in (_group_name(g) for g in identity.groups) if g]
    try:
        user = await asyncio.to_thread(auth.users.sync_external, identity.username, groups)
    except ValueError as exc:
        raise APIError(400, f"the provider's user cannot be used here: {exc}") from None
    response = await _session_response(request, auth, user.name, flow["next"])
    response.delete_cookie(FLOW_COOKIE, path="/auth")
    return response


def _group_name(group: str) -> str:
    """A provider's group as access.yaml can name it: 'IT Admins' -> 'IT-Admins'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", group).strip("-._")[:64]


@router.post("/login")
async def login(
    request: Request,
    settings: SettingsDep,
    auth: AuthDep,
    delay_s: LoginDelayDep,
    username: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
):
    if settings.auth != "local" or auth.users is None:
        return RedirectResponse("/", status_code=303)
    user = await asyncio.to_thread(auth.users.verify_password, username.strip(), password)
    if user is None:
        await asyncio.sleep(delay_s)  # slows down guessing
        body = login_form(_title(settings), next_url=next, problem=WRONG, username=username)
        return HTMLResponse(body, status_code=401)
    return await _session_response(request, auth, user.name, next)


@router.post("/logout")
@router.get("/logout")
async def logout(request: Request, settings: SettingsDep, auth: AuthDep):
    await asyncio.to_thread(auth.end_session, request.headers.get("cookie"))
    # with OIDC, /login would sign straight back in through the provider's own session
    target = "/signed-out" if settings.auth == "oidc" else "/login"
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/signed-out")
async def signed_out(settings: SettingsDep):
    title = html.escape(_title(settings))
    return HTMLResponse(
        f"<!doctype html><title>Signed out · {title}</title><main style='font-family:sans-serif;"
        f"max-width:30rem;margin:12vh auto'><h1>{title}</h1><p>You are signed out.</p>"
        "<p><a href='/login' id='sign-in-again'>Sign in again</a></p></main>"
    )
