"""Training the demo model: language-model steps, steps on the grounded task, and the
quoting examples that measure its copying. Heavy imports (torch, tqdm) inside functions."""

from __future__ import annotations

import math
import random
import time

from finetune.demo_config import DemoModelConfig
from finetune.errors import FinetuneError
from finetune.train import eval_loss, pad_batch, tokenize_conversation


def schedule(model, lr: float, steps: int, floor: float, fixed=()):
    """AdamW, and its learning rate: a linear warm-up over a twentieth of ``steps``, then a
    cosine down to ``floor`` times ``lr``. The ``fixed`` parts of parameters (the copying
    circuit) get their values back after each step."""
    import torch

    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=lr, weight_decay=0.01)
    if fixed:
        optimizer.register_step_post_hook(lambda *_: [f.restore() for f in fixed])
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        frac = (step - warmup) / max(1, steps - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)


def optimise(model, optimizer, scheduler, ids, labels, mask=None) -> float:
    """One optimisation step (gradients clipped at 1); the batch's loss."""
    import torch

    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return out.loss.item()


def train_language(
    model, stream: list[int], config: DemoModelConfig, fixed=(), *, progress: bool, log
) -> dict:
    import torch
    from tqdm import tqdm

    data = torch.tensor(stream, dtype=torch.long)
    block = config.seq_len + 1
    if len(data) < block * 2:
        raise FinetuneError(f"corpus too small: {len(data)} tokens, need {block * 2}")
    n_blocks = len(data) // block
    blocks = data[: n_blocks * block].view(n_blocks, block)
    n_eval = max(1, n_blocks // 20)
    eval_blocks, train_blocks = blocks[:n_eval], blocks[n_eval:]

    optimizer, scheduler = schedule(model, config.learning_rate, config.max_steps, 0.1, fixed)
    generator = torch.Generator().manual_seed(config.seed)
    eval_before = _eval_loss(model, eval_blocks)
    model.train()
    start, tokens, loss_value = time.perf_counter(), 0, float("nan")
    bar = tqdm(range(config.max_steps), desc="training demo model", disable=not progress)
    for _step in bar:
        idx = torch.randint(len(train_blocks), (config.batch_size,), generator=generator)
        batch = train_blocks[idx]
        loss_value = optimise(model, optimizer, scheduler, batch, batch)
        tokens += batch.numel()
        rate = tokens / (time.perf_counter() - start)
        bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{rate:,.0f}")
    seconds = time.perf_counter() - start
    eval_after = _eval_loss(model, eval_blocks)
    log(
        f"trained {config.max_steps} steps in {seconds:.0f} s; "
        f"eval loss {eval_before:.3f} -> {eval_after:.3f}"
    )
    return {
        "steps": config.max_steps,
        "train_seconds": round(seconds, 1),
        "train_tokens_per_s": round(tokens / seconds, 1),
        "final_train_loss": round(loss_value, 4),
        "eval_loss_before": round(eval_before, 4),
        "eval_loss_after": round(eval_after, 4),
        "corpus_tokens": len(stream),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


COPY_PROMPT = "\nQuote: "


def copy_examples(
    tokenizer,
    stream: list[int],
    n: int,
    config: DemoModelConfig,
    seed: int,
    random_share: float = 0.0,
):
    """``n`` copying examples: ``copy_context`` tokens of the corpus, "Quote:", the first two
    tokens of a span of it (8 to 40 tokens), then the rest of the span and the end token,
    the only tokens with a loss (``labels``, -100 elsewhere). A ``random_share`` of them have
    tokens drawn at random from the corpus's instead of its text: only copying predicts
    those."""
    rng = random.Random(seed)
    prompt = tokenizer(COPY_PROMPT, add_special_tokens=False)["input_ids"]
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    width = config.copy_context
    vocabulary = sorted(set(stream)) if random_share else []
    examples = []
    for _ in range(n):
        if rng.random() < random_share:
            context = [rng.choice(vocabulary) for _ in range(width)]
        else:
            at = rng.randrange(0, len(stream) - width)
            context = stream[at : at + width]
        length = rng.randint(8, 40)
        start = rng.randrange(0, width - length)
        span = context[start : start + length]
        head = [*context, *prompt, *span[:2]]
        examples.append({"input_ids": [*head, *span[2:], end],
                         "labels": [-100] * len(head) + [*span[2:], end]})  # fmt: skip
    return examples


def copy_accuracy(model, examples: list[dict]) -> float:
    """Share of the quoted tokens the model predicts exactly (greedy, teacher-forced)."""
    import torch

    model.eval()
    right = total = 0
    with torch.no_grad():
        for i in range(0, len(examples), 16):
            ids, labels, mask = pad_batch(examples[i : i + 16])
            guess = model(input_ids=ids, attention_mask=mask).logits[:, :-1].argmax(-1)
            target = labels[:, 1:]
            keep = target != -100
            right += int((guess[keep] == target[keep]).sum())
            total += int(keep.sum())
    model.train()
    return right / max(1, total)


def train_grounded(model, tokenizer, grounded, config: DemoModelConfig, fixed=(), *, progress, log):
    """Supervised steps on the grounded task: loss on the answer tokens only, batches of
    similar length, a held-out twentieth for the loss before and after."""
    from tqdm import tqdm

    examples = [tokenize_conversation(tokenizer, c, config.sft_seq_len) for c in grounded]
    examples = [e for e in examples if e is not None]
    if len(examples) < 20:
        raise FinetuneError(f"only {len(examples)} grounded examples fit; need 20")
    random.Random(config.seed).shuffle(examples)
    n_eval = max(8, len(examples) // 20)
    held, train = examples[:n_eval], examples[n_eval:]
    before = eval_loss(model, held)["loss"]
    optimizer, scheduler = schedule(model, config.sft_learning_rate, config.sft_steps, 0.05, fixed)
    rng = random.Random(config.seed + 1)
    by_length = sorted(train, key=lambda e: len(e["input_ids"]))
    size = config.sft_batch_size
    batches = [by_length[i : i + size] for i in range(0, len(by_length), size)]
    model.train()
    start, tokens, loss_value = time.perf_counter(), 0, float("nan")
    bar = tqdm(range(config.sft_steps), desc="training grounded answers", disable=not progress)
    for _step in bar:
        ids, labels, mask = pad_batch(rng.choice(batches))
        loss_value = optimise(model, optimizer, scheduler, ids, labels, mask)
        tokens += int(mask.sum())
        rate = tokens / (time.perf_counter() - start)
        bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{rate:,.0f}")
    seconds = time.perf_counter() - start
    after = eval_loss(model, held)["loss"]
    log(
        f"grounded task: {config.sft_steps} steps on {len(train)} examples in {seconds:.0f} s; "
        f"answer loss {before:.3f} -> {after:.3f}"
    )
    return {
        "examples": len(train),
        "held_out": len(held),
        "steps": config.sft_steps,
        "train_seconds": round(seconds, 1),
        "answer_loss_before": before,
        "answer_loss_after": after,
    }


def _eval_loss(model, blocks) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        losses = [model(input_ids=b, labels=b).loss.item() for b in blocks.split(8)]
    model.train()
    return sum(losses) / len(losses)
