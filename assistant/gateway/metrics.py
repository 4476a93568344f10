"""Prometheus metrics of one gateway (its own registry: no process-wide globals)."""

from __future__ import annotations

import time
from collections.abc import Callable

# the gateway's own share of a request: fractions of a millisecond to a slow retrieval
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self, engine_restarts: Callable[[], float] | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "assistant_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.errors = Counter(
            "assistant_errors", "Error responses by OpenAI error type.", ["type"], registry=r
        )
        self.latency = Histogram(
            "assistant_request_seconds",
            "Time to the response headers (non-streamed: the whole answer).",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "assistant_time_to_first_token_seconds",
            "Streamed chats: request received to first content chunk.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.gateway_seconds = Histogram(
            "assistant_gateway_seconds",
            "Streamed chats: the gateway's own share of the time to first token: request "
            "handled -> sent to the engine (validation, retrieval, prompt), plus the engine's "
            "first bytes -> passed on to the client.",
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.stream_seconds = Histogram(
            "assistant_stream_seconds",
            "Streamed chats: request received to end of stream.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens_out = Counter(
            "assistant_tokens_out", "Completion tokens sent to clients.", registry=r
        )
        self.retrieval = Histogram(
            "assistant_retrieval_seconds",
            "Docs search per request.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.restarts = Gauge(
            "assistant_engine_restarts", "Restarts of the vLLM child.", registry=r
        )
        self.restarts.set_function(engine_restarts or (lambda: 0))

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def count_usage(self, body: dict) -> None:
        usage = body.get("usage") or {}
        self.tokens_out.inc(usage.get("completion_tokens") or 0)


class RequestMetrics:
    """Pure ASGI middleware counting requests and timing them to the response headers.

    Not Starlette's BaseHTTPMiddleware: that one relays every streamed chunk through an
    extra task and memory stream, which costs real CPU at many tokens per second.
    """

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_and_count(message) -> None:
            if message["type"] == "http.response.start":
                route = getattr(scope.get("route"), "path", "other")
                self.metrics.requests.labels(route, str(message["status"])).inc()
                self.metrics.latency.labels(route).observe(time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, send_and_count)
