"""A ticket system on a loopback thread for the escalation tests: records every request
and answers as a test scripts it (status, JSON, delay), deduplicating on Idempotency-Key
like Zendesk and Stripe do."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """``answer(request) -> (status, body, delay_s[, headers])``; the default creates a
    ticket once per idempotency key and answers ``{"id": "T-n"}`` (201, or 200 for a repeat)."""

    def __init__(self, answer=None, port: int = 0) -> None:
        """``port`` 0: any free one; a fixed one brings "the same" system back after an outage."""
        self.requests: list[dict] = []
        self.tickets: dict[str, str] = {}  # idempotency key -> ticket id
        self.answer = answer or self.create
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    parsed = None
                request = {
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "raw": raw,
                    "json": parsed,
                }
                with receiver._lock:
                    receiver.requests.append(request)
                status, body, delay, *extra = receiver.answer(request)
                time.sleep(delay)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (extra[0] if extra else {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up waiting
                    pass

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def create(self, request: dict, delay: float = 0.0):
        key = request["headers"].get("Idempotency-Key") or f"none-{len(self.requests)}"
        with self._lock:
            repeat = key in self.tickets
            ticket = self.tickets.setdefault(key, f"T-{len(self.tickets) + 1}")
        return (200 if repeat else 201), {"id": ticket}, delay

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(check, timeout: float = 60.0, every: float = 0.02):
    """``check()``'s first truthy value within ``timeout`` seconds, else an AssertionError
    (generous: it returns as soon as ``check`` holds, and a loaded CI machine is slow)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check}")
        time.sleep(every)
