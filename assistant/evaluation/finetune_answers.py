"""A fine-tuning run judged on answers, not only loss: the eval-answers harness asks the same
questions of the base model and of the new adapter, served side by side by one server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from assistant.evaluation import harness as ev
from assistant.evaluation import metrics as am
from assistant.evaluation.harness import Question
from assistant.evaluation.report import write_run
from retrieval.embeddings import SentenceTransformerEmbedder

ADAPTER_NAME = "candidate"  # the new adapter's name on the server started for the comparison
REPORTED = (
    "faithfulness",
    "citation_validity",
    "answer_relevance",
    "gold_source_cited",
    "abstention_correct",
    "latency_p50_ms",
)


def heldout_questions(records: list[dict], origin: str) -> list[Question]:
    """The first employee message of each held-out conversation. Whether the docs answer it
    is not known (``gold`` None), so gold source and abstention do not apply to them."""
    questions = []
    for number, record in enumerate(records, start=1):
        first = next((m for m in record["messages"] if m.get("role") == "user"), None)
        text = str((first or {}).get("content") or "").strip()
        if text:
            questions.append(Question(origin, number, text, None))
    return questions


def answers_before_after(
    base: str,
    adapter: Path,
    questions: list[Question],
    out: Path,
    *,
    log: Callable[[str], None],
    k: int = 4,
    max_tokens: int = 256,
    timeout: float = 180.0,
    url: str | None = None,
    adapter_name: str = ADAPTER_NAME,
) -> dict[str, dict]:
    """``{"before": summary, "after": summary}``; each run's answers, summary, table and plot
    go to ``out/before`` and ``out/after`` (compare them with `eval-answers --compare`).
    ``url``: a server already serving ``base`` and the adapter as ``adapter_name``, instead
    of starting one."""
    from contextlib import nullcontext

    embedder = ev.LazyEmbedder(lambda: SentenceTransformerEmbedder(am.EMBEDDER_MODEL))
    support = am.EmbedderSupport(embedder)
    runs: dict[str, dict] = {}
    server = (
        nullcontext(url)
        if url
        else ev.started_server(base, log, adapters={adapter_name: Path(adapter)})
    )
    with server as url:
        asker = ev.Asker(url, None, k, max_tokens, timeout)
        texts = ev.SourceTexts(url, None, timeout)
        try:
            for label, model in (("before", asker.served_model()), ("after", adapter_name)):
                log(f"answers {label}: {len(questions)} questions to {model}")
                records = ev.run(questions, asker, model, texts, support, embedder, log)
                summary = am.summarize(records, support.method)
                summary.update(model=model, server=url, k=k)
                write_run(Path(out) / label, records, summary, log)
                runs[label] = summary
        finally:
            texts.close()
    return runs


def flat(runs: dict[str, dict]) -> dict:
    """``answers_METRIC_before`` / ``_after`` for the command's one-line JSON result."""
    return {
        f"answers_{metric}_{label}": runs[label].get(metric)
        for metric in REPORTED
        for label in ("before", "after")
    }
