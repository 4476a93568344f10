"""Admin reindex jobs over HTTP: real Chroma, real MiniLM, a fake engine.

The gateway runs the reindex in a background job on its own Chroma client; chat requests
keep getting grounded answers while it runs.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assistant.knowledge.factories import make_retriever
from assistant.knowledge.index import IndexService
from assistant.knowledge.jobs import JobRunner, JobStore
from assistant.settings import load_settings
from tests.conftest import gateway_app
from tests.fakes import FakeUpstream

DATA_DOCS = Path(__file__).resolve().parents[1] / "data" / "docs"
ADMIN = {"Authorization": "Bearer adm"}


@pytest.fixture(scope="module")
def embedder():
    from retrieval.embeddings import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder("sentence-transformers/all-MiniLM-L6-v2")


@pytest.fixture
def gateway(tmp_path, embedder):
    from retrieval.store import open_client

    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("vpn-error-codes.md", "followme-printing.md", "guest-wifi.html"):
        shutil.copy(DATA_DOCS / name, docs / name)
    settings = load_settings(home=tmp_path / "home", docs_dir=docs, admin_key="adm")
    client = open_client(settings.index_dir)
    runner = JobRunner(JobStore(settings.home / "jobs.sqlite"))
    app = gateway_app(
        settings,
        upstream=FakeUpstream(),
        index=make_retriever(settings, client, embedder, background_refresh=True),
        embedder=embedder,
        index_service=IndexService(settings, client, embedder, runner),
        on_shutdown=[runner.shutdown],
    )
    with TestClient(app) as http:
        http.docs = docs
        http.runner = runner
        yield http


def wait_job(http, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"/v1/admin/reindex/{job_id}", headers=ADMIN).json()
        if job["state"] in {"done", "failed", "cancelled"}:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def test_reindex_job_reports_progress_and_counts(gateway):
    resp = gateway.post("/v1/admin/reindex", headers=ADMIN, json={})
    assert resp.status_code == 202
    job = wait_job(gateway, resp.json()["job"])
    assert job["state"] == "done", job["error"]
    assert job["counts"]["added"] == 3 and job["counts"]["chunks"] > 3
    assert job["progress"]["files_done"] == job["progress"]["files_total"] == 3

    (gateway.docs / "vpn-error-codes.md").unlink()
    (gateway.docs / "new.md").write_text("# Kiosk\n\nThe lobby kiosk reboots at 6am.\n")
    job = wait_job(gateway, gateway.post("/v1/admin/reindex", headers=ADMIN).json()["job"])
    counts = job["counts"]
    assert (counts["added"], counts["removed"], counts["unchanged"]) == (1, 1, 2)

    overview = gateway.get("/v1/admin/index", headers=ADMIN).json()
    docs = next(c for c in overview["collections"] if c["name"] == "docs")
    assert docs["documents"] == 3 and docs["chunks"] == counts["chunks"]
    assert docs["last_reindex"] is not None
    assert all(not c["name"].endswith(".manifest") for c in overview["collections"])
    listed = gateway.get("/v1/admin/reindex", headers=ADMIN).json()["data"]
    assert [j["job"] for j in listed][:1] == [job["job"]]


def test_admin_routes_want_the_admin_key(gateway):
    from tests.test_gateway import assert_openai_error

    assert_openai_error(gateway.post("/v1/admin/reindex"), 401)
    wrong = {"Authorization": "Bearer nope"}
    assert_openai_error(gateway.get("/v1/admin/index", headers=wrong), 401)


def test_admin_routes_are_off_without_an_admin_key(tmp_path):
    from tests.test_gateway import assert_openai_error

    settings = load_settings(home=tmp_path)
    with TestClient(gateway_app(settings, upstream=FakeUpstream())) as http:
        err = assert_openai_error(http.post("/v1/admin/reindex"), 403)
        assert "ASSISTANT_ADMIN_KEY" in err["message"]


def test_bad_reindex_requests(gateway):
    from tests.test_gateway import assert_openai_error

    post = gateway.post
    assert (
        "outside"
        in assert_openai_error(
            post("/v1/admin/reindex", headers=ADMIN, json={"path": "../../etc"}), 400
        )["message"]
    )
    assert_openai_error(post("/v1/admin/reindex", headers=ADMIN, json={"path": "nope"}), 400)
    assert_openai_error(post("/v1/admin/reindex", headers=ADMIN, json={"collection": "a"}), 400)
    assert_openai_error(post("/v1/admin/reindex", headers=ADMIN, json={"ful": True}), 400)
    assert_openai_error(gateway.get("/v1/admin/reindex/nope", headers=ADMIN), 404)


def test_an_invalid_access_file_is_a_400_before_any_job_starts(gateway):
    from tests.test_gateway import assert_openai_error

    (gateway.docs / "access.yaml").write_text('- path: "hr/**"\n  groups: [hr, "fin ance"]\n')
    before = gateway.get("/v1/admin/index", headers=ADMIN).json()
    for body in ({}, {"dry_run": True}):
        err = assert_openai_error(gateway.post("/v1/admin/reindex", headers=ADMIN, json=body), 400)
        assert err["code"] == "invalid_access_rules"
        assert err["message"].startswith(f"{gateway.docs / 'access.yaml'} line 2: group name")
        assert "\n" not in err["message"]
    # no job was queued, and the index (with the rules in force) is as it was
    assert gateway.get("/v1/admin/reindex", headers=ADMIN).json()["data"] == []
    assert gateway.runner.store.latest(10) == []
    assert gateway.get("/v1/admin/index", headers=ADMIN).json() == before


def test_department_collection_from_a_subfolder(gateway):
    (gateway.docs / "hr").mkdir()
    (gateway.docs / "hr" / "payslips.md").write_text("# Payslips\n\nPayslips are in PeopleHub.\n")
    job = wait_job(
        gateway,
        gateway.post(
            "/v1/admin/reindex", headers=ADMIN, json={"collection": "hr-docs", "path": "hr"}
        ).json()["job"],
    )
    assert job["counts"]["added"] == 1
    chat = {
        "model": "helpdesk-demo",
        "messages": [{"role": "user", "content": "where are my payslips"}],
        "retrieval": {"collection": "hr-docs"},
    }
    body = gateway.post("/v1/chat/completions", json=chat).json()
    assert [s["source"] for s in body["sources"]] == ["payslips.md"]


def test_queries_keep_working_during_a_reindex(gateway):
    wait_job(gateway, gateway.post("/v1/admin/reindex", headers=ADMIN).json()["job"])
    for path in DATA_DOCS.iterdir():  # a bigger folder, so the reindex takes a while
        if not (gateway.docs / path.name).exists():
            shutil.copy(path, gateway.docs / path.name)
    chat = {
        "model": "helpdesk-demo",
        "messages": [{"role": "user", "content": "What does VPN error TP-204 mean?"}],
    }
    job_id = gateway.post("/v1/admin/reindex", headers=ADMIN, json={"full": True}).json()["job"]
    answers, states = [], set()
    while True:
        state = gateway.get(f"/v1/admin/reindex/{job_id}", headers=ADMIN).json()["state"]
        states.add(state)
        if state in {"done", "failed"}:
            break
        resp = gateway.post("/v1/chat/completions", json=chat)
        assert resp.status_code == 200, resp.text
        answers.append(resp.json())
    assert state == "done"
    assert "running" in states and len(answers) >= 2
    for body in answers:
        assert body["grounded"] is True
        sources = [(s["source"], s["snippet"]) for s in body["sources"]]
        assert len(sources) == len(set(sources))  # never two versions of a passage
        assert any(s["source"] == "vpn-error-codes.md" for s in body["sources"])


def test_interrupted_jobs_are_marked_failed_at_restart(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    job_id = store.create("reindex", {"collection": "docs"})
    store.update(job_id, state="running")
    store.close()
    again = JobStore(tmp_path / "jobs.sqlite")
    job = again.get(job_id)
    assert job["state"] == "failed" and "interrupted" in job["error"]


def test_a_failing_job_is_failed_not_fatal(tmp_path):
    runner = JobRunner(JobStore(tmp_path / "jobs.sqlite"))
    boom = runner.submit("reindex", {}, lambda progress, cancel: 1 / 0)
    done = runner.submit("reindex", {}, lambda progress, cancel: {"ok": 1})
    runner.wait(timeout=10)
    assert runner.store.get(boom)["state"] == "failed"
    assert "division" in runner.store.get(boom)["error"]
    assert runner.store.get(done)["result"] == {"ok": 1}
    runner.shutdown()


def test_concurrent_job_submissions_run_one_at_a_time(tmp_path):
    runner = JobRunner(JobStore(tmp_path / "jobs.sqlite"))
    active, peak = [0], [0]
    lock = threading.Lock()

    def work(progress, cancel):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return {}

    for _ in range(4):
        runner.submit("reindex", {}, work)
    runner.wait(timeout=10)
    assert peak[0] == 1
    runner.shutdown()
