"""Analytics for the IT team: counts, deflection and content gaps from the server's own
records, through the admin API (JSON and CSV) and `assistant report` (files, no server);
questions PII-scrubbed; old files migrated; bad ranges and non-admins refused."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assistant.analytics.clustering import agglomerate
from assistant.analytics.content_gaps import GapFinder, GapQuestion
from assistant.analytics.service import parse_period
from assistant.analytics.vector_cache import VectorCache
from assistant.chat.answer_log import AnswerLog
from assistant.errors import APIError, UserError
from tests.fakes import FakeEmbedder, FakeIndex, FakeUpstream
from tests.test_gateway import assert_openai_error
from tests.ticket_receiver import Receiver

ROOT = Path(__file__).resolve().parents[1]
ADMIN = {"Authorization": "Bearer adm"}
PERSONAL = "I'm Priya Sharma, priya.sharma@example.com"


class TopicIndex(FakeIndex):
    """Finds the VPN page for questions about the VPN, nothing for anything else."""

    def search(self, query, k=4, collection=None, groups=None):
        hits = super().search(query, k, collection, groups)
        return hits if "vpn" in query.lower() else []


@pytest.fixture
def http(tmp_path):
    from assistant.chat.feedback_store import FeedbackStore
    from assistant.identity.users import UserStore
    from assistant.settings import load_settings
    from tests.conftest import gateway_app

    receiver = Receiver()
    users = UserStore(tmp_path / "users.sqlite")
    for name in ("alice", "bob"):
        users.add(name, [])
    settings = load_settings(
        home=tmp_path, admin_key="adm", escalation_webhook_url=receiver.url + "/hook"
    )
    app = gateway_app(
        settings,
        upstream=FakeUpstream(),
        index=TopicIndex(),
        embedder=FakeEmbedder(),
        users=users,
        feedback_store=FeedbackStore(tmp_path / "feedback.sqlite"),
    )
    with TestClient(app) as client:
        client.keys = {
            n: {"Authorization": f"Bearer {users.create_key(n)[1]}"} for n in ("alice", "bob")
        }
        yield client
    receiver.close()


def ask(http, who, question, **extra):
    body = {"model": "helpdesk-demo", "messages": [{"role": "user", "content": question}]}
    resp = http.post("/v1/chat/completions", json={**body, **extra}, headers=http.keys[who])
    assert resp.status_code == 200
    return resp.json()


def rate(http, who, answer, rating):
    body = {"completion_id": answer["id"], "rating": rating}
    assert http.post("/v1/feedback", json=body, headers=http.keys[who]).status_code == 201


def test_counts_deflection_and_gaps_through_the_admin_api(http, tmp_path):
    rate(http, "alice", ask(http, "alice", "My VPN says TP-204"), "like")
    rate(http, "alice", ask(http, "alice", "How do I get a parking permit?"), "dislike")
    ask(http, "bob", f"Parking permit for the garage? {PERSONAL}")
    conversation = http.get("/v1/conversations", headers=http.keys["bob"]).json()["data"][0]
    escalation = {"conversation_id": conversation["id"]}
    assert http.post("/v1/escalations", json=escalation, headers=http.keys["bob"]).is_success
    ask(http, "bob", "Summarise this text", retrieval={"enabled": False})

    resp = http.get("/v1/admin/analytics", headers=ADMIN)
    assert resp.status_code == 200
    report = resp.json()
    assert report["to"] == date.today().isoformat() and len(report["daily"]) == 7
    totals = report["totals"]
    assert totals["questions"] == 4 and totals["conversations"] == 4
    assert (totals["grounded"], totals["not_grounded"], totals["retrieval_off"]) == (1, 2, 1)
    assert totals["grounded_share"] == pytest.approx(1 / 3, abs=1e-3)
    assert (totals["liked"], totals["disliked"], totals["escalations"]) == (1, 1, 1)
    assert totals["escalated_conversations"] == 1 and totals["deflection_rate"] == 0.75
    assert report["daily"][-1]["questions"] == 4
    assert {"source": "vpn-error-codes.md", "title": "VPN error codes and fixes",
            "answers": 1} in report["top_sources"]  # fmt: skip

    gaps = report["content_gaps"]
    assert gaps["questions"] == 2 and gaps["method"] == "agglomerative"
    reasons = {r: sum(c[r] for c in gaps["clusters"]) for r in ("disliked", "escalated")}
    assert reasons == {"disliked": 1, "escalated": 1}
    assert sum(c["not_grounded"] for c in gaps["clusters"]) == 2
    shown = [q for c in gaps["clusters"] for q in c["examples"]]
    assert "How do I get a parking permit?" in shown
    # personal data never reaches analytics: not in the report, not in the stored column
    assert "Priya" not in resp.text and "priya.sharma@example.com" not in resp.text
    assert any("<EMAIL>" in q for q in shown)
    with sqlite3.connect(tmp_path / "answers.sqlite") as db:
        stored = [r[0] for r in db.execute("SELECT question FROM answers")]
    assert not any("example.com" in q for q in stored) and len(stored) == 4

    csv_resp = http.get("/v1/admin/analytics?format=csv&table=daily", headers=ADMIN)
    assert csv_resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(csv_resp.text)))
    assert rows[0][:3] == ["date", "questions", "grounded"] and len(rows) == 8
    assert rows[-1][1] == "4"
    summary = dict(csv.reader(io.StringIO(http.get(
        "/v1/admin/analytics?format=csv", headers=ADMIN).text)))  # fmt: skip
    assert summary["deflection_rate"] == "0.75"


@pytest.mark.parametrize(
    "query, message",
    [
        ("from=2025-03-09&to=2025-03-01", "is after 'to'"),
        ("from=2025-02-30", "not a real date"),
        ("from=last-week", "YYYY-MM-DD"),
        ("from=2023-01-01&to=2025-01-01", "at most 366 days"),
        ("from=9999-12-30&to=9999-12-31", "between 1970 and 9000"),
    ],
)
def test_a_bad_date_range_is_a_400(http, query, message):
    error = assert_openai_error(http.get(f"/v1/admin/analytics?{query}", headers=ADMIN), 400)
    assert message in error["message"] and error["code"] == "invalid_date_range"


def test_bad_options_and_non_admins_are_refused(http):
    assert_openai_error(http.get("/v1/admin/analytics?format=xml", headers=ADMIN), 400)
    assert_openai_error(http.get("/v1/admin/analytics?format=csv&table=x", headers=ADMIN), 400)
    assert_openai_error(http.get("/v1/admin/analytics?clusters=0", headers=ADMIN), 400)
    refused = http.get("/v1/admin/analytics", headers=http.keys["alice"])
    assert assert_openai_error(refused, 403)["code"] == "not_admin"
    assert_openai_error(http.get("/v1/admin/analytics"), 401)


def test_days_are_whole_days_in_the_configured_time_zone():
    period = parse_period("2025-03-30", "2025-03-30", "Europe/Berlin")  # clocks go forward
    assert period.end - period.start == 23 * 3600
    assert period.day(period.start) == "2025-03-30" and period.days() == ["2025-03-30"]
    default = parse_period(None, None, "UTC", today=date(2025, 3, 9))
    assert (default.first, default.last) == (date(2025, 3, 3), date(2025, 3, 9))


def test_files_from_before_the_analytics_columns_are_migrated(tmp_path):
    from assistant.analytics.service import make_analytics
    from assistant.chat.feedback_store import FeedbackStore
    from assistant.settings import load_settings

    old = tmp_path / "answers.sqlite"
    with sqlite3.connect(old) as db:  # the answer log as the first release wrote it
        db.executescript(
            "CREATE TABLE answers (id TEXT NOT NULL, user TEXT NOT NULL, created_at REAL NOT "
            "NULL, model TEXT NOT NULL, messages TEXT NOT NULL, answer TEXT NOT NULL, sources "
            "TEXT NOT NULL DEFAULT '[]', conversation TEXT NOT NULL, state TEXT NOT NULL, "
            "PRIMARY KEY (id, user));"
        )
        for n, sources in enumerate(['[{"source": "a.md"}]', "[]"]):
            question = json.dumps([{"role": "user", "content": f"q{n} from {PERSONAL}"}])
            db.execute("INSERT INTO answers VALUES (?, 'u', ?, 'm', ?, 'a', ?, ?, 's')",
                       (f"c{n}", time.time(), question, sources, f"conv{n}"))  # fmt: skip
    with sqlite3.connect(tmp_path / "feedback.sqlite") as db:
        db.execute(
            "CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT "
            "NULL, model TEXT NOT NULL, messages TEXT NOT NULL, answer TEXT NOT NULL, sources "
            "TEXT NOT NULL DEFAULT '[]', rating INTEGER NOT NULL, correction TEXT, user TEXT)"
        )
        db.execute("INSERT INTO feedback (created_at, model, messages, answer, rating, user) "
                   "VALUES (?, 'm', ?, 'a', -1, 'u')",
                   (time.time(), json.dumps([{"role": "user", "content": "q0"}])))  # fmt: skip

    # read as they are (old rows: grounded from their sources, question scrubbed on the way)
    service = make_analytics(load_settings(home=tmp_path))
    report = service.report()
    assert (report["totals"]["grounded"], report["totals"]["not_grounded"]) == (1, 1)
    [gap] = [q for c in report["content_gaps"]["clusters"] for q in c["examples"]]
    assert gap.startswith("q1 from") and "<EMAIL>" in gap and "Priya" not in gap

    # opened by the server's stores: columns added, old rows kept, new ones complete
    log = AnswerLog(old, scrub=lambda text: text.upper())
    log.record(id="c2", user="u", model="m", messages=[{"role": "user", "content": "new"}],
               answer="b", grounded=False)  # fmt: skip
    log.close()
    with sqlite3.connect(old) as db:
        rows = db.execute("SELECT id, grounded, question FROM answers ORDER BY id").fetchall()
    assert rows == [("c0", 1, None), ("c1", 0, None), ("c2", 0, "NEW")]
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    assert store.all()[0]["completion_id"] is None
    store.add(model="m", messages=[{"role": "user", "content": "q"}], answer="a", rating=1,
              completion_id="c2")  # fmt: skip
    assert store.latest(1)[0]["completion_id"] == "c2"


def test_the_two_pass_clustering_agrees_with_the_exact_one():
    import numpy as np

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(12, 32))
    points = np.repeat(centres, 40, axis=0) + rng.normal(scale=0.15, size=(480, 32))
    truth = np.repeat(np.arange(12), 40)
    for limit in (10_000, 50):  # exact; leaders first, then the linkage over their centroids
        labels = agglomerate(points, 0.3, exact_limit=limit)
        assert len(set(labels)) == 12
        assert all(len(set(labels[truth == t])) == 1 for t in range(12))


def test_each_question_is_embedded_once(tmp_path):
    class Counting(FakeEmbedder):
        def __init__(self) -> None:
            self.embedded: list[str] = []

        def embed(self, texts):
            self.embedded += texts
            return super().embed(texts)

    embedder = Counting()
    cache = VectorCache(tmp_path / "cache.sqlite")
    first = cache.embed(embedder, ["vpn down", "printer jam"])
    again = cache.embed(embedder, ["printer jam", "new one", "vpn down"])
    assert embedder.embedded == ["vpn down", "printer jam", "new one"]
    assert (again[0] == first[1]).all() and (again[2] == first[0]).all()


def test_questions_not_grounded_are_embedded_before_any_report(tmp_path):
    from assistant.analytics.gap_warmer import GapWarmer
    from assistant.analytics.service import make_analytics
    from assistant.settings import load_settings

    class Counting(FakeEmbedder):
        def __init__(self) -> None:
            self.embedded: list[str] = []

        def embed(self, texts):
            self.embedded += texts
            return super().embed(texts)

    log = AnswerLog(tmp_path / "answers.sqlite", scrub=lambda text: text)
    for n, (question, grounded) in enumerate(
        [("vpn", True), ("parking permit", False), ("parking   permit", False), ("x", None)]
    ):
        messages = [{"role": "user", "content": question}]
        log.record(id=f"c{n}", user="u", model="m", messages=messages, answer="a",
                   grounded=grounded)  # fmt: skip
    log.close()
    embedder = Counting()
    service = make_analytics(load_settings(home=tmp_path), embedder=embedder)
    warmer = GapWarmer.of(service, interval_s=30)
    assert warmer.run_once() == 2 and warmer.run_once() == 0
    assert embedder.embedded == ["parking permit"]
    report = service.report()
    assert report["content_gaps"]["questions"] == 2 and embedder.embedded == ["parking permit"]
    assert GapWarmer.of(service, interval_s=0) is None


class TopicEmbedder:
    """One axis per topic word, so that clustering is known in advance."""

    name = "topics"
    words = ("vpn", "parking", "expense")

    def embed(self, texts):
        return [[float(w in t.lower()) for w in self.words] + [0.1] for t in texts]


def test_gaps_are_grouped_largest_first_with_their_page():
    asked = ["parking permit?", "Parking  permit?", "where to park: parking pass", "VPN TP-204",
             "expense form", "parking permit?"]  # fmt: skip
    items = [GapQuestion(q, {"not_grounded"}) for q in asked]
    items[3].reasons.add("disliked")
    report = GapFinder(TopicEmbedder(), TopicIndex()).report(items, limit=2)
    assert (report["questions"], report["distinct"], report["clusters_total"]) == (6, 3 + 1, 3)
    parking, vpn = report["clusters"]
    assert parking["size"] == 4 and parking["distinct"] == 2  # case and spacing aside
    assert parking["examples"] == ["parking permit?", "where to park: parking pass"]
    assert parking["representative"] == "parking permit?" and parking["not_grounded"] == 4
    assert parking["nearest_document"] is None and parking["action"] == "write"
    assert vpn["nearest_document"]["source"] == "vpn-error-codes.md"
    assert vpn["action"] == "improve" and vpn["disliked"] == 1

    class Broken(TopicIndex):
        def search(self, *args, **kwargs):
            raise RuntimeError("no collection 'docs'")

    failing = GapFinder(TopicEmbedder(), Broken()).report(items)  # the report goes on
    assert [c["action"] for c in failing["clusters"]] == [None, None, None]

    plain = GapFinder().report(items)  # no embedder: identical wordings only, no index
    assert plain["method"] == "identical wording" and plain["clusters_total"] == 4
    assert plain["clusters"][0]["size"] == 3 and plain["clusters"][0]["action"] is None


def test_cli_report_bad_range_is_one_line(tmp_path, monkeypatch):
    from assistant.cli.report import report

    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path))
    with pytest.raises(UserError) as caught:
        report(first="2025-03-09", last="2025-03-01", out=None, clusters=20, config=None,
               as_json=True)  # fmt: skip
    assert "\n" not in str(caught.value) and "is after 'to'" in str(caught.value)
    with pytest.raises(APIError):
        parse_period("2025-01-01", "tomorrow")


def test_minilm_clusters_and_assistant_report_writes_the_same_as_files(tmp_path):
    """The real MiniLM clusters paraphrases (in process, as the server does); then
    `assistant report` (one subprocess, no server) reads the same HOME: same numbers as
    files and --json, personal data nowhere. The vectors are in HOME's cache by then, so
    the subprocess need not load the model (as after a server's GapWarmer)."""
    from assistant.analytics.service import make_analytics
    from assistant.chat.feedback_store import FeedbackStore
    from assistant.escalation.store import EscalationStore
    from assistant.settings import load_settings
    from retrieval.embeddings import SentenceTransformerEmbedder

    home = tmp_path / "home"
    log = AnswerLog(home / "answers.sqlite")
    vpn = [{"rank": 1, "source": "vpn-error-codes.md", "title": "VPN error codes"}]
    password = [{"rank": 1, "source": "passwords.md", "title": "Passwords"}]
    asked = [
        ("How do I get a parking permit for the garage?", []),
        ("parking permit for the office garage", []),
        ("Where do I apply for a car park pass?", []),
        ("who issues parking permits", []),
        ("parking permit for the office garage", []),
        ("The VPN says TP-204 when I connect", vpn),  # disliked
        ("VPN error TP-204 on my laptop", []),
        ("can't connect to the VPN, error TP-204", vpn),  # escalated
        ("How do I submit my expense report?", []),
        ("expense claim form for travel costs", []),
        ("where do I send receipts for expenses", []),
        (f"printer on floor 3 is out of toner, {PERSONAL}", []),
        ("How do I reset my password?", password),
        ("Summarise this text", None),  # retrieval off
    ]
    conversations = []
    for n, (question, sources) in enumerate(asked):
        conversations.append(log.record(
            id=f"c{n}", user="ann", model="m", answer="a", sources=sources,
            messages=[{"role": "user", "content": question}],
            grounded=None if sources is None else bool(sources),
        ))  # fmt: skip
    log.close()
    FeedbackStore(home / "feedback.sqlite").add(
        model="m", messages=[{"role": "user", "content": asked[5][0]}], answer="a", rating=-1,
        user="ann", completion_id="c5",
    )  # fmt: skip
    EscalationStore(home / "escalations.sqlite").add(
        {"id": "esc-1", "conversation_id": conversations[7], "transcript": []}, "ann", ["x"]
    )
    minilm = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    in_process = make_analytics(load_settings(home=home), embedder=minilm).report()
    out = tmp_path / "weekly"
    today = date.today()
    env = {**os.environ, "ASSISTANT_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "report", "--from",
         (today - timedelta(days=6)).isoformat(), "--to", today.isoformat(), "--out", str(out),
         "--json"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    totals = result["totals"]
    assert (totals["questions"], totals["grounded"], totals["not_grounded"]) == (14, 3, 10)
    assert (totals["retrieval_off"], totals["disliked"], totals["escalations"]) == (1, 1, 1)
    assert totals["deflection_rate"] == round(13 / 14, 4)
    gaps = result["content_gaps"]
    assert gaps["method"] == "agglomerative" and gaps["questions"] == 12
    clusters = [(c["size"], c["not_grounded"], c["disliked"], c["escalated"])
                for c in gaps["clusters"]]  # fmt: skip
    assert clusters == [(5, 5, 0, 0), (3, 1, 1, 1), (3, 3, 0, 0), (1, 1, 0, 0)]
    assert "parking" in gaps["clusters"][0]["representative"]
    assert "TP-204" in gaps["clusters"][1]["representative"]
    assert gaps["clusters"] == in_process["content_gaps"]["clusters"]
    assert totals == in_process["totals"]

    names = {Path(f).name for f in result["files"]}
    assert {"summary.csv", "daily.csv", "top_sources.csv", "content_gaps.csv",
            "report.json", "questions_per_day.png", "content_gaps.png"} <= names  # fmt: skip
    assert (out / "questions_per_day.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader((out / "content_gaps.csv").open()))
    assert [int(r["size"]) for r in rows] == [5, 3, 3, 1]
    written = "".join((out / n).read_text() for n in names if not n.endswith(".png"))
    assert "priya.sharma@example.com" not in written and "Priya" not in written
    assert "<EMAIL>" in written
