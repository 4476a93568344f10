"""The shipped demo model does its job: given the gateway's grounded prompt, it cites the
source that answers, and says so when nothing was found.

Questions from data/eval/dev (written blind, for development; the reported numbers come
from `assistant eval-answers` on data/eval). Prompts are built exactly as the gateway does
(real index, Grounder.keep, PromptBuilder); the model runs in transformers, greedy, so the
check needs no vLLM. The served path is the same prompt through vLLM (make demo).
"""

from __future__ import annotations

import json

import pytest

from finetune.demo_model import MARKER, SHIPPED
from tests.conftest import DATA

pytestmark = pytest.mark.skipif(not (SHIPPED / MARKER).is_file(), reason="no shipped model")

DOCS = (
    "vpn-error-codes.md",
    "followme-printing.md",
    "guest-wifi.html",
    "account-lockout.md",
    "restoring-deleted-files.md",
    "software-center-and-requests.md",
    "temporary-admin-rights.md",
    "wifi-networks.md",
)


def dev_questions(name: str, docs=DOCS) -> list[dict]:
    rows = [json.loads(line) for line in (DATA / "eval" / "dev" / name).read_text().splitlines()]
    return [r for r in rows if not r["gold"] or set(r["gold"]) & set(docs)]


@pytest.fixture(scope="module")
def answer(tmp_path_factory):
    """Ask the shipped model one question the way the gateway would; returns the scored
    answer (assistant.answer_metrics) with the answer text."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from assistant.answer_metrics import EmbedderSupport, Evidence, score_answer
    from assistant.grounder import Grounder
    from assistant.index_service import index_into, make_embedder, make_retriever
    from assistant.settings import Settings
    from retrieval.store import open_client

    home = tmp_path_factory.mktemp("demo-answers")
    docs = home / "docs"
    docs.mkdir()
    for name in DOCS:
        shutil.copy(DATA / "docs" / name, docs / name)
    settings = Settings(home=home, company_name="Fennmoor Logistics")
    embedder = make_embedder(settings)
    client = open_client(home / "index")
    index_into(settings, client, embedder, [docs], progress=False, log=lambda _: None)
    retriever = make_retriever(settings, client, embedder)
    grounder = Grounder.from_settings(retriever, settings)
    tokenizer = AutoTokenizer.from_pretrained(SHIPPED)
    model = AutoModelForCausalLM.from_pretrained(SHIPPED, dtype=torch.float32).eval()
    support = EmbedderSupport(embedder)

    def ask(question: str, gold: list[str]) -> dict:
        kept = grounder.keep(retriever.search(question, settings.retrieval_k))
        messages = grounder.prompts.apply([{"role": "user", "content": question}], kept)
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        prompt = tokenizer(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model.generate(torch.tensor([prompt]), max_new_tokens=96, do_sample=False)[0][
                len(prompt) :
            ]
        text = tokenizer.decode(out, skip_special_tokens=True).strip()
        sources = [h.citation() for h in kept]
        scored = score_answer(
            question=question,
            gold=gold,
            answer=text,
            sources=sources,
            evidence=[Evidence.of(s, h.text) for s, h in zip(sources, kept, strict=True)],
            grounded=bool(kept),
            support=support,
            embedder=embedder,
        )
        return {"answer": text, **scored}

    return ask


def test_it_cites_the_source_that_answers(answer):
    """Floors under what the shipped build does (greedy, so deterministic): it cites the
    right source on about half the dev questions. Its sentences are not yet copied from the
    source (faithfulness ~0.04 on data/eval), so faithfulness has no floor here: issue 13."""
    asked = [q for q in dev_questions("answerable-dev.jsonl") if q["gold"]]
    results = [answer(q["question"], q["gold"]) for q in asked]
    shown = "\n".join(
        f"{r['gold_source_cited']} {r['faithfulness']}: {r['answer']}" for r in results
    )
    assert len(results) >= 8, shown
    cited = sum(r["gold_source_cited"] for r in results) / len(results)
    assert cited >= 0.4, shown
    # every answer either cites a returned source or declines, never a number out of range
    assert all(r["citations"]["out_of_range"] == 0 for r in results), shown
    assert all(r["citations"]["total"] or r["says_unknown"] for r in results), shown


def test_it_declines_what_the_docs_do_not_cover(answer):
    asked = dev_questions("off-topic-dev.jsonl")[:12]
    results = [answer(q["question"], []) for q in asked]
    right = sum(r["abstention_correct"] for r in results) / len(results)
    shown = "\n".join(f"{r['abstention_correct']}: {r['answer']}" for r in results)
    assert right >= 0.6, shown
