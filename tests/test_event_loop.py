"""SQLite stores never stall the event loop: while another process holds a store's write
lock, a request that writes to it waits in a worker thread (or does not wait at all, for
the key lookup every request makes), and a concurrent ``/health`` answers at once.

Each case locks one database file (``BEGIN IMMEDIATE`` from another connection), sends
the request, and times a ``/health`` sent 0.2 s later; with the write on the loop, that
took the whole busy timeout (5 s). Then the lock goes and the request must succeed.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

import httpx
import pytest

from assistant.chat.feedback_store import FeedbackStore
from assistant.identity.users import UserStore
from assistant.knowledge.index import IndexService
from assistant.knowledge.jobs import JobRunner, JobStore
from assistant.settings import load_settings
from tests.conftest import gateway_app
from tests.fakes import FakeEmbedder, FakeUpstream

ADMIN = {"Authorization": "Bearer adm"}
QUESTION = {"model": "helpdesk-demo", "messages": [{"role": "user", "content": "VPN TP-204?"}]}


@pytest.fixture
def gateway(tmp_path):
    users = UserStore(tmp_path / "users.sqlite")
    users.add("alice", [], password="correct horse")
    key = users.create_key("alice")[1]
    docs = tmp_path / "docs"
    docs.mkdir()
    settings = load_settings(home=tmp_path / "home", docs_dir=docs, admin_key="adm")
    runner = JobRunner(JobStore(tmp_path / "jobs.sqlite"))
    app = gateway_app(
        settings,
        upstream=FakeUpstream(),
        users=users,
        feedback_store=FeedbackStore(tmp_path / "feedback.sqlite"),
        index_service=IndexService(settings, None, FakeEmbedder(), runner),
        login_delay_s=0.0,
    )
    app.key = {"Authorization": f"Bearer {key}"}
    app.files = {
        "users": tmp_path / "users.sqlite",
        "answers": settings.home / "answers.sqlite",
        "feedback": tmp_path / "feedback.sqlite",
        "jobs": tmp_path / "jobs.sqlite",
    }
    yield app
    runner.shutdown()


async def _answer(http, app) -> dict:
    answer = (await http.post("/v1/chat/completions", json=QUESTION, headers=app.key)).json()
    await asyncio.to_thread(app.state.services.answers.flush)
    listed = (await http.get("/v1/conversations", headers=app.key)).json()["data"]
    return {"completion": answer["id"], "conversation": listed[0]["id"]}


CASES = {
    # the key lookup every request with a user's key makes (it also marks the key used)
    "user key": ("users", lambda http, app, ids: http.get("/v1/models", headers=app.key)),
    "rename a conversation": (
        "answers",
        lambda http, app, ids: http.patch(
            f"/v1/conversations/{ids['conversation']}", json={"title": "VPN"}, headers=app.key
        ),
    ),
    "delete a conversation": (
        "answers",
        lambda http, app, ids: http.delete(
            f"/v1/conversations/{ids['conversation']}", headers=app.key
        ),
    ),
    "rate an answer": (
        "feedback",
        lambda http, app, ids: http.post(
            "/v1/feedback", json={"completion_id": ids["completion"], "rating": 1}, headers=app.key
        ),
    ),
    "start a reindex": (
        "jobs",
        lambda http, app, ids: http.post("/v1/admin/reindex", json={}, headers=ADMIN),
    ),
}


async def _health_while_locked(http, db_path, send) -> tuple[float, httpx.Response]:
    """Start ``send()`` while another connection holds ``db_path``'s write lock, and time a
    /health sent meanwhile; returns (seconds /health took, the request's response)."""
    locker = sqlite3.connect(db_path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        request = asyncio.create_task(send())
        started = time.perf_counter()
        await asyncio.sleep(0.2)  # the request is waiting on the lock by now
        health = await http.get("/health")
        took = time.perf_counter() - started
        assert health.status_code == 200
    finally:
        locker.execute("COMMIT")
        locker.close()
    return took, await request


@pytest.mark.parametrize("case", list(CASES))
def test_a_locked_store_does_not_stall_the_event_loop(gateway, case):
    store, send = CASES[case]

    async def scenario() -> tuple[float, httpx.Response]:
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            ids = await _answer(http, gateway)
            return await _health_while_locked(
                http, gateway.files[store], lambda: send(http, gateway, ids)
            )

    took, resp = asyncio.run(scenario())
    assert took < 1.0, f"/health waited {took:.2f} s behind {case}"
    assert resp.status_code < 300, resp.text


def test_signing_in_with_a_locked_user_store_does_not_stall_the_event_loop(tmp_path):
    users = UserStore(tmp_path / "users.sqlite")
    users.add("alice", [], password="correct horse")
    settings = load_settings(home=tmp_path / "home", auth="local")
    app = gateway_app(settings, upstream=FakeUpstream(), users=users, login_delay_s=0.0)

    async def scenario() -> tuple[float, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            form = {"username": "alice", "password": "correct horse", "next": "/"}
            return await _health_while_locked(
                http, tmp_path / "users.sqlite", lambda: http.post("/login", data=form)
            )

    took, resp = asyncio.run(scenario())
    assert took < 1.0, f"/health waited {took:.2f} s behind a sign-in"
    assert resp.status_code == 303 and "hd_session" in resp.headers["set-cookie"]
