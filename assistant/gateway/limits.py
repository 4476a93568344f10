"""Per-caller limits on the model routes: requests a minute, and requests at once.

A caller is a user (signed in, or by one of their keys), each of ``ASSISTANT_API_KEYS`` on
its own (they all act as the service user), or, where nobody signs in, the client address.
Over a limit the answer is 429 with ``Retry-After`` (whole seconds) and an OpenAI-shaped
error, counted in ``/metrics`` as ``assistant_errors{type="rate_limit_error"}``.

Two small pieces, wired by ``create_app`` only when a limit is set:
- ``admit``, a dependency of the OpenAI routes, runs after the caller is known and takes a
  slot (``Limits.take``);
- ``ReleaseSlots``, a pure ASGI middleware, gives the slot back when the whole response has
  been sent (a stream to its last byte) or the client has gone. Nothing runs per chunk.

The counts live in this process, used by the event loop only (no lock): with several
gateway workers each one counts for itself.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable

from fastapi import Depends, Request

from assistant.errors import APIError
from assistant.gateway.deps import client_host, require_api_key
from assistant.identity.auth import ANONYMOUS, SERVICE, bearer

LIMITED_ROUTES = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings"})
SLOTS = "assistant.limit_slots"  # ASGI scope key: what to give back when the request ends
MAX_TRACKED = 10_000  # callers with a partly spent minute, before the full ones are forgotten


class Limits:
    """A token bucket per caller (``per_minute`` requests, a minute's worth at once at
    most) and a count of running requests (``concurrent``); 0 turns either off."""

    def __init__(
        self, per_minute: int = 0, concurrent: int = 0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute = per_minute
        self.concurrent = concurrent
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, when)
        self._running: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.per_minute or self.concurrent)

    def running(self, caller: str) -> int:
        return self._running.get(caller, 0)

    def take(self, caller: str) -> Callable[[], None]:
        """A slot for one request of ``caller``, or APIError 429. Returns the function that
        gives the slot back (calling it again does nothing)."""
        running = self._running.get(caller, 0)
        if self.concurrent and running >= self.concurrent:
            raise _limited(f"{self.concurrent} requests at once per caller", 1)
        if self.per_minute:
            self._spend(caller)
        self._running[caller] = running + 1
        given_back = False

        def give_back() -> None:
            nonlocal given_back
            if given_back:
                return
            given_back = True
            left = self._running[caller] - 1
            if left:
                self._running[caller] = left
            else:
                del self._running[caller]

        return give_back

    def _spend(self, caller: str) -> None:
        now, rate = self.clock(), self.per_minute / 60.0
        tokens, when = self._buckets.get(caller, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - when) * rate)
        if tokens < 1:
            raise _limited(f"{self.per_minute} requests a minute per caller", (1 - tokens) / rate)
        self._buckets[caller] = (tokens - 1, now)
        if len(self._buckets) > MAX_TRACKED:  # a full bucket is the same as none
            self._buckets = {
                c: (t, w)
                for c, (t, w) in self._buckets.items()
                if t + (now - w) * rate < self.per_minute
            }


def _limited(limit: str, wait_s: float) -> APIError:
    wait = max(1, math.ceil(wait_s))
    return APIError(
        429,
        f"rate limit reached: at most {limit}; retry in {wait} s",
        code="rate_limit_exceeded",
        headers={"Retry-After": str(wait)},
    )


def caller_of(request: Request) -> str:
    """Whom a request counts against: the user, the service key itself, or the address."""
    principal = request.state.principal
    if principal is ANONYMOUS:
        return f"address {client_host(request)}"
    if principal is SERVICE:  # several keys share this user; each is its own caller
        key = bearer(request.headers.get("authorization")) or ""
        return "key " + hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"user {principal.name}"


async def admit(request: Request, _: None = Depends(require_api_key)) -> None:
    """Dependency of the OpenAI routes (after sign-in, which FastAPI runs once): a slot for
    a model request, given back by ``ReleaseSlots``."""
    if getattr(request.scope.get("route"), "path", None) not in LIMITED_ROUTES:
        return
    slots = request.scope[SLOTS]  # KeyError: ReleaseSlots is not installed
    limits: Limits = request.app.state.services.limits
    slots.append(limits.take(caller_of(request)))


class ReleaseSlots:
    """Pure ASGI middleware: the slots a request took are given back once the app has
    returned, which for a stream is after its last chunk was sent or the client left."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        slots = scope[SLOTS] = []
        try:
            await self.app(scope, receive, send)
        finally:
            for give_back in slots:
                give_back()
