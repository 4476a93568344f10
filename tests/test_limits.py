"""Per-caller rate and concurrency limits on the model routes (429 with Retry-After)."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient

from assistant.errors import APIError
from assistant.gateway.limits import Limits, ReleaseSlots, admit
from assistant.identity.users import UserStore
from assistant.settings import load_settings
from tests.conftest import gateway_app
from tests.fakes import FakeEmbedder, FakeUpstream
from tests.test_gateway import CHAT, assert_openai_error


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_holds_a_minute_of_requests_and_refills_evenly():
    clock = Clock()
    limits = Limits(per_minute=3, clock=clock)
    for _ in range(3):
        limits.take("alice")()
    with pytest.raises(APIError) as caught:
        limits.take("alice")
    assert caught.value.status == 429 and caught.value.code == "rate_limit_exceeded"
    assert caught.value.headers == {"Retry-After": "20"}  # one request every 20 s
    limits.take("bob")  # another caller: a bucket of their own
    clock.now += 19.5
    with pytest.raises(APIError) as caught:
        limits.take("alice")
    assert caught.value.headers == {"Retry-After": "1"}  # never 0: whole seconds, rounded up
    clock.now += 0.5
    limits.take("alice")
    clock.now += 3600  # a long pause refills a minute's worth, no more
    for _ in range(3):
        limits.take("alice")
    with pytest.raises(APIError):
        limits.take("alice")


def test_concurrency_counts_running_requests_until_given_back():
    limits = Limits(concurrent=2)
    first, _second = limits.take("alice"), limits.take("alice")
    with pytest.raises(APIError) as caught:
        limits.take("alice")
    assert caught.value.status == 429 and caught.value.headers == {"Retry-After": "1"}
    limits.take("bob")()
    first()
    first()  # giving back twice frees one slot only
    assert limits.running("alice") == 1
    limits.take("alice")
    with pytest.raises(APIError):
        limits.take("alice")


def make_app(tmp_path, upstream=None, **overrides):
    settings = load_settings(home=tmp_path / "home", **overrides)
    users = UserStore(tmp_path / "users.sqlite")
    keys = {}
    for name in ("alice", "bob"):
        users.add(name, [])
        keys[name] = {"Authorization": f"Bearer {users.create_key(name)[1]}"}
    app = gateway_app(
        settings, upstream=upstream or FakeUpstream(), embedder=FakeEmbedder(), users=users
    )
    return app, keys


def test_over_the_rate_a_caller_gets_429_with_retry_after(tmp_path):
    app, keys = make_app(tmp_path, auth="local", rate_limit_per_minute=2)
    with TestClient(app) as http:
        alice, bob = keys["alice"], keys["bob"]
        assert http.post("/v1/chat/completions", json=CHAT, headers=alice).status_code == 200
        embed = {"model": "embed", "input": "hello"}
        assert http.post("/v1/embeddings", json=embed, headers=alice).status_code == 200
        resp = http.post("/v1/completions", json={"model": "helpdesk-demo", "prompt": "x"},
                         headers=alice)  # fmt: skip
        err = assert_openai_error(resp, 429)
        assert err["type"] == "rate_limit_error" and err["code"] == "rate_limit_exceeded"
        assert "2 requests a minute" in err["message"]
        assert 1 <= int(resp.headers["Retry-After"]) <= 30
        # the other user's limit is their own; the rest of the API is not limited
        assert http.post("/v1/chat/completions", json=CHAT, headers=bob).status_code == 200
        for _ in range(3):
            assert http.get("/v1/models", headers=alice).status_code == 200
            assert http.get("/v1/me", headers=alice).status_code == 200
            assert http.get("/health").status_code == 200
        metrics = http.get("/metrics").text
        assert 'assistant_errors_total{type="rate_limit_error"} 1.0' in metrics


def test_each_api_key_and_each_address_is_its_own_caller(tmp_path):
    app, _ = make_app(tmp_path, api_keys=["k1", "k2"], rate_limit_per_minute=1)
    with TestClient(app) as http:
        for key in ("k1", "k2"):
            headers = {"Authorization": f"Bearer {key}"}
            assert http.post("/v1/chat/completions", json=CHAT, headers=headers).status_code == 200
            resp = http.post("/v1/chat/completions", json=CHAT, headers=headers)
            assert_openai_error(resp, 429)
    open_app, _ = make_app(tmp_path / "open", rate_limit_per_minute=1)  # no keys: anonymous
    for address in ("10.0.0.1", "10.0.0.2"):
        with TestClient(open_app, client=(address, 4000)) as http:
            assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
            assert_openai_error(http.post("/v1/chat/completions", json=CHAT), 429)


def test_off_by_default_nothing_is_installed_or_counted(tmp_path):
    app, keys = make_app(tmp_path, auth="local")
    assert not app.state.services.limits.enabled
    assert not any(m.cls is ReleaseSlots for m in app.user_middleware)
    chat = next(r for r in app.routes if getattr(r, "path", "") == "/v1/chat/completions")
    assert admit not in [d.call for d in chat.dependant.dependencies]
    with TestClient(app) as http:
        for _ in range(30):
            resp = http.post("/v1/chat/completions", json=CHAT, headers=keys["alice"])
            assert resp.status_code == 200


# --- concurrency, through the ASGI interface: a stream holds its slot to its end -----------


class GatedUpstream(FakeUpstream):
    """Streams one chunk, then waits for ``gate`` before the rest; notes when it closed."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.closed_streams = 0

    async def stream(self, path, body):
        try:
            first = True
            async for chunk in super().stream(path, body):
                yield chunk
                if first:
                    first = False
                    await self.gate.wait()
        finally:
            self.closed_streams += 1


