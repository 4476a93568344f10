"""``assistant demo-model``: copy the shipped demo model, or train it from the sample data.

The training data's composition lives here: the docs indexed as the server indexes them
(``assistant.knowledge.index``) and each question grounded as the gateway grounds it
(``assistant.chat.grounding.Grounder``); ``finetune.demo_training`` makes the examples
from plain callables.
"""

from __future__ import annotations

import json
import random
import tempfile
from dataclasses import replace
from pathlib import Path

import typer

from assistant.chat.grounding import Grounder
from assistant.cli.common import ConfigOpt, JsonOpt, echo_err, emit, load
from assistant.errors import UserError
from assistant.knowledge.factories import index_into, make_embedder, make_retriever
from finetune.corpus import demo_corpus
from finetune.demo_config import SIZES
from finetune.demo_model import MARKER, SHIPPED, build_demo_model, is_built
from finetune.demo_shipped import install_shipped, write_checksums
from finetune.demo_training import (
    TrainingSet,
    build_training_set,
    doc_questions,
    transcript_questions,
)
from retrieval.manifest import get_all
from retrieval.progress import ConsoleObserver
from retrieval.store import open_client


def demo_model(
    output: Path = typer.Option(Path(".assistant/demo-model"), help="Folder to write."),
    rebuild: bool = typer.Option(
        False,
        "--rebuild",
        help="Train it here instead of copying the shipped weights (about 30 minutes on "
        "2 CPU cores; the same recipe as the shipped build).",
    ),
    transcripts: Path = typer.Option(Path("data/transcripts"), help="Training conversations."),
    docs: Path = typer.Option(Path("data/docs"), help="Training documents."),
    size: str = typer.Option(
        "grounded",
        help="grounded (the demo: shipped, or --rebuild, about 30 minutes), small (the language "
        "model alone, minutes, does not cite) or tiny (tests, seconds).",
    ),
    max_steps: int | None = typer.Option(
        None, help="Language-model steps [grounded 0, small 450]."
    ),
    sft_steps: int | None = typer.Option(
        None,
        help="Steps on the grounded task (sources + question -> cited answer) [grounded 800].",
    ),
    seed: int = typer.Option(0, help="Random seed."),
    force: bool = typer.Option(False, "--force", help="Replace a model already in --output."),
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Put the offline demo model in --output: a small Llama model that answers from the
    numbered sources the gateway gives it, quoting the opening sentence of source [1] (the
    passage the search ranked first) and citing it as [1], or, with no sources, saying the
    documentation does not cover the question.

    By default the weights shipped in the package are copied (checked against their
    SHA256SUMS). --rebuild trains it from data/docs and data/transcripts with the same
    recipe: an index of the docs as the server builds it (embedding model and retrieval
    settings from --config / ASSISTANT_*), questions made from headings, sentences and the
    transcripts, each grounded as the gateway would, then training. Never from data/eval.
    A demo, not an assistant: it can only quote.
    """
    if size not in SIZES:
        raise UserError(f"--size must be one of {', '.join(SIZES)}, not '{size}'")
    if is_built(output) and not (force or rebuild):
        report = json.loads((output / MARKER).read_text())
        typer.echo(f"demo model already built in {output} (use --force to replace it)", err=True)
        emit({"output": str(output), "built": False, **_flat(report)}, as_json)
        return
    custom = max_steps is not None or sft_steps is not None or seed != 0
    if size == "grounded" and not rebuild and not custom:
        if (SHIPPED / MARKER).is_file():
            report = install_shipped(output)
            echo_err(f"demo model copied to {output} (checksums verified)")
            emit({"output": str(output), "built": True, "shipped": True, **_flat(report)}, as_json)
            return
        echo_err(
            "no shipped demo model in this checkout: training the small one (minutes; it does "
            "not cite). `--rebuild` trains the grounded one (about 30 minutes)."
        )
        size = "small"
    recipe = SIZES[size]
    recipe = replace(
        recipe,
        seed=seed,
        max_steps=recipe.max_steps if max_steps is None else max_steps,
        sft_steps=recipe.sft_steps if sft_steps is None else sft_steps,
    )
    report = _train(output, recipe, transcripts, docs, config, progress=not as_json)
    emit({"output": str(output), "built": True, "shipped": False, **_flat(report)}, as_json)


def _train(output: Path, recipe, transcripts: Path, docs: Path, config, *, progress: bool) -> dict:
    """Build the model of ``recipe`` in ``output`` from the sample data, with its checksums."""
    conversations, documents = demo_corpus(transcripts, docs)
    grounded = []
    if recipe.sft_steps:
        settings = load(config)
        grounded = grounded_corpus(settings, docs, transcripts, seed=recipe.seed, log=echo_err)
        grounded = grounded.conversations
    report = build_demo_model(
        output,
        conversations,
        documents,
        recipe,
        grounded=grounded,
        progress=progress,
        log=echo_err,
    )
    write_checksums(output)
    return report


def _flat(report: dict) -> dict:
    return {k: v for k, v in report.items() if not isinstance(v, dict)}


def grounded_corpus(settings, docs, transcripts, *, seed: int = 0, log=print) -> TrainingSet:
    """Index ``docs`` in a scratch store with ``settings``' retrieval, and build the training
    set the way the gateway would ground each question."""
    conversations, _ = demo_corpus(Path(transcripts), Path(docs))
    embedder = make_embedder(settings)
    with tempfile.TemporaryDirectory(prefix="demo-train-") as scratch:
        client = open_client(Path(scratch))
        index_into(
            settings, client, embedder, [Path(docs)], observer=ConsoleObserver(log, bar=False)
        )
        stored = get_all(
            client.get_collection(settings.collection), include=["documents", "metadatas"]
        )
        chunks = [
            (m["source"], m.get("section", ""), text)
            for text, m in zip(stored["documents"], stored["metadatas"], strict=True)
        ]
        chunks.sort()
        retriever = make_retriever(settings, client, embedder)
        grounder = Grounder.from_settings(retriever, settings)
        rng = random.Random(seed)
        questions = doc_questions(chunks, rng) + transcript_questions(conversations)
        log(f"{len(questions)} questions from {len(chunks)} passages and the transcripts")
        result = build_training_set(
            lambda q: retriever.search(q, settings.retrieval_k),
            grounder.keep,
            grounder.prompts.apply,
            questions,
            seed=seed,
            log=log,
        )
    return result
