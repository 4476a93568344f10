"""The offline demo model: a small Llama-architecture LM trained from scratch on CPU.

It exists so the whole pipeline (serving, grounding, LoRA, the page) runs on a machine
with no model hub and no GPU. The "small" recipe also teaches it the job the gateway gives
it: read the numbered sources in the grounded prompt, quote the sentence that answers the
question and cite it as [n], or say the documentation does not cover it. It can only quote;
it is not an assistant. Real deployments use an instruct model.

Heavy imports (torch, transformers, tokenizers) happen inside functions.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from finetune.errors import FinetuneError

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]

# ChatML, with {% generation %} marks around assistant text so trainers can mask the loss
# to assistant turns (transformers' return_assistant_tokens_mask).
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

MARKER = "demo-model.json"
CHECKSUMS = "SHA256SUMS"
# The shipped build of the "grounded" recipe (`assistant demo-model --rebuild` reproduces it).
SHIPPED = Path(__file__).parent / "demo_weights"
LABEL = (
    "helpdesk-demo: DEMO MODEL - a tiny model trained here to quote its sources, "
    "not a real assistant"
)


@dataclass(frozen=True)
class DemoModelConfig:
    """Shape and training budget of the demo model. Head size must be 64 or 128 for vLLM."""

    vocab_size: int = 4096
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 704
    max_position_embeddings: int = 2048
    seq_len: int = 256
    batch_size: int = 8
    max_steps: int = 450
    learning_rate: float = 3e-3
    seed: int = 0
    # Held-out quoting examples (``copy_examples``) that measure the copying circuit: spans
    # of ``copy_context`` tokens of corpus.
    copy_context: int = 192
    # Then the grounded task (numbered sources + question -> cited answer), loss on
    # the answers only. 0 steps: a plain language model, as the tiny test model is.
    sft_steps: int = 0
    sft_seq_len: int = 1536
    sft_batch_size: int = 8
    sft_learning_rate: float = 1e-3
    save_dtype: str = "float32"  # vLLM on CPU serves bfloat16 anyway; bf16 halves the files
    # Copying written into the weights (finetune/copy_circuit.py) instead of learned: needs
    # head size 128, hidden size >= 384; sets a RoPE base of 1e9 and untied embeddings.
    copy_circuit: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


SIZES: dict[str, DemoModelConfig] = {
    # The default of `make demo`, shipped in demo_weights/: the copying circuit, then the
    # grounded task alone (300 language-model steps first took its quoting from 0.78 to
    # 0.46 of held-out quoted tokens); about 30 minutes on two CPU cores
    # (`assistant demo-model --rebuild`).
    "grounded": DemoModelConfig(
        hidden_size=384,
        num_heads=3,
        intermediate_size=1024,
        copy_circuit=True,
        max_steps=0,
        sft_steps=800,
        sft_learning_rate=2e-3,
        save_dtype="bfloat16",
    ),
    # The language model alone: a few minutes on two CPU cores; it does not cite.
    "small": DemoModelConfig(),
    # For tests: seconds to build, still loads in vLLM (head size 64).
    "tiny": DemoModelConfig(
        vocab_size=1024,
        hidden_size=128,
        num_layers=2,
        num_heads=2,
        intermediate_size=256,
        seq_len=128,
        batch_size=8,
        max_steps=30,
    ),
}


def is_built(output: Path) -> bool:
    """A finished build leaves its marker last; a half-written folder does not count."""
    return (Path(output) / MARKER).is_file()


def build_demo_model(
    output: Path,
    conversations: Sequence[list[dict]],
    documents: Sequence[str],
    config: DemoModelConfig = SIZES["small"],
    *,
    grounded: Sequence[list[dict]] = (),
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Train the tokenizer and the model on ``conversations`` and ``documents``; save both.

    ``conversations`` are lists of ``{"role": "user"|"assistant"|"system", "content"}``.
    ``grounded`` are conversations of the grounded task (the gateway's system prompt with
    numbered sources, a question, the cited answer); with ``config.sft_steps`` the model is
    then trained on their answers. Returns the report also written to
    ``output/demo-model.json``.
    """
    if config.hidden_size % config.num_heads or config.head_dim not in (64, 128):
        raise FinetuneError(
            f"head size {config.head_dim} is not supported by vLLM's kernels; use 64 or 128"
        )
    if not conversations and not documents:
        raise FinetuneError("no training text: give transcripts or documents")

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / MARKER).unlink(missing_ok=True)
    random.seed(config.seed)
    torch.manual_seed(config.seed)

    raw_texts = [_render_plain(c) for c in (*conversations, *grounded)] + list(documents)
    tokenizer = train_tokenizer(raw_texts, config.vocab_size)
    samples = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations] + [
        d + "<|endoftext|>" for d in documents
    ]
    stream = _token_stream(tokenizer, samples, seed=config.seed)
    log(
        f"corpus: {len(conversations)} conversations, {len(documents)} documents, "
        f"{len(stream):,} tokens"
    )

    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        head_dim=config.head_dim,
        max_position_embeddings=config.max_position_embeddings,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": _rope_theta(config)},
        tie_word_embeddings=not config.copy_circuit,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(model_config)
    fixed = []
    if config.copy_circuit:
        from finetune import copy_circuit

        vocabulary = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        fixed = copy_circuit.freeze(
            copy_circuit.install(model, seed=config.seed, tokens=vocabulary)
        )
        held = copy_examples(tokenizer, stream, 128, config, seed=config.seed + 7)
        markers = copy_circuit.source_markers(model.config, vocabulary)
        report_circuit = {
            "quotes_sources_only": markers is not None,
            "starts_at_top_source": copy_circuit.lead_tokens(model.config, vocabulary) is not None,
            "quoted_tokens_right_built": round(copy_accuracy(model, held), 4),
        }
    report = _train(model, stream, config, fixed, progress=progress, log=log)
    if config.copy_circuit:
        report_circuit["quoted_tokens_right_trained"] = round(copy_accuracy(model, held), 4)
        report["copy_circuit"] = report_circuit
    if grounded and config.sft_steps:
        report["grounded"] = _train_grounded(
            model, tokenizer, grounded, config, fixed, progress=progress, log=log
        )

    model.generation_config.eos_token_id = [
        tokenizer.convert_tokens_to_ids("<|im_end|>"),
        tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    ]
    model.to(getattr(torch, config.save_dtype)).save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
    (output / "README.md").write_text(_model_card(config, report), encoding="utf-8")
    report = {"label": LABEL, "config": asdict(config), **report}
    (output / MARKER).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def write_checksums(folder: Path) -> None:
    """``SHA256SUMS`` (sha256sum's format) of every file in ``folder``."""
    folder = Path(folder)
    lines = [
        f"{_sha256(f)}  {f.name}"
        for f in sorted(folder.iterdir())
        if f.is_file() and f.name != CHECKSUMS
    ]
    (folder / CHECKSUMS).write_text("\n".join(lines) + "\n", encoding="utf-8")


