"""Transcripts (and rated answers) -> prepared data -> LoRA adapter, as one call.

What ``assistant finetune`` runs: preparation (``finetune.prepare``: roles, PII, duplicates,
the split by conversation), the held-out set, and training with eval loss before and after
(``finetune.train``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from finetune.prepare import prepare, read_prepared
from finetune.train import TrainConfig, train_lora
from finetune.transcripts import Conversation


@dataclass
class FinetuneRun:
    result: dict  # train_lora's report, without its "config"
    pii: dict  # placeholders written, by kind
    eval_records: list[dict]  # the held-out conversations it was measured on


def finetune_adapter(
    base: str,
    output: Path,
    config: TrainConfig,
    *,
    data: Path | None = None,
    eval_data: Path | None = None,
    extra: Sequence[Conversation] = (),
    eval_fraction: float = 0.1,
    merge: bool = False,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> FinetuneRun:
    """Prepare ``data`` (plus ``extra`` conversations, e.g. the page's rated answers) under
    ``output/prepared``, and train a LoRA adapter of ``base`` into ``output``. The held-out
    share of ``data`` is the eval set, unless ``eval_data`` (prepared whole under
    ``output/prepared-eval``) is given."""
    prepared = output / "prepared"
    report = prepare(data, prepared, extra=list(extra), eval_fraction=eval_fraction, log=log)
    log(f"prepared: {report.summary()}")
    eval_records = read_prepared(prepared / "eval.jsonl")
    if eval_data is not None:
        held = prepare(eval_data, output / "prepared-eval", eval_fraction=0.0, log=log)
        log(f"eval set: {held.train} conversations from {eval_data}")
        eval_records = read_prepared(output / "prepared-eval" / "train.jsonl")
    result = train_lora(
        base,
        read_prepared(prepared / "train.jsonl"),
        eval_records,
        output,
        config,
        merge=merge,
        resume=resume,
        progress=progress,
        log=log,
    )
    result.pop("config")
    return FinetuneRun(result, report.pii, eval_records)
