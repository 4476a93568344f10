"""``assistant eval-answers``: how good the served answers are, through the public API.

assistant eval-answers --questions Q.jsonl [--questions Q2.jsonl] [--url URL | --model M] [--json]
assistant eval-answers --compare before/summary.json after/summary.json
"""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from pathlib import Path

import typer

from assistant.cli.common import JsonOpt, echo_err
from assistant.errors import UserError
from assistant.evaluation import harness as ev
from assistant.evaluation import metrics as am
from assistant.evaluation.report import compare as compare_runs
from assistant.evaluation.report import (
    compare_table,
    failures,
    read_summary,
    table,
    write_run,
)
from retrieval.embeddings import SentenceTransformerEmbedder

DEFAULT_URL = "http://127.0.0.1:8000"  # the default of `assistant serve`
THRESHOLDS = {
    "support_cosine": am.SUPPORT_COSINE,
    "support_overlap": am.SUPPORT_OVERLAP,
    "relevant_cosine": am.RELEVANT_COSINE,
}


QuestionsOpt = typer.Option(
    [],
    "--questions",
    help='JSONL: {"question": ..., "gold": [file names]}; "gold": [] marks a question '
    "the docs do not answer (data/eval/off-topic.jsonl). Repeat to ask several files.",
)
ModelOpt = typer.Option(
    None,
    help="Instead of --url: start `assistant serve --model M` on a free port for the "
    "run and stop it after.",
)
ServedModelOpt = typer.Option(
    None,
    "--served-model",
    help="Model or adapter name to ask [the first one /v1/models lists: the base model].",
)
ApiKeyOpt = typer.Option(
    None, envvar="ASSISTANT_API_KEY", help="Key for the server's /v1 routes, if it wants one."
)
JudgeUrlOpt = typer.Option(
    None,
    help="OpenAI-compatible server of a judge model: it then decides, sentence by "
    "source, whether a source supports a sentence (yes/no), instead of the embedder.",
)
JudgeApiKeyOpt = typer.Option(None, envvar="ASSISTANT_JUDGE_API_KEY", help="Key for --judge-url.")
OutOpt = typer.Option(
    None, help="Folder for answers.jsonl, summary.json, summary.md and summary.png."
)
CompareOpt = typer.Option(
    None,
    "--compare",
    metavar="A B",
    help="Show two earlier runs (summary.json files or --out folders) side by side with "
    "B - A, e.g. base model against adapter; asks nothing.",
)


def eval_answers(
    questions: list[Path] = QuestionsOpt,
    url: str | None = typer.Option(None, help=f"Running server to ask [{DEFAULT_URL}]."),
    model: str | None = ModelOpt,
    served_model: str | None = ServedModelOpt,
    api_key: str | None = ApiKeyOpt,
    k: int = typer.Option(4, min=1, max=50, help="Passages retrieved per question."),
    max_tokens: int = typer.Option(256, min=1, help="Most tokens per answer."),
    timeout: float = typer.Option(180.0, min=1, help="Seconds to wait for one answer."),
    judge_url: str | None = JudgeUrlOpt,
    judge_model: str | None = typer.Option(None, help="The judge model's name at --judge-url."),
    judge_api_key: str | None = JudgeApiKeyOpt,
    out: Path | None = OutOpt,
    compare: tuple[Path, Path] | None = CompareOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Measure answers: citations, support by the sources, relevance, abstention, latency.

    Asks every question once through the server's OpenAI API (the openai client, retrieval
    on, temperature 0) and scores each answer against the sources it came with (shares of
    answers, 0 to 1; n/a where a metric does not apply):

    \b
    gold_source_cited   the answer cites [n] a source whose file is a gold file
    faithfulness        share of its sentences that some returned source supports
    citation_validity   share of its [n] naming a returned source that supports the
                        sentence (0 for grounded claims with no citation at all)
    answer_relevance    the answer is close to its question (declining ones n/a)
    abstention_correct  "gold": [] questions: the server said grounded false and the
                        answer says it does not know; the others: it answered
    empty_answers       answers that state nothing ("[1] [2]", "Yes."): no gold or
                        citation credit, and they do not count as answering

    Support is MiniLM cosine plus word overlap (method embedder+overlap), or with --judge-url
    a yes/no from that model (judge:MODEL). Broken question lines are skipped with their
    line numbers; a question the server fails is reported and the run goes on.
    """
    if compare:
        _compare(*compare, as_json)
        return
    if not questions:
        raise UserError("--questions is required (or --compare A B)")
    if url and model:
        raise UserError("give --url (a running server) or --model (one started for the run)")
    if bool(judge_url) != bool(judge_model):
        raise UserError("--judge-url and --judge-model go together")
    asked, problems = _questions(questions)
    embedder = ev.LazyEmbedder(lambda: SentenceTransformerEmbedder(am.EMBEDDER_MODEL))
    server = ev.started_server(model, echo_err) if model else nullcontext(url or DEFAULT_URL)
    with server as base:
        asker = ev.Asker(base, api_key, k, max_tokens, timeout)
        name = served_model or _served_model(asker, ev.describe)
        if judge_url:
            same = judge_url.rstrip("/") == base.rstrip("/")
            ask = ev.judge(judge_url, judge_model, judge_api_key, timeout, same)
            support = am.JudgeSupport(ask, judge_model)
        else:
            support = am.EmbedderSupport(embedder)
        texts = ev.SourceTexts(base, api_key, timeout)
        try:
            progress = (lambda _: None) if as_json else echo_err
            records = ev.run(asked, asker, name, texts, support, embedder, progress)
        finally:
            texts.close()
    summary = am.summarize(records, support.method)
    summary.update(
        model=name,
        server=f"assistant serve --model {model}" if model else base,
        questions=[str(q) for q in questions],
        skipped_lines=len(problems),
        k=k,
    )
    if not judge_url:
        summary["thresholds"] = dict(THRESHOLDS)
    _report(records, summary, out, as_json, base)


def _report(records: list, summary: dict, out: Path | None, as_json: bool, base: str) -> None:
    """Write the run (with --out), print failures and the summary; exit 1 when the server
    answered nothing."""
    if out is not None:
        write_run(out, records, summary, echo_err)
    for line in failures(records):
        echo_err(line)
    if as_json:
        print(json.dumps(summary))
    else:
        typer.echo(table(summary))
    if records and summary["answered"] == 0:
        echo_err(f"error: no question was answered; is the server up at {base}?")
        sys.exit(1)


def _questions(paths: list[Path]) -> tuple[list[ev.Question], list[str]]:
    """The questions of every file, and the broken lines (reported here)."""
    asked, problems = [], []
    for path in paths:
        found, broken = ev.load_questions(path)
        asked += found
        problems += broken
    for problem in problems:
        echo_err(problem)
    if not asked:
        raise UserError("no questions to ask in " + ", ".join(map(str, paths)))
    return asked, problems


def _served_model(asker, describe) -> str:
    try:
        return asker.served_model()
    except Exception as exc:  # down or refusing: every question will say so in turn
        echo_err(f"cannot list the server's models ({describe(exc)})")
        return "unknown"


def _compare(a: Path, b: Path, as_json: bool) -> None:
    first, second = read_summary(a), read_summary(b)
    rows = compare_runs(first, second)
    if as_json:
        print(json.dumps({"a": str(a), "b": str(b), "metrics": rows}))
    else:
        typer.echo(compare_table(rows, str(a), str(b), first, second))
