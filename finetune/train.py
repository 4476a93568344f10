"""LoRA supervised fine-tuning on prepared conversations, with TRL's SFTTrainer.

- The model's own chat template renders each conversation; the loss covers assistant turns
  only, their end-of-turn token included (the model learns to stop). The mask comes from
  rendering each prefix of the conversation, so it works with any chat template, with or
  without ``{% generation %}`` marks.
- Eval loss and perplexity on assistant tokens of the held-out set, before and after.
- Checkpoints every ``save_steps``; ``resume`` continues from the newest one.
- The adapter folder is what ``assistant serve --adapter NAME=DIR`` serves through vLLM;
  ``merge`` also writes the base model with the adapter folded in.

Heavy imports (torch, transformers, peft, trl) happen inside functions.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from finetune.errors import FinetuneError


@dataclass
class TrainConfig:
    """Training settings; a YAML file can set any of them, CLI flags win."""

    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    learning_rate: float = 2e-4
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 1024
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    group_by_length: bool = True
    packing: bool = False
    gradient_checkpointing: bool = False
    qlora: bool = False  # 4-bit base weights (bitsandbytes, GPU only)
    bf16: bool | None = None  # None: on when a GPU supports it
    save_steps: int = 50
    logging_steps: int = 5
    seed: int = 0

    @classmethod
    def from_yaml(cls, path: Path | None, **overrides: Any) -> TrainConfig:
        data: dict[str, Any] = {}
        if path is not None:
            import yaml

            path = Path(path)
            if not path.is_file():
                raise FinetuneError(f"training config '{path}' does not exist")
            data = yaml.safe_load(path.read_text()) or {}
            if not isinstance(data, dict):
                raise FinetuneError(f"'{path}' must be a mapping of setting: value")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise FinetuneError(
                f"unknown training setting(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)


def tokenize_conversation(tokenizer, messages: list[dict], max_length: int) -> dict | None:
    """input_ids and labels (-100 outside assistant turns) for one conversation.

    Each assistant turn's span is found by rendering the conversation up to it (with the
    generation prompt) and up to its end; both must be prefixes of the full rendering.
    """
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(
            messages[:i], tokenize=False, add_generation_prompt=True
        )
        upto = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (full.startswith(upto) and upto.startswith(before)):
            raise FinetuneError(
                "the chat template does not render conversations prefix by prefix, so the "
                "assistant turns cannot be located for the loss mask"
            )
        # whitespace the template puts after the end-of-turn token is not the answer's
        spans.append((len(before), max(len(upto.rstrip()), len(before))))
    encoded = tokenizer(
        full, add_special_tokens=False, return_offsets_mapping=True, truncation=False
    )
    ids = encoded["input_ids"][:max_length]
    labels = [-100] * len(ids)
    for pos, (start, _) in enumerate(encoded["offset_mapping"][: len(ids)]):
        if any(lo <= start < hi for lo, hi in spans):
            labels[pos] = ids[pos]
    if all(label == -100 for label in labels):
        return None  # the assistant part was cut off by max_length
    return {"input_ids": ids, "labels": labels}


def tokenize_all(tokenizer, records: list[dict], max_length: int) -> list[dict]:
    out = []
    for record in records:
        example = tokenize_conversation(tokenizer, record["messages"], max_length)
        if example is not None:
            out.append(example)
    return out


def pad_batch(batch: list[dict]):
    """input_ids, labels (-100 on padding) and attention mask, right-padded to the longest."""
    import torch

    width = max(len(e["input_ids"]) for e in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e["input_ids"])
        ids[row, :n] = torch.tensor(e["input_ids"])
        labels[row, :n] = torch.tensor(e["labels"])
        mask[row, :n] = 1
    return ids, labels, mask


def eval_loss(model, examples: list[dict], batch_size: int = 8) -> dict:
    """Mean cross-entropy over assistant tokens, and its perplexity."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            ids, labels, mask = pad_batch(examples[start : start + batch_size])
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            logits = logits[:, :-1].float()
            target = labels[:, 1:].to(device)
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)),
                target.reshape(-1),
                ignore_index=-100,
                reduction="sum",
            )
            total += float(loss)
            count += int((target != -100).sum())
    mean = total / max(count, 1)
    return {
        "loss": round(mean, 4),
        "perplexity": round(math.exp(min(mean, 50)), 2),
        "tokens": count,
    }


