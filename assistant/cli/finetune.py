"""``assistant finetune``: transcripts -> scrubbed training set -> LoRA adapter, with proof.

assistant finetune --data data/transcripts --base MODEL --output adapters/it [--json]
assistant finetune prepare --data data/transcripts --output prepared/
"""

from __future__ import annotations

from pathlib import Path

import typer

from assistant.cli.common import ConfigOpt, JsonOpt, echo_err, emit, load
from assistant.errors import UserError
from assistant.knowledge.factories import make_embedder

finetune_app = typer.Typer(
    no_args_is_help=False,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EvalFractionOpt = typer.Option(
    0.1, min=0.0, max=0.9, help="Share of conversations held out for evaluation."
)


@finetune_app.callback(invoke_without_command=True)
def finetune(
    ctx: typer.Context,
    data: Path | None = typer.Option(
        None, help="Transcripts: a file or folder (JSONL chats, CSV tickets, text logs)."
    ),
    base: str | None = typer.Option(None, help="Base model: folder or hub id (a chat model)."),
    output: Path | None = typer.Option(None, help="Folder for the LoRA adapter."),
    eval_data: Path | None = typer.Option(
        None,
        "--eval",
        help="Held-out conversations to measure on (any transcript format); default: the "
        "held-out share of --data.",
    ),
    from_feedback: Path | None = typer.Option(
        None,
        "--from-feedback",
        help="Also train on the page's rated answers in this feedback store (SQLite): liked "
        "answers as they are, disliked ones where someone wrote a correction.",
    ),
    train_config: Path | None = typer.Option(
        None, "--train-config", help="YAML file of training settings (see README)."
    ),
    max_steps: int | None = typer.Option(None, min=1, help="Stop after this many steps."),
    epochs: float | None = typer.Option(None, min=0.01, help="Passes over the data [1]."),
    learning_rate: float | None = typer.Option(None, help="Peak learning rate [2e-4]."),
    lora_r: int | None = typer.Option(None, min=1, help="LoRA rank [16]."),
    batch_size: int | None = typer.Option(None, min=1, help="Conversations per step [4]."),
    max_length: int | None = typer.Option(None, min=32, help="Tokens per conversation [1024]."),
    gradient_checkpointing: bool | None = typer.Option(
        None,
        "--gradient-checkpointing/--no-gradient-checkpointing",
        help="Trade compute for memory.",
    ),
    qlora: bool | None = typer.Option(
        None, "--qlora/--no-qlora", help="4-bit base weights (bitsandbytes; GPU only)."
    ),
    merge: bool = typer.Option(
        False, "--merge", help="Also write the base model with the adapter merged (output/merged)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the newest checkpoint in output/checkpoints."
    ),
    eval_fraction: float = EvalFractionOpt,
    eval_answers: bool = typer.Option(
        False,
        "--eval-answers",
        help="Also judge answers, not only loss: serve the base model and the new adapter "
        "side by side (vLLM, retrieval on) and run the eval-answers harness on the first "
        "question of each held-out conversation with both (output/answer-eval/before|after).",
    ),
    eval_questions: Path | None = typer.Option(
        None,
        "--eval-questions",
        help='With --eval-answers: ask these questions instead (JSONL {"question", "gold"}, '
        "as eval-answers reads them), so gold source and abstention are measured too.",
    ),
    answer_max_tokens: int = typer.Option(
        256, min=1, help="With --eval-answers: most tokens per answer."
    ),
    as_json: bool = JsonOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Adapt a base model to help-desk transcripts with LoRA; report eval loss before/after.

    Prepares the data first (roles mapped, PII scrubbed, duplicates dropped, split by
    conversation; see `assistant finetune prepare`), trains a LoRA adapter with TRL's
    SFTTrainer on assistant turns only, and measures loss and perplexity on the held-out
    conversations before and after. Serve the result with
    `assistant serve --adapter NAME=OUTPUT`.
    """
    if ctx.invoked_subcommand is not None:
        return
    if base is None or output is None or (data is None and from_feedback is None):
        raise UserError("finetune needs --base, --output and --data (or --from-feedback)")
    load(config)  # a bad settings file fails here, before minutes of work
    asked = []
    if eval_questions is not None:
        if not eval_answers:
            raise UserError("--eval-questions goes with --eval-answers")
        from assistant.evaluation.harness import load_questions

        asked, problems = load_questions(eval_questions)
        for problem in problems:
            echo_err(problem)
        if not asked:
            raise UserError(f"no questions to ask in {eval_questions}")
    from assistant.chat.feedback_store import FeedbackStore
    from finetune.prepare import prepare, read_prepared
    from finetune.train import TrainConfig, train_lora
    from finetune.transcripts import Conversation

    log = (lambda line: None) if as_json else echo_err
    extra = []
    if from_feedback is not None:
        if not from_feedback.is_file():
            raise UserError(f"feedback store '{from_feedback}' does not exist")
        records = FeedbackStore(from_feedback).training_conversations()
        extra = [Conversation(r["id"], r["messages"], str(from_feedback)) for r in records]
        log(f"{len(extra)} conversations from rated answers in {from_feedback}")
    prepared = output / "prepared"
    report = prepare(data, prepared, extra=extra, eval_fraction=eval_fraction, log=log)
    log(f"prepared: {report.summary()}")
    eval_records = read_prepared(prepared / "eval.jsonl")
    if eval_data is not None:
        held = prepare(eval_data, output / "prepared-eval", eval_fraction=0.0, log=log)
        log(f"eval set: {held.train} conversations from {eval_data}")
        eval_records = read_prepared(output / "prepared-eval" / "train.jsonl")
    settings = TrainConfig.from_yaml(
        train_config,
        max_steps=max_steps,
        epochs=epochs,
        learning_rate=learning_rate,
        lora_r=lora_r,
        batch_size=batch_size,
        max_length=max_length,
        gradient_checkpointing=gradient_checkpointing,
        qlora=qlora,
    )
    result = train_lora(
        base,
        read_prepared(prepared / "train.jsonl"),
        eval_records,
        output,
        settings,
        merge=merge,
        resume=resume,
        progress=not as_json,
        log=log,
    )
    result.pop("config")
    answers = {}
    if eval_answers:
        from assistant.evaluation.finetune_answers import (
            answers_before_after,
            flat,
            heldout_questions,
        )

        if not asked:
            asked = heldout_questions(eval_records, "held-out conversations")
        if not asked:
            raise UserError("--eval-answers: no held-out conversation to ask about")
        runs = answers_before_after(
            base, output, asked, output / "answer-eval", log=log, max_tokens=answer_max_tokens
        )
        answers = flat(runs)
    if not as_json:
        _side_by_side(result)
        if answers:
            from assistant.evaluation.report import compare, compare_table

            before, after = runs["before"], runs["after"]
            typer.echo(compare_table(compare(before, after), "before", "after", before, after))
    emit(
        {k: v for k, v in result.items() if not isinstance(v, dict)}
        | answers
        | {"pii": report.pii},
        as_json,
    )


def _side_by_side(result: dict) -> None:
    typer.echo("")
    typer.echo(f"{'':<14}{'before':>10}{'after':>10}")
    for name, key in (("eval loss", "eval_loss"), ("perplexity", "eval_perplexity")):
        before, after = result.get(f"{key}_before"), result.get(f"{key}_after")
        typer.echo(f"{name:<14}{before if before is not None else '-':>10}"
                   f"{after if after is not None else '-':>10}")  # fmt: skip
    typer.echo("")


@finetune_app.command("prepare")
def prepare_command(
    data: Path = typer.Option(..., help="Transcripts: a file or folder."),
    output: Path = typer.Option(..., help="Folder for train.jsonl, eval.jsonl, report.json."),
    eval_fraction: float = EvalFractionOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Read transcripts, scrub PII, drop empty and near-duplicate ones, split train/eval.

    Roles are mapped to user/assistant (agent, technician, support -> assistant; customer,
    employee, caller -> user). Emails, phones, IP and MAC addresses, secrets in URLs,
    passwords and keys, employee ids and recognisable names become typed placeholders
    (<EMAIL>, <PHONE>, ...). Bad lines are reported with file and line and skipped.
    The split is by conversation and deterministic.
    """
    from finetune.prepare import prepare

    report = prepare(
        data,
        output,
        eval_fraction=eval_fraction,
        log=echo_err,
    )
    emit(report.summary(), as_json)


@finetune_app.command("embeddings")
def embeddings_command(
    docs: Path = typer.Option(..., help="Docs folder: the passages the model must find."),
    output: Path = typer.Option(..., help="Folder for the adapted sentence-transformers model."),
    transcripts: Path = typer.Option(
        Path("data/transcripts"),
        help="Help-desk transcripts: employee questions paired with the doc passage the "
        "agent's answer matches.",
    ),
    eval_questions: Path | None = typer.Option(
        None,
        "--eval",
        help='Also judge on these questions (JSONL {"question", "gold": [file names]}), '
        "as eval-retrieval does.",
    ),
    base: str | None = typer.Option(None, help="Model to adapt [the embedding_model setting]."),
    min_score: float = typer.Option(
        0.5, help="Least cosine between an agent's answer and a passage for a training pair."
    ),
    epochs: float = typer.Option(1.0, min=0.01, help="Passes over the pairs."),
    learning_rate: float = typer.Option(2e-5, help="Peak learning rate."),
    batch_size: int = typer.Option(16, min=2, help="Pairs per step (in-batch negatives)."),
    eval_fraction: float = typer.Option(
        0.3, min=0.05, max=0.9, help="Share of conversations held out to judge the new model."
    ),
    force: bool = typer.Option(
        False, "--force", help="Write the new model even where it does not win (experiments)."
    ),
    as_json: bool = JsonOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Adapt the embedding model to the company's docs and questions (experimental).

    Pairs each employee question in the transcripts with the doc passage that the agent's
    answer matches best, adds a hard negative (another document's passage the current model
    ranks high), and trains with MultipleNegativesRankingLoss. The held-out conversations'
    questions (and --eval questions) are searched over all passages before and after: the
    new model is written to --output only if its MRR is higher and its recall@5 no lower;
    otherwise nothing is written and the report says so. Use it with
    `assistant index --full --embedding-model OUTPUT` (a new model means a full reindex).
    """
    import shutil
    import tempfile
    import time

    import numpy as np

    settings = load(config, embedding_model=base)
    from finetune.pii import Scrubber
    from finetune.transcripts import normalize_role, read_transcripts
    from retrieval.adapt import (
        Probe,
        TrainConfig,
        collect_passages,
        hard_negatives,
        mine_pairs,
        score,
        split,
        train,
    )
    from retrieval.evaluation import load_questions

    for path, what in ((docs, "--docs"), (transcripts, "--transcripts")):
        if not path.exists():
            raise UserError(f"{what} '{path}' does not exist")
    if output.exists() and any(output.iterdir()):
        raise UserError(f"--output '{output}' is not empty")
    log = (lambda line: None) if as_json else echo_err
    started = time.perf_counter()
    embedder = make_embedder(settings)
    passages = collect_passages(
        [docs],
        embedder.count_tokens,
        settings.chunk_tokens,
        settings.chunk_overlap_tokens,
        settings.chunk_headers,
    )
    if not passages:
        raise UserError(f"no readable documents in '{docs}'")
    log(f"{len(passages)} passages from {docs}; embedding them with {embedder.name}")

    def vectors(texts: list[str], model=embedder, query: bool = False) -> np.ndarray:
        encode = model.embed_query if query else model.embed
        return np.asarray(encode(texts), dtype=np.float32).reshape(len(texts), -1)

    passage_vectors = vectors([p.text for p in passages])
    scrubber = Scrubber()
    conversations = []
    for conversation in read_transcripts(transcripts):
        turns = [
            (normalize_role(m.get("role", "")), m.get("content", "")) for m in conversation.messages
        ]
        questions = [t for role, t in turns if role == "user" and t.strip()]
        answers = [t for role, t in turns if role == "assistant" and t.strip()]
        if questions and answers:
            conversations.append(
                (conversation.id, scrubber.scrub(questions[0]), scrubber.scrub(" ".join(answers)))
            )
    pairs = mine_pairs(conversations, passages, passage_vectors, vectors, min_score)
    train_pairs, held_pairs = split(pairs, eval_fraction)
    log(
        f"{len(pairs)} pairs from {len(conversations)} conversations "
        f"({len(train_pairs)} to train, {len(held_pairs)} held out)"
    )
    probes = [Probe(p.query, frozenset({passages[p.positive].source})) for p in held_pairs]
    if eval_questions is not None:
        probes += [Probe(q.text, q.gold) for q in load_questions(eval_questions)]
    if not probes:
        raise UserError("nothing to judge the new model on: no held-out pairs and no --eval")

    def judge(model) -> dict:
        return score(
            vectors([p.query for p in probes], model, query=True),
            passage_vectors if model is embedder else vectors([p.text for p in passages], model),
            passages,
            probes,
        )

    before = judge(embedder)
    negatives = hard_negatives(
        vectors([p.query for p in train_pairs], query=True), passage_vectors, passages, train_pairs
    )
    triplets = [
        (p.query, passages[p.positive].text, passages[n].text)
        for p, n in zip(train_pairs, negatives, strict=True)
    ]
    with tempfile.TemporaryDirectory(prefix="embeddings-") as tmp:
        trained = Path(tmp) / "model"
        log(f"training on {len(triplets)} (question, passage, hard negative) triplets")
        train(
            settings.embedding_model,
            triplets,
            trained,
            TrainConfig(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size),
            progress=not as_json,
        )
        from retrieval.embeddings import SentenceTransformerEmbedder

        after = judge(
            SentenceTransformerEmbedder(
                str(trained),
                query_prefix=embedder.query_prefix,
                passage_prefix=embedder.passage_prefix,
            )
        )
        wins = after["mrr"] > before["mrr"] and after["recall@5"] >= before["recall@5"]
        kept = wins or force
        if kept:
            shutil.copytree(trained, output, dirs_exist_ok=True)
    reason = (
        "MRR higher and recall@5 no lower on held-out questions"
        if wins
        else "it does not win on held-out questions (MRR must rise, recall@5 must not fall)"
    )
    result = {
        "base": embedder.name,
        "passages": len(passages),
        "conversations": len(conversations),
        "pairs": len(pairs),
        "train_pairs": len(train_pairs),
        "probes": len(probes),
        "mrr_before": before["mrr"],
        "mrr_after": after["mrr"],
        "recall@1_before": before["recall@1"],
        "recall@1_after": after["recall@1"],
        "recall@5_before": before["recall@5"],
        "recall@5_after": after["recall@5"],
        "wins": wins,
        "kept": kept,
        "output": str(output) if kept else None,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if kept:
        log(f"kept the adapted model in {output}: {reason}")
        log(f"use it: assistant index --full --embedding-model {output}")
    else:
        log(f"kept {embedder.name}; nothing written: {reason}")
    emit(result, as_json)