def verify_checksums(folder: Path) -> list[str]:
    """The files ``SHA256SUMS`` names, after checking each; any mismatch is one sentence."""
    folder = Path(folder)
    listing = folder / CHECKSUMS
    if not listing.is_file():
        raise FinetuneError(f"{listing} is missing: the shipped demo model cannot be checked")
    names = []
    for line in listing.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        path = folder / name
        if not path.is_file():
            raise FinetuneError(f"{path} is missing from the shipped demo model")
        if _sha256(path) != digest:
            raise FinetuneError(
                f"{path} does not match its checksum (damaged, or a Git LFS pointer?): run "
                "`assistant demo-model --rebuild` to train the demo model here instead"
            )
        names.append(name)
    return names


def install_shipped(output: Path, source: Path = SHIPPED) -> dict:
    """Copy the shipped, checksum-verified demo model to ``output``; returns its report."""
    import shutil

    names = verify_checksums(source)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / MARKER).unlink(missing_ok=True)
    for name in names:
        if name != MARKER:
            shutil.copyfile(source / name, output / name)
    shutil.copyfile(source / CHECKSUMS, output / CHECKSUMS)
    shutil.copyfile(source / MARKER, output / MARKER)  # last: marks a finished copy
    return json.loads((output / MARKER).read_text(encoding="utf-8"))


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def train_tokenizer(texts: Sequence[str], vocab_size: int):
    """A byte-level BPE tokenizer (no unknown tokens) with the ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token=None,
        model_max_length=SIZES["small"].max_position_embeddings,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _render_plain(conversation: list[dict]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in conversation)


def _token_stream(tokenizer, samples: list[str], *, seed: int) -> list[int]:
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    ids: list[int] = []
    for i in order:
        ids.extend(tokenizer(samples[i], add_special_tokens=False)["input_ids"])
    return ids


def _rope_theta(config: DemoModelConfig) -> float:
    if config.copy_circuit:
        from finetune.copy_circuit import ROPE_THETA

        return ROPE_THETA
    return 10000.0


def _schedule(model, lr: float, steps: int, floor: float, fixed=()):
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


def _optimise(model, optimizer, scheduler, ids, labels, mask=None) -> float:
    """One optimisation step (gradients clipped at 1); the batch's loss."""
    import torch

    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return out.loss.item()


