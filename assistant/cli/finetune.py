"""``assistant finetune``: transcripts -> scrubbed training set -> LoRA adapter, with proof.

assistant finetune --data data/transcripts --base MODEL --output adapters/it [--json]
assistant finetune prepare --data data/transcripts --output prepared/
"""

from __future__ import annotations

from pathlib import Path

import typer

from assistant.chat.feedback_store import FeedbackStore
from assistant.cli.common import ConfigOpt, JsonOpt, echo_err, emit, load, progress_bar
from assistant.errors import UserError
from assistant.evaluation.finetune_answers import answers_before_after, flat, heldout_questions
from assistant.evaluation.harness import asker, load_questions
from assistant.evaluation.report import compare, compare_table
from assistant.knowledge.factories import make_embedder
from finetune.pii import Scrubber
from finetune.pipeline import finetune_adapter
from finetune.prepare import prepare
from finetune.train import TrainConfig
from finetune.transcripts import Conversation, first_exchanges
from retrieval import adapt, question_writer

finetune_app = typer.Typer(
    no_args_is_help=False,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EvalFractionOpt = typer.Option(
    0.1, min=0.0, max=0.9, help="Share of conversations held out for evaluation."
)

EvalDataOpt = typer.Option(
    None,
    "--eval",
    help="Held-out conversations to measure on (any transcript format); default: the "
    "held-out share of --data.",
)
FromFeedbackOpt = typer.Option(
    None,
    "--from-feedback",
    help="Also train on the page's rated answers in this feedback store (SQLite): liked "
    "answers as they are, disliked ones where someone wrote a correction.",
)
EvalAnswersOpt = typer.Option(
    False,
    "--eval-answers",
    help="Also judge answers, not only loss: serve the base model and the new adapter "
    "side by side (vLLM, retrieval on) and run the eval-answers harness on the first "
    "question of each held-out conversation with both (output/answer-eval/before|after).",
)
EvalQuestionsOpt = typer.Option(
    None,
    "--eval-questions",
    help='With --eval-answers: ask these questions instead (JSONL {"question", "gold"}, '
    "as eval-answers reads them), so gold source and abstention are measured too.",
)

TrainConfigOpt = typer.Option(
    None, "--train-config", help="YAML file of training settings (see README)."
)
GradientCheckpointingOpt = typer.Option(
    None,
    "--gradient-checkpointing/--no-gradient-checkpointing",
    help="Trade compute for memory.",
)
QloraOpt = typer.Option(
    None, "--qlora/--no-qlora", help="4-bit base weights (bitsandbytes; GPU only)."
)
MergeOpt = typer.Option(
    False, "--merge", help="Also write the base model with the adapter merged (output/merged)."
)
ResumeOpt = typer.Option(
    False, "--resume", help="Continue from the newest checkpoint in output/checkpoints."
)
AnswerMaxTokensOpt = typer.Option(256, min=1, help="With --eval-answers: most tokens per answer.")


@finetune_app.callback(invoke_without_command=True)
def finetune(
    ctx: typer.Context,
    data: Path | None = typer.Option(
        None, help="Transcripts: a file or folder (JSONL chats, CSV tickets, text logs)."
    ),
    base: str | None = typer.Option(None, help="Base model: folder or hub id (a chat model)."),
    output: Path | None = typer.Option(None, help="Folder for the LoRA adapter."),
    eval_data: Path | None = EvalDataOpt,
    from_feedback: Path | None = FromFeedbackOpt,
    train_config: Path | None = TrainConfigOpt,
    max_steps: int | None = typer.Option(None, min=1, help="Stop after this many steps."),
    epochs: float | None = typer.Option(None, min=0.01, help="Passes over the data [1]."),
    learning_rate: float | None = typer.Option(None, help="Peak learning rate [2e-4]."),
    lora_r: int | None = typer.Option(None, min=1, help="LoRA rank [16]."),
    batch_size: int | None = typer.Option(None, min=1, help="Conversations per step [4]."),
    max_length: int | None = typer.Option(None, min=32, help="Tokens per conversation [1024]."),
    gradient_checkpointing: bool | None = GradientCheckpointingOpt,
    qlora: bool | None = QloraOpt,
    merge: bool = MergeOpt,
    resume: bool = ResumeOpt,
    eval_fraction: float = EvalFractionOpt,
    eval_answers: bool = EvalAnswersOpt,
    eval_questions: Path | None = EvalQuestionsOpt,
    answer_max_tokens: int = AnswerMaxTokensOpt,
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
    asked = _questions(eval_questions, eval_answers)
    log = (lambda line: None) if as_json else echo_err
    training = TrainConfig.from_yaml(
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
    run = finetune_adapter(
        base,
        output,
        training,
        data=data,
        eval_data=eval_data,
        extra=_rated_answers(from_feedback, log),
        eval_fraction=eval_fraction,
        merge=merge,
        resume=resume,
        progress=not as_json,
        log=log,
    )
    result = run.result
    answers, table = {}, ""
    if eval_answers:
        asked = asked or heldout_questions(run.eval_records, "held-out conversations")
        answers, table = _judge_answers(base, output, asked, answer_max_tokens, log)
    if not as_json:
        _side_by_side(result)
        if table:
            typer.echo(table)
    emit(
        {k: v for k, v in result.items() if not isinstance(v, dict)} | answers | {"pii": run.pii},
        as_json,
    )


def _questions(eval_questions: Path | None, eval_answers: bool) -> list:
    """The questions of --eval-questions (none without it)."""
    if eval_questions is None:
        return []
    if not eval_answers:
        raise UserError("--eval-questions goes with --eval-answers")
    asked, problems = load_questions(eval_questions)
    for problem in problems:
        echo_err(problem)
    if not asked:
        raise UserError(f"no questions to ask in {eval_questions}")
    return asked


def _judge_answers(base: str, output: Path, asked: list, max_tokens: int, log) -> tuple[dict, str]:
    """--eval-answers: the base model and the new adapter judged on the ``asked``
    questions; their numbers, flat, and the side-by-side table."""
    if not asked:
        raise UserError("--eval-answers: no held-out conversation to ask about")
    runs = answers_before_after(
        base, output, asked, output / "answer-eval", log=log, max_tokens=max_tokens
    )
    before, after = runs["before"], runs["after"]
    table = compare_table(compare(before, after), "before", "after", before, after)
    return flat(runs), table


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
    questions_url: str | None = typer.Option(
        None,
        help="OpenAI-compatible server of an instruct model (e.g. a running `assistant "
        "serve`) that writes, for each passage, the questions an employee would ask: "
        "training pairs where no transcript covers a document (GPL-style).",
    ),
    questions_model: str | None = typer.Option(
        None, help="The question writer's model name at --questions-url."
    ),
    questions_api_key: str | None = typer.Option(
        None, envvar="ASSISTANT_QUESTIONS_API_KEY", help="Key for --questions-url."
    ),
    per_passage: int = typer.Option(2, min=1, max=10, help="Questions asked per passage."),
    questions_limit: int | None = typer.Option(
        None, min=1, help="Passages to write questions for (a seeded sample) [all]."
    ),
    questions_cache: Path | None = typer.Option(
        None,
        help="JSONL file that keeps every reply of the question writer, so an interrupted "
        "run resumes and a rerun asks nothing again [OUTPUT.questions.jsonl].",
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

    With --questions-url, a served instruct model also writes questions for the passages
    (kept in --questions-cache); they are held out by document like the conversations.
    On a 2-core CPU the 0.5B model writes about one passage's questions every few seconds:
    use --questions-limit to try it on a sample first.
    """
    settings = load(config, embedding_model=base)
    if bool(questions_url) != bool(questions_model):
        raise UserError("--questions-url and --questions-model go together")
    if not docs.exists():
        raise UserError(f"--docs '{docs}' does not exist")
    if not transcripts.exists() and not questions_url:
        raise UserError(f"--transcripts '{transcripts}' does not exist")
    if output.exists() and any(output.iterdir()):
        raise UserError(f"--output '{output}' is not empty")
    log = (lambda line: None) if as_json else echo_err
    generate = None
    if questions_url:
        _reachable(questions_url, questions_api_key)
        client = asker(questions_url, questions_model, questions_api_key, 300.0, gateway=True,
                       max_tokens=48 * per_passage, temperature=0.7)  # fmt: skip

        def ask(prompt: str) -> str:
            try:
                return client(prompt)
            except Exception as exc:  # the client's errors: connection, HTTP status, timeout
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise UserError(
                    f"cannot ask {questions_model} at {questions_url} (--questions-url): {first}"
                ) from None

        cache = questions_cache or output.with_name(output.name + ".questions.jsonl")

        def generate(passages: list[str]) -> list[tuple[int, str]]:
            log(f"asking {questions_model} at {questions_url} for {per_passage} questions per "
                f"passage; replies kept in {cache}")  # fmt: skip
            with progress_bar(not as_json, "writing questions") as tick:
                return question_writer.write_questions(
                    passages, ask, per_passage=per_passage, limit=questions_limit,
                    cache=cache, progress=tick,
                )  # fmt: skip

    embedder = make_embedder(settings)
    conversations = []
    if transcripts.exists():
        conversations = first_exchanges(transcripts, Scrubber().scrub)
    else:
        log(f"no transcripts at {transcripts}: training on the written questions only")
    report = adapt.adapt_embedder(
        embedder,
        settings.embedding_model,
        docs,
        conversations,
        output,
        chunk_tokens=settings.chunk_tokens,
        chunk_overlap=settings.chunk_overlap_tokens,
        chunk_headers=settings.chunk_headers,
        eval_questions=eval_questions,
        min_score=min_score,
        eval_fraction=eval_fraction,
        config=adapt.TrainConfig(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size),
        force=force,
        progress=not as_json,
        log=log,
        generate=generate,
    )
    if report.kept:
        log(f"kept the adapted model in {output}: {report.reason}")
        log(f"use it: assistant index --full --embedding-model {output}")
    else:
        log(f"kept {embedder.name}; nothing written: {report.reason}")
    emit(report.summary(), as_json)


def _reachable(url: str, api_key: str | None) -> None:
    """Fail before the long embedding work when nothing answers at ``url``."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        httpx.get(url.rstrip("/") + "/v1/models", headers=headers, timeout=10).raise_for_status()
    except httpx.HTTPError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"no model server answers at {url} (--questions-url): {first}") from None


def _rated_answers(feedback: Path | None, log) -> list[Conversation]:
    """The page's rated answers in the feedback store, as training conversations."""
    if feedback is None:
        return []
    if not feedback.is_file():
        raise UserError(f"feedback store '{feedback}' does not exist")
    records = FeedbackStore(feedback).training_conversations()
    extra = [Conversation(r["id"], r["messages"], str(feedback)) for r in records]
    log(f"{len(extra)} conversations from rated answers in {feedback}")
    return extra
