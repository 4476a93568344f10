"""``assistant finetune``: transcripts -> scrubbed training set -> LoRA adapter, with proof.

assistant finetune --data data/transcripts --base MODEL --output adapters/it [--json]
assistant finetune prepare --data data/transcripts --output prepared/
"""

from __future__ import annotations

from pathlib import Path

import typer

from assistant.cli_common import ConfigOpt, JsonOpt, echo_err, emit, load
from assistant.errors import UserError

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
    from finetune.feedback import FeedbackStore
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
    if not as_json:
        _side_by_side(result)
    emit(
        {k: v for k, v in result.items() if not isinstance(v, dict)} | {"pii": report.pii}, as_json
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
