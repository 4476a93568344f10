"""A running reindex can be cancelled, and stopping the server cancels it: it ends within a
second or two in state "cancelled", every document stays whole at its old or new version
(as after a kill, see test_index_crash), and the next reindex finishes the work.

Real Chroma, a fake embedder that takes 150 ms per batch of 4 chunks: a full reindex of the
folder takes about three seconds, a cancelled one stops after one batch.
"""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from assistant.knowledge.index import IndexService
from assistant.knowledge.jobs import JobRunner, JobStore
from assistant.settings import load_settings
from tests.conftest import gateway_app
from tests.fakes import FakeEmbedder, FakeUpstream

ADMIN = {"Authorization": "Bearer adm"}
FILES = 24


class SlowEmbedder(FakeEmbedder):
    batch_size = 4
    max_tokens = 256

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay

    def embed(self, texts: list[str]) -> list[list[float]]:
        time.sleep(self.delay * -(-len(texts) // self.batch_size))
        return super().embed(texts)


def write_docs(docs, version: str) -> None:
    docs.mkdir(exist_ok=True)
    for i in range(FILES):
        body = "\n\n".join(
            f"## Step {n}\n\n" + f"Printer {i} guide, {version}, step {n}: press the button. " * 8
            for n in range(2)
        )
        (docs / f"guide-{i:02d}.md").write_text(f"# Guide {i} ({version})\n\n{body}\n")


@pytest.fixture
def gateway(tmp_path):
    from retrieval.store import open_client

    docs = tmp_path / "docs"
    write_docs(docs, "version A")
    settings = load_settings(
        home=tmp_path / "home",
        docs_dir=docs,
        admin_key="adm",
        index_batch_chunks=8,
        chunk_tokens=60,
        chunk_overlap_tokens=0,
    )
    client = open_client(settings.index_dir)
    embedder = SlowEmbedder(delay=0.0)
    runner = JobRunner(JobStore(settings.home / "jobs.sqlite"))
    service = IndexService(settings, client, embedder, runner)
    app = gateway_app(
        settings,
        upstream=FakeUpstream(),
        index_service=service,
        on_shutdown=[runner.shutdown],
    )
    http = TestClient(app)
    http.__enter__()
    http.running = True
    http.docs, http.client, http.embedder, http.runner = docs, client, embedder, runner
    assert wait(http, start(http))["state"] == "done"  # version A, quickly
    write_docs(docs, "version B")  # every file changes
    embedder.delay = 0.15
    yield http
    if http.running:
        http.__exit__(None, None, None)


def start(http) -> str:
    resp = http.post("/v1/admin/reindex", headers=ADMIN, json={})
    assert resp.status_code == 202
    return resp.json()["job"]


def wait(http, job_id: str, states=("done", "failed", "cancelled"), timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.runner.store.get(job_id)
        if job["state"] in states:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} is still {job['state']}")


def wait_progress(http, job_id: str, files: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = http.runner.store.get(job_id)
        assert job["state"] in {"queued", "running"}, job
        if (job["progress"] or {}).get("files_done", 0) >= files:
            return
        time.sleep(0.02)
    raise AssertionError("the reindex made no progress")


def versions(http) -> dict[str, str]:
    """source -> 'A' or 'B' for each live document, checking that each is whole."""
    from retrieval.manifest import Manifest

    live = Manifest(http.client, "docs").all()
    chunks = http.client.get_collection("docs").get(include=["metadatas", "documents"])
    found = {}
    for source, entry in live.items():
        texts = [
            text
            for meta, text in zip(chunks["metadatas"], chunks["documents"], strict=True)
            if meta["source"] == source and meta["content_hash"] == entry.content_hash
        ]
        assert len(texts) == entry.n_chunks, f"{source}: half a document is live"
        seen = {v for v in ("A", "B") if any(f"version {v}" in t for t in texts)}
        assert len(seen) == 1, f"{source}: mixed versions {seen}"
        found[source] = seen.pop()
    return found


def test_a_cancelled_reindex_stops_at_once_keeps_documents_whole_and_is_finished_later(gateway):
    job_id = start(gateway)
    wait_progress(gateway, job_id, files=4)
    asked = time.monotonic()
    resp = gateway.post(f"/v1/admin/reindex/{job_id}/cancel", headers=ADMIN)
    assert resp.status_code == 202 and resp.json()["job"] == job_id
    job = wait(gateway, job_id, timeout=10)
    assert time.monotonic() - asked < 2.0
    assert job["state"] == "cancelled", job
    assert job["result"]["cancelled"] is True

    live = versions(gateway)
    assert len(live) == FILES  # nothing was removed
    assert 0 < list(live.values()).count("B") < FILES  # stopped part way

    gateway.embedder.delay = 0.0
    job = wait(gateway, start(gateway))
    assert job["state"] == "done", job
    assert set(versions(gateway).values()) == {"B"}
    total = gateway.client.get_collection("docs").count()
    assert total == job["result"]["chunks"], "leftovers of the cancelled run were not removed"


def test_stopping_the_server_cancels_a_running_reindex(gateway):
    job_id = start(gateway)
    wait_progress(gateway, job_id, files=2)
    asked = time.monotonic()
    gateway.running = False
    gateway.__exit__(None, None, None)  # the lifespan's shutdown, as on SIGTERM
    assert time.monotonic() - asked < 2.0
    job = gateway.runner.store.get(job_id)
    assert job["state"] == "cancelled", job
    assert "A" in versions(gateway).values()


def test_cancelling_a_job_that_has_ended_or_does_not_exist(gateway):
    gateway.embedder.delay = 0.0
    job = wait(gateway, start(gateway))
    resp = gateway.post(f"/v1/admin/reindex/{job['id']}/cancel", headers=ADMIN)
    assert resp.status_code == 202 and resp.json()["state"] == "done"
    assert gateway.post("/v1/admin/reindex/nope/cancel", headers=ADMIN).status_code == 404


def test_a_queued_job_cancelled_before_its_turn_never_runs(tmp_path):
    import threading

    runner = JobRunner(JobStore(tmp_path / "jobs.sqlite"))
    release = threading.Event()
    first = runner.submit("reindex", {}, lambda progress, cancel: release.wait(10) and {})
    ran = []
    second = runner.submit("reindex", {}, lambda progress, cancel: ran.append(1) or {})
    assert runner.cancel(second)
    release.set()
    runner.wait(timeout=10)
    assert runner.store.get(first)["state"] == "done"
    assert runner.store.get(second)["state"] == "cancelled" and not ran
    assert not runner.cancel(second)  # over: nothing to cancel
    runner.shutdown()
