"""``assistant finetune``: transcripts -> scrubbed training set -> LoRA adapter, with proof.

assistant finetune --data data/transcripts --base MODEL --output adapters/it [--json]
assistant finetune prepare --data data/transcripts --output prepared/
"""

from __future__ import annotations

from pathlib import Path

import typer

from assistant.chat.feedback_store import FeedbackStore
from assistant.cli.common import ConfigOpt, JsonOpt, echo_err, emit, load
from assistant.cli.embeddings import embeddings_command
from assistant.errors import UserError
from assistant.evaluation.finetune_answers import answers_before_after, flat, heldout_questions
from assistant.evaluation.harness import load_questions
from assistant.evaluation.report import compare, compare_table
from finetune.pipeline import finetune_adapter
from finetune.prepare import prepare
from finetune.train import TrainConfig
from finetune.transcripts import Conversation

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


finetune_app.command("embeddings")(embeddings_command)
