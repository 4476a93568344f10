"""`assistant eval-answers`: each metric on hand-written answers, and the command end to end
against a real HTTP gateway (fake engine, fake index) through the openai client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from assistant.errors import UserError
from assistant.evaluation.harness import load_questions, locate
from assistant.evaluation.metrics import (
    EMBEDDER_MODEL,
    EmbedderSupport,
    Evidence,
    JudgeSupport,
    score_answer,
    summarize,
)
from assistant.evaluation.metrics import METRICS as METRIC_NAMES
from assistant.evaluation.text import cited, says_unknown
from retrieval.retriever import Hit
from retrieval.text import split_sentences
from tests.fakes import FakeIndex, ScriptedUpstream

VPN = {
    "rank": 1,
    "source": "vpn-error-codes.md",
    "title": "VPN error codes and fixes",
    "section": "TP-204 Device certificate missing or expired",
    "snippet": "Your laptop's device certificate is renewed every 180 days by Fleetwarden.",
}
PASSAGE = (
    "Your laptop's device certificate is renewed every 180 days by Fleetwarden. If the "
    "laptop has been switched off for a long time, the certificate may expire. Connect the "
    "laptop to a wired port in any office and leave it on for 20 minutes."
)
WIFI = {
    "rank": 2,
    "source": "guest-wifi.html",
    "title": "Guest Wi-Fi access (FENN-GUEST)",
    "section": "Getting a voucher",
    "snippet": "Reception gives visitors a voucher code for FENN-GUEST that lasts one day.",
}
SOURCES = [VPN, WIFI]
EVIDENCE = [Evidence.of(VPN, PASSAGE), Evidence.of(WIFI)]
QUESTION = "my laptop's VPN certificate expired, how do I fix it"
SUPPORTED = "Connect the laptop to a wired port in an office and leave it on for 20 minutes"


@pytest.fixture(scope="module")
def embedder():
    from retrieval.embeddings import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(EMBEDDER_MODEL)


@pytest.fixture(scope="module")
def score(embedder):
    support = EmbedderSupport(embedder)

    def run(answer, *, gold=("vpn-error-codes.md",), sources=SOURCES, evidence=EVIDENCE,
            grounded=True, question=QUESTION):  # fmt: skip
        return score_answer(question=question, gold=list(gold), answer=answer, sources=sources,
                            evidence=evidence, grounded=grounded, support=support,
                            embedder=embedder)  # fmt: skip

    return run


def test_sentences_keep_their_citations():
    answer = "TP-204 means it expired. [1] Steps:\n1. Plug in a cable [1][2].\n- Wait [1, 2]."
    assert split_sentences(answer) == [
        "TP-204 means it expired [1].",
        "Steps:",
        "Plug in a cable [1][2].",
        "Wait [1, 2].",
    ]
    assert [cited(s) for s in split_sentences(answer)] == [[1], [], [1, 2], [1, 2]]
    # a paragraph wrapped over lines is one sentence
    assert split_sentences("Leave it on\nfor 20 minutes.") == ["Leave it on for 20 minutes."]


def test_a_supported_sentence_with_its_source(score):
    result = score(f"{SUPPORTED} [1].")
    assert result["faithfulness"] == 1.0
    assert result["citation_validity"] == 1.0
    assert result["gold_source_cited"] == 1.0
    assert result["answer_relevance"] == 1.0
    assert result["abstention_correct"] == 1.0
    assert result["sentences"][0]["supported_by"] == [1]


def test_an_unsupported_sentence(score):
    result = score(f"{SUPPORTED} [1]. Then reinstall Windows from the recovery partition [1].")
    assert result["faithfulness"] == 0.5
    assert result["citation_validity"] == 0.5


def test_a_wrong_number_or_code_is_not_supported(score):
    result = score("Connect the laptop to a wired port in an office for 45 minutes [1].")
    assert result["faithfulness"] == 0.0 and result["citation_validity"] == 0.0


def test_citing_the_wrong_source(score):
    result = score(f"{SUPPORTED} [2].", gold=["guest-wifi.html"])
    assert result["faithfulness"] == 1.0  # [1] supports it ...
    assert result["citation_validity"] == 0.0  # ... but it cites [2]
    assert result["gold_source_cited"] == 1.0  # it did cite the gold file, wrongly


def test_a_citation_out_of_range(score):
    result = score(f"{SUPPORTED} [7].")
    assert result["citations"] == {"total": 1, "valid": 0, "out_of_range": 1}
    assert result["citation_validity"] == 0.0
    assert result["gold_source_cited"] == 0.0


def test_no_citations_scores_zero(score):
    result = score(f"{SUPPORTED}.")
    assert result["citation_validity"] == 0.0
    assert result["gold_source_cited"] == 0.0
    assert result["faithfulness"] == 1.0


@pytest.mark.parametrize("answer", ["[1] [2]", "[1]", "Yes [1].", ""])
def test_an_answer_that_states_nothing_earns_nothing_for_its_citations(score, answer):
    # a small model that answers with the source numbers alone cites the gold file, but it
    # has not answered: no gold credit, no valid citation, not counted as answering
    m = score(answer)
    assert m["empty"] is True
    assert m["gold_source_cited"] == 0.0 and m["abstention_correct"] == 0.0
    assert m["citation_validity"] in (0.0, None) and m["faithfulness"] is None
    assert score(f"{SUPPORTED} [1].")["empty"] is False


def test_an_answer_close_to_another_question_is_not_relevant(score):
    result = score("Reception hands out FENN-GUEST vouchers for one day [2].")
    assert result["answer_relevance"] == 0.0


@pytest.mark.parametrize(
    "answer",
    [
        "I don't know.",
        "The documentation does not cover annual leave; please ask HR.",
        "Sorry, I couldn\u2019t find anything about that. Contact the IT Service Desk.",
        "Our docs don't have any information on pensions.",
    ],
)
def test_abstention_phrases(score, answer):
    assert says_unknown(answer)
    off_topic = score(answer, gold=(), sources=[], evidence=[], grounded=False)
    assert off_topic["abstention_correct"] == 1.0
    assert off_topic["gold_source_cited"] is None and off_topic["faithfulness"] is None
    assert off_topic["answer_relevance"] is None
    # grounded true: the server thought its docs applied, so it is not a correct abstention
    assert score(answer, gold=())["abstention_correct"] == 0.0
    # on a question the docs answer, declining is wrong
    assert score(answer)["abstention_correct"] == 0.0


def test_answering_an_off_topic_question_is_wrong(score):
    result = score("You get 25 days of leave.", gold=(), sources=[], evidence=[], grounded=False)
    assert result["abstention_correct"] == 0.0
    assert result["faithfulness"] == 0.0  # nothing returned supports it
    assert not says_unknown("Make sure the laptop is on.")


def test_judge_asks_once_per_sentence_and_source():
    asked = []

    def ask(prompt):
        asked.append(prompt)
        return "Yes." if "20 minutes" in prompt.split("STATEMENT:")[1] else "no"

    judge = JudgeSupport(ask, "big-model")
    assert judge.method == "judge:big-model"
    rows = judge.check([SUPPORTED, "Reinstall Windows."], EVIDENCE[:1])
    assert [[v.ok for v in row] for row in rows] == [[True], [False]]
    judge.check([SUPPORTED], EVIDENCE[:1])
    assert len(asked) == 2


def test_summary_means_over_where_each_applies():
    records = [
        {"gold": ["a.md"], "faithfulness": 1.0, "citation_validity": 0.5,
         "gold_source_cited": 1.0, "answer_relevance": 1.0, "abstention_correct": 1.0,
         "latency_ms": 100.0, "completion_tokens": 10},
        {"gold": [], "faithfulness": None, "citation_validity": None, "gold_source_cited": None,
         "answer_relevance": None, "abstention_correct": 0.0, "latency_ms": 300.0,
         "completion_tokens": 30},
        {"gold": ["a.md"], "error": "HTTP 502: engine failed"},
    ]  # fmt: skip
    summary = summarize(records, "embedder+overlap")
    assert summary["n"] == 3 and summary["answered"] == 2 and summary["errors"] == 1
    assert summary["faithfulness"] == 1.0 and summary["citation_validity"] == 0.5
    assert summary["abstention_correct"] == 0.5 and summary["abstention_offtopic"] == 0.0
    assert summary["latency_p50_ms"] == 200.0 and summary["latency_p95_ms"] == 290.0
    assert summary["tokens_per_answer"] == 20.0
    assert summarize([], "x")["faithfulness"] is None


def test_the_passage_behind_a_snippet_keeps_its_lines():
    doc = "# Printers\n\n- Console says Offline: hold the button.\n  It takes two\n  minutes.\n"
    doc += "- Paper jam: open tray 2.\n" + "More text here. " * 100
    passage = locate(doc, "Console says Offline: hold the button. It takes two minutes. - Paper...")
    assert passage.startswith("Console says Offline: hold the button.\n  It takes two\n")
    assert "- Paper jam" in passage and len(passage) <= 900
    assert locate(doc, "words that are not in the document at all") is None


def test_broken_question_lines_are_skipped_with_their_numbers(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"question": "vpn?", "gold": ["vpn-error-codes.md"]}\n\n{not json\n'
        '{"question": "", "gold": []}\n{"question": "lunch?", "gold": []}\n[1]\n'
        '{"question": "x", "gold": [3]}\n'
    )
    questions, problems = load_questions(path)
    assert [(q.line, q.gold) for q in questions] == [(1, ("vpn-error-codes.md",)), (5, ())]
    assert [p.split(": ")[0].rsplit(":", 1)[1] for p in problems] == ["3", "4", "6", "7"]


def test_key_facts_come_from_the_sibling_facts_file_and_are_matched_loosely(tmp_path):
    from assistant.evaluation.metrics import key_fact_stated, summarize

    path = tmp_path / "manual.jsonl"
    path.write_text(
        '{"question": "terminal frozen after ctrl+s", "gold": ["ch01.html"]}\n'
        '{"question": "why is /tmp empty", "gold": ["ch03.html"]}\n'
    )
    (tmp_path / "manual.facts.jsonl").write_text(
        '{"question": "terminal frozen after ctrl+s", "key_fact": ["Ctrl-Q", "Ctrl+Q"]}\n'
        '{"question": "why is /tmp empty", "key_fact": null}\n'
    )
    questions, _ = load_questions(path)
    assert [q.key_fact for q in questions] == [("Ctrl-Q", "Ctrl+Q"), None]
    assert key_fact_stated("Press  ctrl+q to resume [1].", questions[0].key_fact) == 1.0
    assert key_fact_stated("Press Ctrl+D.", questions[0].key_fact) == 0.0
    assert key_fact_stated("It is cleaned at boot.", questions[1].key_fact) is None
    records = [
        {"gold": ["a"], "key_fact_stated": 1.0, **dict.fromkeys(METRIC_NAMES)},
        {"gold": ["a"], "key_fact_stated": 0.0, **dict.fromkeys(METRIC_NAMES)},
        {"gold": ["a"], "key_fact_stated": None, **dict.fromkeys(METRIC_NAMES)},
    ]
    summary = summarize(records, "test")
    assert summary["key_fact_stated"] == 0.5 and summary["n_key_facts"] == 2
    (tmp_path / "manual.facts.jsonl").write_text('{"question": "x", "key_fact": "Ctrl-Q"}\n')
    with pytest.raises(UserError, match=r"manual\.facts\.jsonl:1: 'key_fact' must be a list"):
        load_questions(path)


# --- the command, end to end ------------------------------------------------------------

TP204 = "My VPN says TP-204"
LEAVE = "how many days of annual leave do I get"
ANSWERS = {
    # supported only by the passage behind [1], past its 240-character snippet
    TP204: "Leave the laptop on a wired office port for 20 minutes so Fleetwarden renews "
    "the certificate [1].",
    LEAVE: "The documentation does not cover annual leave; please ask HR.",
    "what does TP-204 mean": "TP-204 means the device certificate expired",
}
DOC = (
    "# VPN error codes and fixes\n\n## TP-204 Device certificate\n\n"
    "TP-204 means the device certificate expired. It is renewed every 180 days by "
    "Fleetwarden, the device management service, as long as the laptop is switched on and "
    "connected to the company network now and then. Laptops left in a drawer during a long "
    "leave are the usual case. Leave the laptop on a wired office port for 20 minutes and "
    "Fleetwarden renews the certificate.\n"
)


class TopicIndex(FakeIndex):
    """Finds nothing for questions about leave, as a real index would score them."""

    def search(self, query, k=4, collection=None, groups=None):
        return [] if "leave" in query else super().search(query, k, collection, groups)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gateway(tmp_path):
    """The real gateway on a loopback port: fake engine, fake index, one real document."""
    import uvicorn

    from assistant.settings import load_settings
    from tests.conftest import gateway_app

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "vpn-error-codes.md").write_text(DOC)
    hit = Hit(1, "vpn-error-codes.md", "VPN error codes and fixes", "TP-204 Device certificate",
              None, 0.7, DOC.split("\n\n", 2)[2])  # fmt: skip
    index = TopicIndex(hits=[hit, *FakeIndex().hits[1:]])
    settings = load_settings(home=tmp_path / "home", docs_dir=docs)
    upstream = ScriptedUpstream(ANSWERS, failing=("this one fails",))
    app = gateway_app(settings, upstream=upstream, index=index)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def run(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "assistant", "eval-answers", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=timeout,
    )


def test_command_end_to_end(gateway, tmp_path):
    questions = tmp_path / "questions.jsonl"
    lines = [
        {"question": TP204, "gold": ["vpn-error-codes.md"]},
        {"question": "what does TP-204 mean", "gold": ["guest-wifi.html"]},
        "{broken",
        {"question": "this one fails", "gold": ["vpn-error-codes.md"]},
        {"question": LEAVE, "gold": []},
    ]
    questions.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines))
    out = tmp_path / "run"
    result = run("--questions", str(questions), "--url", gateway, "--json", "--out", str(out))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["n"] == 4 and summary["errors"] == 1 and summary["skipped_lines"] == 1
    assert summary["method"] == "embedder+overlap" and summary["model"] == "helpdesk-demo"
    assert f"{questions}:3: skipped" in result.stderr
    assert f"{questions}:4: HTTP 502" in result.stderr
    assert summary["gold_source_cited"] == 0.5  # the second answer cites nothing
    assert summary["citation_validity"] == 0.5
    assert summary["abstention_correct"] == 1.0 and summary["abstention_offtopic"] == 1.0
    assert summary["latency_p50_ms"] > 0 and summary["tokens_per_answer"] > 0
    records = [json.loads(x) for x in (out / "answers.jsonl").read_text().splitlines()]
    assert [r["line"] for r in records] == [1, 2, 4, 5]
    first = records[0]
    assert first["evidence"] == ["passage", "snippet"]  # the PDF is not in the docs folder
    assert first["faithfulness"] == 1.0 and first["citation_validity"] == 1.0
    assert records[3]["grounded"] is False and records[3]["abstained"] is True
    assert json.loads((out / "summary.json").read_text()) == summary
    assert "| faithfulness |" in (out / "summary.md").read_text()
    assert (out / "summary.png").read_bytes()[:4] == b"\x89PNG"

    compared = run("--compare", str(out), str(out / "summary.json"))
    assert compared.returncode == 0, compared.stderr
    assert "B - A" in compared.stdout and "+0.000" in compared.stdout


def test_server_down_reports_every_question(tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question": "a", "gold": []}\n{"question": "b", "gold": ["x.md"]}\n')
    result = run("--questions", str(questions), "--url", f"http://127.0.0.1:{_free_port()}",
                 "--json", timeout=120)  # fmt: skip
    assert result.returncode == 1
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["errors"] == 2 and summary["faithfulness"] is None
    assert f"{questions}:1: APIConnectionError" in result.stderr
    assert "Traceback" not in result.stderr


def test_compare_two_summaries(tmp_path):
    base = {
        "n": 10,
        "errors": 0,
        "model": "base",
        "method": "embedder+overlap",
        "gold_source_cited": 0.2,
        "faithfulness": 0.5,
        "citation_validity": None,
        "answer_relevance": 0.7,
        "abstention_correct": 0.4,
        "latency_p50_ms": 900.0,
    }
    tuned = {**base, "model": "it-support", "gold_source_cited": 0.6, "faithfulness": 0.8,
             "citation_validity": 0.75, "latency_p50_ms": 1000.0}  # fmt: skip
    (tmp_path / "a.json").write_text(json.dumps(base))
    (tmp_path / "b.json").write_text(json.dumps(tuned))
    result = run("--compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout.strip().splitlines()[-1])["metrics"]
    assert rows["gold_source_cited"] == {"a": 0.2, "b": 0.6, "delta": 0.4}
    assert rows["citation_validity"]["delta"] is None
    assert rows["latency_p50_ms"]["delta"] == 100.0
    text = run("--compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")).stdout
    assert "it-support" in text and "+0.400" in text and "+100.0" in text
    bad = run("--compare", str(tmp_path / "a.json"), str(tmp_path / "nope.json"))
    assert bad.returncode == 1 and "cannot read a summary" in bad.stderr


def test_url_and_model_together_is_one_clear_error(tmp_path):
    result = run("--questions", str(tmp_path), "--url", "http://x", "--model", "m")
    assert result.returncode == 1
    assert "--url" in result.stderr and "--model" in result.stderr
    assert "Traceback" not in result.stderr
