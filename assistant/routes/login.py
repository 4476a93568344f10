"""Sign-in for ``auth=local``: a form, a signed session cookie, sign-out.

Wrong passwords are answered after a pause, and ``UserStore`` locks an account after
repeated failures; the answer is the same for an unknown name, a wrong password and a
locked account, so the form does not tell which names exist.
"""

from __future__ import annotations

import asyncio
import html
from importlib import resources

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from assistant.auth import COOKIE

router = APIRouter(include_in_schema=False)
WRONG = "Wrong user name or password, or the account is locked for a few minutes."


def _safe_next(target: str | None) -> str:
    """Only a path on this server: never another site (``//evil``, ``https://...``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def login_form(title: str, *, next_url: str = "/", problem: str = "", username: str = "") -> str:
    template = resources.files("assistant").joinpath("templates/login.html").read_text()
    return template.format(
        title=html.escape(title),
        next=html.escape(_safe_next(next_url), quote=True),
        username=html.escape(username, quote=True),
        problem=f'<p class="problem" role="alert">{html.escape(problem)}</p>' if problem else "",
    )


def _title(request: Request) -> str:
    return f"{request.app.state.settings.company_name} IT help desk"


@router.get("/login")
async def login_page(request: Request, next: str = "/"):
    if request.app.state.settings.auth != "local":
        return RedirectResponse("/", status_code=303)
    return HTMLResponse(login_form(_title(request), next_url=next))


@router.post("/login")
async def login(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
):
    auth = request.app.state.auth
    if request.app.state.settings.auth != "local" or auth.users is None:
        return RedirectResponse("/", status_code=303)
    user = await asyncio.to_thread(auth.users.verify_password, username.strip(), password)
    if user is None:
        await asyncio.sleep(request.app.state.login_delay_s)  # slows down guessing
        body = login_form(_title(request), next_url=next, problem=WRONG, username=username)
        return HTMLResponse(body, status_code=401)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE,
        auth.start_session(user.name),
        max_age=int(auth.session_s),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
@router.get("/logout")
async def logout(request: Request):
    request.app.state.auth.end_session(request.headers.get("cookie"))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
