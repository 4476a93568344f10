"""``create_app`` mounts the gateway's routers, middleware and error handlers on the
services that ``assistant.gateway.services.build_services`` wired."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.chat.schemas import TOO_DEEP
from assistant.errors import APIError
from assistant.gateway.limits import ReleaseSlots, admit
from assistant.gateway.metrics import RequestMetrics
from assistant.gateway.routes import (
    admin,
    analytics,
    escalations,
    health,
    history,
    login,
    openai,
    pages,
)
from assistant.gateway.services import Services
from assistant.gateway.session import session_from_proxy, sign_in_first

log = logging.getLogger("assistant")


def create_app(services: Services) -> FastAPI:
    """The gateway over ``services`` (kept on ``app.state.services``, where the routes'
    dependencies in ``assistant.gateway.deps`` find them); the services' workers run
    while the app does."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        services.start()
        yield
        await services.stop()

    app = FastAPI(
        title="Help-desk assistant",
        description="OpenAI-compatible API grounded in the company's docs.",
        lifespan=lifespan,
    )
    app.state.services = services
    limited = services.limits.enabled
    app.include_router(openai.router, dependencies=[Depends(admit)] if limited else [])
    app.include_router(pages.router)
    app.include_router(pages.sources)
    app.include_router(login.router)
    app.include_router(history.router)
    app.include_router(admin.router)
    app.include_router(escalations.router)
    app.include_router(escalations.admin)
    app.include_router(analytics.router)
    app.include_router(health.router)

    app.add_middleware(RequestMetrics, metrics=services.metrics)
    if limited:
        app.add_middleware(ReleaseSlots)
    mode = services.settings.auth
    if mode in {"local", "oidc"}:
        app.middleware("http")(sign_in_first(services.auth))
    if mode == "header":
        app.middleware("http")(session_from_proxy(services.auth))
    _handle_errors(app, services)
    return app


def _handle_errors(app: FastAPI, services: Services) -> None:
    """Every error answers in OpenAI's shape, counted in ``/metrics`` by type."""

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError):
        services.metrics.errors.labels(exc.type).inc()
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException):
        # unknown routes and wrong methods answer in the same shape as every other error
        message = {404: "no such route", 405: "method not allowed"}.get(
            exc.status_code, str(exc.detail)
        )
        if isinstance(exc.__cause__, RecursionError):  # FastAPI's own parse of a deep body
            message = TOO_DEEP
        return JSONResponse(APIError(exc.status_code, message).body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in err["loc"])
        return JSONResponse(APIError(400, f"'{field}': {err['msg']}").body(), status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception):
        log.exception("unhandled error")
        body = APIError(500, f"internal error ({type(exc).__name__}); see the server log").body()
        return JSONResponse(body, status_code=500)
