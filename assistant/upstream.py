"""The seam between the gateway and the decoding engine (one or more vLLM servers)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from assistant.errors import APIError


class Upstream(Protocol):
    """An OpenAI-compatible engine. ``HttpUpstream`` is the real one; tests may fake it."""

    def state(self) -> str:
        """'ready' when requests can be served; otherwise why not (starting, restarting...)."""

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a JSON body and return the JSON answer, or raise ``APIError``."""

    async def get(self, path: str) -> dict[str, Any]:
        """GET a JSON answer, or raise ``APIError``."""

    def stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[bytes]:
        """POST with ``stream: true`` and yield the SSE bytes as they arrive."""

    async def aclose(self) -> None: ...


class HttpUpstream:
    """vLLM servers over one pooled HTTP client; each request goes to the least busy one."""

    def __init__(
        self,
        urls: list[str],
        *,
        timeout_s: float = 600,
        state: Callable[[], str] | None = None,
    ) -> None:
        import httpx

        if not urls:
            raise ValueError("HttpUpstream needs at least one URL")
        self.urls = list(urls)
        self._in_flight = dict.fromkeys(self.urls, 0)
        self._state = state
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=5.0),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )

    def state(self) -> str:
        return self._state() if self._state else "ready"

    def _pick(self) -> str:
        return min(self.urls, key=lambda url: self._in_flight[url])

    def _check_ready(self) -> None:
        state = self.state()
        if state != "ready":
            raise APIError(
                503, f"the engine is not ready ({state}); retry shortly", code="engine_unavailable"
            )

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._json("POST", path, body)

    async def get(self, path: str) -> dict[str, Any]:
        return await self._json("GET", path, None)

    async def _json(self, method: str, path: str, body: dict | None) -> dict[str, Any]:
        import httpx

        self._check_ready()
        url = self._pick()
        self._in_flight[url] += 1
        try:
            resp = await self._client.request(method, url + path, json=body)
        except httpx.TransportError as exc:
            raise _unavailable(exc) from None
        finally:
            self._in_flight[url] -= 1
        if resp.status_code >= 400:
            raise _upstream_error(resp.status_code, resp.content)
        return resp.json()

    async def stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[bytes]:
        import httpx

        self._check_ready()
        url = self._pick()
        self._in_flight[url] += 1
        try:
            request = self._client.build_request("POST", url + path, json=body)
            try:
                resp = await self._client.send(request, stream=True)
            except httpx.TransportError as exc:
                raise _unavailable(exc) from None
            try:
                if resp.status_code >= 400:
                    raise _upstream_error(resp.status_code, await resp.aread())
                async for chunk in resp.aiter_raw():
                    yield chunk
            finally:
                # Closing the connection is what makes vLLM abort the generation when our
                # own client went away mid-stream.
                await resp.aclose()
        finally:
            self._in_flight[url] -= 1

    async def aclose(self) -> None:
        await self._client.aclose()


def _unavailable(exc: Exception) -> APIError:
    return APIError(
        503,
        f"the engine is unreachable ({type(exc).__name__}); retry shortly",
        code="engine_unavailable",
    )


def _upstream_error(status: int, content: bytes) -> APIError:
    """Keep vLLM's message and status; make the shape OpenAI's."""
    message = content.decode("utf-8", "replace")[:2000]
    err_type = code = None
    try:
        payload = json.loads(content)
        err = payload.get("error", payload) if isinstance(payload, dict) else {}
        if isinstance(err, dict):
            message = str(err.get("message") or message)
            err_type, code = err.get("type"), err.get("code")
    except ValueError:
        pass
    if status >= 500:
        status = 502 if status != 503 else 503
    if status == 400 and "maximum context length" in message:
        status, code = 413, "context_length_exceeded"
    return APIError(
        status,
        message,
        type=err_type if isinstance(err_type, str) else None,
        code=str(code) if code is not None else None,
    )