def _train(
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

    optimizer, scheduler = _schedule(model, config.learning_rate, config.max_steps, 0.1, fixed)
    generator = torch.Generator().manual_seed(config.seed)
    eval_before = _eval_loss(model, eval_blocks)
    model.train()
    start, tokens, loss_value = time.perf_counter(), 0, float("nan")
    bar = tqdm(range(config.max_steps), desc="training demo model", disable=not progress)
    for _step in bar:
        idx = torch.randint(len(train_blocks), (config.batch_size,), generator=generator)
        batch = train_blocks[idx]
        loss_value = _optimise(model, optimizer, scheduler, batch, batch)
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

    from finetune.train import pad_batch

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


def _train_grounded(
    model, tokenizer, grounded, config: DemoModelConfig, fixed=(), *, progress, log
):
    """Supervised steps on the grounded task: loss on the answer tokens only, batches of
    similar length, a held-out twentieth for the loss before and after."""
    from tqdm import tqdm

    from finetune.train import eval_loss, pad_batch, tokenize_conversation

    examples = [tokenize_conversation(tokenizer, c, config.sft_seq_len) for c in grounded]
    examples = [e for e in examples if e is not None]
    if len(examples) < 20:
        raise FinetuneError(f"only {len(examples)} grounded examples fit; need 20")
    random.Random(config.seed).shuffle(examples)
    n_eval = max(8, len(examples) // 20)
    held, train = examples[:n_eval], examples[n_eval:]
    before = eval_loss(model, held)["loss"]
    optimizer, scheduler = _schedule(model, config.sft_learning_rate, config.sft_steps, 0.05, fixed)
    rng = random.Random(config.seed + 1)
    by_length = sorted(train, key=lambda e: len(e["input_ids"]))
    size = config.sft_batch_size
    batches = [by_length[i : i + size] for i in range(0, len(by_length), size)]
    model.train()
    start, tokens, loss_value = time.perf_counter(), 0, float("nan")
    bar = tqdm(range(config.sft_steps), desc="training grounded answers", disable=not progress)
    for _step in bar:
        ids, labels, mask = pad_batch(rng.choice(batches))
        loss_value = _optimise(model, optimizer, scheduler, ids, labels, mask)
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


def _model_card(config: DemoModelConfig, report: dict) -> str:
    grounded = report.get("grounded")
    task = (
        f"""
Then {grounded["steps"]} steps on the grounded task ({grounded["examples"]} examples made from
the sample docs and transcripts, never from data/eval): the gateway's system prompt with
numbered sources and a question, answered by quoting the opening sentence of source [1] (the
passage the search ranked first), cited as [1], or, when the search found nothing relevant, by
saying the documentation does not cover it. Answer loss on held-back examples:
{grounded["answer_loss_before"]} before, {grounded["answer_loss_after"]} after.
"""
        if grounded
        else ""
    )
    circuit = report.get("copy_circuit")
    sources = (
        ", looking only between the prompt's source markers (a third layer-0 head marks them)"
        if circuit and circuit.get("quotes_sources_only")
        else ""
    )
    start = (
        ". An answer starts where source [1]'s text starts: the induction head reads the "
        "answer's opening as the end of a source's header line, and prefers source [1] and "
        "earlier matches"
        if circuit and circuit.get("starts_at_top_source")
        else ""
    )
    copying = (
        f"""
Its copying is not learned but written into the weights before training
(finetune/copy_circuit.py): two layer-0 heads that attend one and two places back, and a
layer-1 induction head that finds where the last two tokens occur in the prompt and copies the
token after them{sources}{start}; training leaves those parts fixed and learns the rest. Share of
held-out quoted tokens it predicts: {circuit["quoted_tokens_right_built"]} as built,
{circuit["quoted_tokens_right_trained"]} after {config.max_steps} language-model steps.
"""
        if circuit
        else ""
    )
    language = (
        f"""trained
from scratch for {config.max_steps} steps on the sample help-desk transcripts and docs of
this project. It exists to run the pipeline offline. Eval loss on held-back text:
{report["eval_loss_before"]} before, {report["eval_loss_after"]} after."""
        if config.max_steps
        else """trained
from scratch on the grounded task alone (no language-model steps: on this small corpus they
taught it to override its copying). It exists to run the pipeline offline."""
    )
    return f"""# {LABEL}

A Llama-architecture causal LM ({report["parameters"]:,} parameters, hidden
{config.hidden_size}, {config.num_layers} layers, head size {config.head_dim}) with its own
byte-level BPE tokenizer ({config.vocab_size} tokens) and a ChatML chat template, {language}
{copying}{task}
It can only quote what it is given, and does not judge which sentence answers the question:
serve a real instruct model for real use (see the project README).
"""