class Exchange:
    """One request driven through the app's ASGI interface, as a server would."""

    def __init__(self, app, headers: dict, body: dict) -> None:
        self.sent: list[dict] = []
        self.first_chunk = asyncio.Event()
        self.gone = asyncio.Event()  # set: the client hangs up
        raw, given = json.dumps(body).encode(), False
        head = [(b"content-type", b"application/json")]
        head += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
            "query_string": b"", "root_path": "", "headers": head,
            "client": ("10.0.0.1", 4000), "server": ("testserver", 80),
        }  # fmt: skip

        async def receive():
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": raw, "more_body": False}
            await self.gone.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            self.sent.append(message)
            if message["type"] == "http.response.body" and message.get("body"):
                self.first_chunk.set()

        self.task = asyncio.ensure_future(app(scope, receive, send))

    @property
    def status(self) -> int:
        return self.sent[0]["status"]

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


async def in_time(awaitable, seconds: float = 10):
    return await asyncio.wait_for(awaitable, seconds)


@pytest.mark.parametrize("ending", ["stream ends", "client hangs up"])
def test_a_stream_holds_its_slot_until_it_is_over(tmp_path, ending):
    upstream = GatedUpstream()
    app, keys = make_app(tmp_path, upstream, auth="local", max_concurrent_per_key=1)
    alice, bob = keys["alice"], keys["bob"]
    stream = {**CHAT, "stream": True}

    async def scenario():
        running = Exchange(app, alice, stream)
        await in_time(running.first_chunk.wait())
        assert app.state.services.limits.running("user alice") == 1
        refused = Exchange(app, alice, CHAT)
        await in_time(refused.task)
        assert refused.status == 429
        assert dict(refused.sent[0]["headers"])[b"retry-after"] == b"1"
        assert json.loads(refused.body)["error"]["code"] == "rate_limit_exceeded"
        other = Exchange(app, bob, CHAT)  # someone else is not held up
        await in_time(other.task)
        assert other.status == 200

        if ending == "stream ends":
            upstream.gate.set()
            await in_time(running.task)
            assert running.body.rstrip().endswith(b"data: [DONE]")
        else:
            running.gone.set()
            await in_time(running.task)
            assert b"[DONE]" not in running.body
        assert upstream.closed_streams == 1
        assert app.state.services.limits.running("user alice") == 0
        upstream.gate.set()
        again = Exchange(app, alice, stream)
        await in_time(again.task)
        assert again.status == 200

    asyncio.run(scenario())


def test_a_refused_or_failed_request_holds_no_slot(tmp_path):
    app, keys = make_app(tmp_path, auth="local", max_concurrent_per_key=1)
    with TestClient(app) as http:
        for _ in range(3):  # a 400 and a 404 after the slot was taken give it back
            bad = http.post("/v1/chat/completions", json={"model": "x"}, headers=keys["alice"])
            assert bad.status_code == 400
            unknown = http.post("/v1/chat/completions", json={**CHAT, "model": "gpt-7"},
                                headers=keys["alice"])  # fmt: skip
            assert unknown.status_code == 404
        assert app.state.services.limits.running("user alice") == 0
        assert (
            http.post("/v1/chat/completions", json=CHAT, headers=keys["alice"]).status_code == 200
        )