def load_base(base: str, config: TrainConfig):
    """The base model and tokenizer, in bf16 on a GPU that has it, fp32 on CPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cuda = torch.cuda.is_available()
    bf16 = config.bf16 if config.bf16 is not None else cuda and torch.cuda.is_bf16_supported()
    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if bf16 else torch.float32}
    if config.qlora:
        if not cuda:
            raise FinetuneError("QLoRA (4-bit) needs a CUDA GPU; train in LoRA on CPU instead")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16 if bf16 else torch.float16,
            bnb_4bit_use_double_quant=True,
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
    except OSError as exc:
        raise FinetuneError(f"cannot load base model '{base}': {exc}") from None
    if not tokenizer.chat_template:
        raise FinetuneError(
            f"'{base}' has no chat template; use an instruct/chat model (or the demo model)"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if cuda and not config.qlora:
        import os

        # under accelerate/torchrun each process trains on its own GPU
        model = model.to(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    return model, tokenizer, bf16


def _latest_checkpoint(folder: Path) -> str | None:
    found = sorted(
        (p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    return str(found[-1]) if found else None


def train_lora(
    base: str,
    train_records: list[dict],
    eval_records: list[dict],
    output: Path,
    config: TrainConfig,
    *,
    merge: bool = False,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Train a LoRA adapter into ``output``; the report is returned and written there."""
    output = Path(output)
    model, tokenizer, bf16 = load_base(base, config)
    train_examples = tokenize_all(tokenizer, train_records, config.max_length)
    eval_examples = tokenize_all(tokenizer, eval_records, config.max_length)
    if not train_examples:
        raise FinetuneError("no training conversation has an assistant turn within max_length")
    log(f"{len(train_examples)} training and {len(eval_examples)} eval conversations")
    before = _evaluate(model, eval_examples, "before:", log)

    model, trainable = _with_lora(model, config, log)
    checkpoints = output / "checkpoints"
    args = _sft_config(config, checkpoints, bf16=bf16, progress=progress)
    trainer, speed = _sft_trainer(model, tokenizer, train_examples, args, progress=progress)
    result, seconds = _run(trainer, speed, checkpoints, resume=resume, log=log)
    tokens = trainer.state.num_input_tokens_seen
    model = trainer.model
    after = _evaluate(model, eval_examples, "after: ", log)

    main_process = trainer.is_world_process_zero()  # one writer when data-parallel
    if main_process:
        _save(model, tokenizer, output)
    report = {
        "base": base,
        "output": str(output),
        **_eval_fields(before, after),
        "train_tokens_per_s": round(tokens / max(seconds, 1e-9), 1),
        "train_tokens": tokens,
        "train_loss": round(result.training_loss, 4),
        "steps": trainer.state.global_step,
        "seconds": round(seconds, 1),
        "train_conversations": len(train_examples),
        "eval_conversations": len(eval_examples),
        "trainable_params": trainable,
        "config": asdict(config),
    }
    if merge and main_process:
        report["merged"] = _merge(model, tokenizer, output / "merged", log)
    if main_process:
        (output / "train-report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _evaluate(model, examples: list[dict], when: str, log: Callable[[str], None]) -> dict | None:
    """``eval_loss`` on the held-out examples, logged; None when there are none."""
    result = eval_loss(model, examples) if examples else None
    if result:
        log(f"eval {when} loss {result['loss']}, perplexity {result['perplexity']}")
    return result


def _eval_fields(before: dict | None, after: dict | None) -> dict:
    """The report's eval loss and perplexity, before and after (None without eval data)."""
    return {
        "eval_loss_before": before["loss"] if before else None,
        "eval_loss_after": after["loss"] if after else None,
        "eval_perplexity_before": before["perplexity"] if before else None,
        "eval_perplexity_after": after["perplexity"] if after else None,
        "eval_tokens": after["tokens"] if after else 0,
    }


def _with_lora(model, config: TrainConfig, log: Callable[[str], None]):
    """``model`` wrapped with LoRA adapters (prepared for k-bit training under QLoRA), and
    its number of trainable parameters."""
    from peft import LoraConfig, get_peft_model

    if config.qlora:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, config.gradient_checkpointing)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.target_modules,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    trainable, total = model.get_nb_trainable_parameters()
    log(f"LoRA r={config.lora_r}: {trainable:,} trainable of {total:,} parameters")
    return model, trainable


def _sft_config(config: TrainConfig, checkpoints: Path, *, bf16: bool, progress: bool):
    """TRL's SFTConfig for ``config``, checkpointing into ``checkpoints``."""
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(checkpoints),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps if config.max_steps else -1,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio of the steps
        weight_decay=config.weight_decay,
        lr_scheduler_type="cosine",
        logging_steps=config.logging_steps,
        save_steps=config.save_steps,
        save_total_limit=2,
        max_length=config.max_length,
        packing=config.packing,
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
        gradient_checkpointing=config.gradient_checkpointing,
        bf16=bf16,
        seed=config.seed,
        report_to="none",
        disable_tqdm=not progress,
        include_num_input_tokens_seen="non_padding",
        dataset_num_proc=None,
        eval_strategy="no",
        use_cpu=not _cuda(),
    )


def _sft_trainer(model, tokenizer, examples: list[dict], args, *, progress: bool):
    """The SFTTrainer, and its speed callback (whose ``started`` ``_run`` sets)."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTTrainer

    class _Speed(TrainerCallback):
        """Adds tokens/s to the logged line (the progress bar shows loss and this)."""

        started = 0.0

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs is not None and state.num_input_tokens_seen:
                elapsed = time.perf_counter() - self.started
                logs["tokens_per_s"] = round(state.num_input_tokens_seen / max(elapsed, 1e-9))

    speed = _Speed()
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        callbacks=[speed],
    )
    if not progress:  # --json: keep stdout for the result line
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    return trainer, speed


def _run(trainer, speed, checkpoints: Path, *, resume: bool, log: Callable[[str], None]):
    """Train (from the newest checkpoint with ``resume``); the result and the seconds."""
    resume_from = _latest_checkpoint(checkpoints) if resume else None
    if resume and resume_from:
        log(f"resuming from {resume_from}")
    speed.started = started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_from)
    return result, time.perf_counter() - started


def _save(model, tokenizer, folder: Path) -> None:
    """``model`` (an adapter, or a merged model) and its tokenizer into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def _merge(model, tokenizer, merged_dir: Path, log: Callable[[str], None]) -> str:
    """The base model with the adapter folded in, written to ``merged_dir``."""
    _save(model.merge_and_unload(), tokenizer, merged_dir)
    log(f"merged model written to {merged_dir}")
    return str(merged_dir)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
