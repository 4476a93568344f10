"""``assistant report``: a period's analytics as files, for a weekly e-mail.

assistant report --from 2025-03-03 --to 2025-03-09 [--out DIR] [--json]
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from assistant.analytics.export import write_report
from assistant.analytics.service import make_analytics, parse_period
from assistant.cli.common import ConfigOpt, JsonOpt, echo_err, load
from assistant.errors import APIError, UserError
from assistant.knowledge.factories import make_embedder, make_retriever, open_store, store_lock
from retrieval.embeddings import canonical_name
from retrieval.errors import RetrievalError

IN_USE = (
    "note: the docs index is in use by a running server, so the report leaves out the "
    "nearest document of each content gap (GET /v1/admin/analytics on the server has them)"
)


class _Lazy:
    """The embedder or index, built at its first use: a period without content gaps, or
    whose questions the server has embedded already, never loads the model."""

    def __init__(self, build, name: str = "") -> None:
        self._build = build
        self.name = name  # the embedder's, as the server's names it (the cache's key)
        self._real = None

    def real(self):
        if self._real is None:
            self._real = self._build()
        return self._real

    def embed(self, texts: list[str]) -> list[list[float]]:
        return self.real().embed(texts)

    def search(self, query: str, k: int = 4, collection=None, groups=None) -> list:
        return self.real().search(query, k=k, collection=collection, groups=groups)


def _index(settings, embedder):
    """The docs index, read-only, unless a server holds it (then ``None``, and the lock
    to release when done)."""
    if not settings.chroma_url and not settings.index_dir.is_dir():
        return None, None
    lock = store_lock(settings, "assistant report")
    if lock is not None:
        try:
            lock.acquire()
        except RetrievalError:
            echo_err(IN_USE)
            return None, None

    def build():
        return make_retriever(settings, open_store(settings), embedder.real())

    return _Lazy(build), lock


def report(
    first: str | None = typer.Option(
        None, "--from", help="First day, YYYY-MM-DD [six days before --to]."
    ),
    last: str | None = typer.Option(None, "--to", help="Last day, included [today]."),
    out: Path | None = typer.Option(None, help="Folder for the files [report-FROM-TO]."),
    clusters: int = typer.Option(20, min=1, max=500, help="Content-gap clusters listed."),
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Write the analytics of the days --from to --to (in analytics_timezone) as files.

    Reads the state in HOME (answers.sqlite, feedback.sqlite, escalations.sqlite) directly:
    no server needs to run. The same numbers as GET /v1/admin/analytics:

    \b
    report.json            everything below, as the API returns it
    summary.csv            questions, grounded share, thumbs up/down, escalations,
                           deflection rate (conversations that ended without a ticket)
    daily.csv              the same per day
    top_sources.csv        documents cited by most answers
    content_gaps.csv       questions not grounded, disliked or escalated, clustered:
                           size, examples, nearest document, write or improve
    *.png                  one plot each (with matplotlib installed)

    Questions are PII-scrubbed. With --json the last line is the report as one JSON object,
    with "out" and "files".
    """
    settings = load(config)

    try:
        parse_period(first, last, settings.analytics_timezone)  # a bad range fails first
    except APIError as exc:
        raise UserError(exc.message) from None
    if not settings.home.is_dir():
        raise UserError(f"no assistant state in '{settings.home}' (set ASSISTANT_HOME)")

    embedder = _Lazy(lambda: make_embedder(settings), canonical_name(settings.embedding_model))
    index, lock = _index(settings, embedder)
    try:
        service = make_analytics(settings, embedder=embedder, index=index)
        try:
            result = service.report(first, last, clusters)
        except APIError as exc:
            raise UserError(exc.message) from None
    finally:
        if lock is not None:
            lock.release()
    folder = out or Path(f"report-{result['from']}-{result['to']}")
    files = write_report(result, folder, log=echo_err)
    if as_json:
        print(json.dumps({**result, "out": str(folder), "files": [str(f) for f in files]},
                         ensure_ascii=False))  # fmt: skip
        return
    _print_summary(result)
    typer.echo(f"\nwrote {len(files)} files to {folder}")


def percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.0%}"


def _print_summary(result: dict) -> None:
    totals = result["totals"]
    typer.echo(f"{result['from']} to {result['to']} ({result['timezone']})")
    typer.echo(f"  questions        {totals['questions']} in {totals['conversations']} "
               f"conversations, {percent(totals['grounded_share'])} grounded")  # fmt: skip
    typer.echo(f"  ratings          {totals['liked']} up, {totals['disliked']} down")
    typer.echo(f"  escalations      {totals['escalations']} ({totals['escalations_failed']} "
               f"failed); deflection {percent(totals['deflection_rate'])}")  # fmt: skip
    gaps = result["content_gaps"]
    typer.echo(f"  content gaps     {gaps['questions']} questions in {gaps['clusters_total']} "
               "clusters")  # fmt: skip
    for cluster in gaps["clusters"][:10]:
        near = cluster["nearest_document"]
        where = f"{cluster['action']} {near['source']}" if near else cluster["action"]
        where = where or "(nearest document unknown)"
        typer.echo(f"    {cluster['size']:>5}  {cluster['representative'][:70]}  -> {where}")
