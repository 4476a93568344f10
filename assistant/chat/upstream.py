"""The seam between the gateway and the decoding engine (one or more vLLM servers)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from assistant.errors import APIError

# A server that refused a connection is left out of the choice for this long.
DOWN_FOR_S = 5.0


class Upstream(Protocol):
    """An OpenAI-compatible engine. ``HttpUpstream`` is the real one; tests may fake it."""

    def state(self) -> str:
        """'ready' when requests can be served; otherwise why not (starting, restarting...)."""

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a JSON body and return the JSON answer, or raise ``APIError``."""

    async def get(self, path: str) -> dict[str, Any]:
        """GET a JSON answer, or raise ``APIError``."""

    def stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[bytes]:
        """POST with ``stream: true`` and yield the SSE bytes as they arrive (whatever has
        arrived, in one piece: not one piece per event). A failure before the first byte
        raises ``APIError`` with the engine's status; a connection lost mid-stream raises
        ``APIError`` (502) from the iterator."""

    async def aclose(self) -> None: ...


class HttpUpstream:
    """vLLM servers behind one keep-alive connection pool (aiohttp: its HTTP parser is C).

    Each request goes to the least busy server; a server that refuses connections is
    skipped for ``DOWN_FOR_S`` seconds and the request goes to the next one, so a replica
    that dies hands its share to the others. ``connections`` bounds the pool: each
    streaming request holds one connection for its whole answer, so it should be at least
    the number of concurrent streams expected (above it, requests wait for a connection).
    """

    def __init__(
        self,
        urls: list[str],
        *,
        timeout_s: float = 600,
        state: Callable[[], str] | None = None,
        connections: int = 1024,
    ) -> None:
        if not urls:
            raise ValueError("HttpUpstream needs at least one URL")
        self.urls = [u.rstrip("/") for u in urls]
        self.timeout_s = timeout_s
        self.connections = connections
        self._in_flight = dict.fromkeys(self.urls, 0)
        self._down_until = dict.fromkeys(self.urls, 0.0)
        self._turn = 0
        self._state = state
        self._session = None  # made on first use, inside the server's event loop

    def state(self) -> str:
        return self._state() if self._state else "ready"

    def _client(self):
        if self._session is None or self._session.closed:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.connections, limit_per_host=0, keepalive_timeout=60
                ),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=5.0, sock_read=self.timeout_s
                ),
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    def _order(self) -> list[str]:
        """Servers to try, least busy first (ties taken in turn); those that just refused
        go last."""
        now = time.monotonic()
        self._turn = (self._turn + 1) % len(self.urls)
        turn = self.urls[self._turn :] + self.urls[: self._turn]
        return sorted(turn, key=lambda u: (self._down_until[u] > now, self._in_flight[u]))

    def _pick(self) -> str:
        return self._order()[0]

    def _check_ready(self) -> None:
        state = self.state()
        if state != "ready":
            raise APIError(
                503, f"the engine is not ready ({state}); retry shortly", code="engine_unavailable"
            )

    async def _open(self, method: str, path: str, body: dict | None):
        """Send a request to the first server that takes the connection: (url, response)."""
        import aiohttp

        self._check_ready()
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else None
        last: Exception | None = None
        for url in self._order():
            self._in_flight[url] += 1
            try:
                resp = await self._client().request(method, url + path, data=data, headers=headers)
            except aiohttp.ClientConnectorError as exc:  # refused: nothing was sent, try another
                self._in_flight[url] -= 1
                self._down_until[url] = time.monotonic() + DOWN_FOR_S
                last = exc
                continue
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._in_flight[url] -= 1
                raise _unavailable(exc) from None
            except BaseException:
                self._in_flight[url] -= 1
                raise
            self._down_until[url] = 0.0
            if resp.status >= 400:
                try:
                    content = await resp.read()
                finally:
                    resp.release()
                    self._in_flight[url] -= 1
                raise _upstream_error(resp.status, content)
            return url, resp
        raise _unavailable(last or ConnectionError("no server"))

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._json("POST", path, body)

    async def get(self, path: str) -> dict[str, Any]:
        return await self._json("GET", path, None)

    async def _json(self, method: str, path: str, body: dict | None) -> dict[str, Any]:
        import aiohttp

        url, resp = await self._open(method, path, body)
        try:
            content = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unavailable(exc) from None
        finally:
            resp.release()
            self._in_flight[url] -= 1
        try:
            return json.loads(content)
        except ValueError:
            raise APIError(502, "the engine answered with something that is not JSON") from None

    async def stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[bytes]:
        import aiohttp

        url, resp = await self._open("POST", path, body)
        finished = False
        try:
            read = resp.content.readany
            while chunk := await read():
                yield chunk
            finished = True
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise APIError(
                502,
                f"the engine stopped mid-answer ({type(exc).__name__}); ask again",
                code="engine_unavailable",
            ) from None
        finally:
            self._in_flight[url] -= 1
            if finished:
                resp.release()  # the connection goes back to the pool
            else:
                # Closing the connection is what makes vLLM abort the generation when our
                # own client went away mid-stream.
                resp.close()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


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
