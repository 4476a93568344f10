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
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from finetune import copy_circuit
from finetune.demo_card import LABEL, model_card
from finetune.demo_config import SIZES, DemoModelConfig
from finetune.demo_steps import copy_accuracy, copy_examples, train_grounded, train_language
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

    model = _new_model(tokenizer, config)
    fixed = []
    if config.copy_circuit:
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
    report = train_language(model, stream, config, fixed, progress=progress, log=log)
    if config.copy_circuit:
        report_circuit["quoted_tokens_right_trained"] = round(copy_accuracy(model, held), 4)
        report["copy_circuit"] = report_circuit
    if grounded and config.sft_steps:
        report["grounded"] = train_grounded(
            model, tokenizer, grounded, config, fixed, progress=progress, log=log
        )

    model.generation_config.eos_token_id = [
        tokenizer.convert_tokens_to_ids("<|im_end|>"),
        tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    ]
    model.to(getattr(torch, config.save_dtype)).save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
    (output / "README.md").write_text(model_card(config, report), encoding="utf-8")
    report = {"label": LABEL, "config": asdict(config), **report}
    (output / MARKER).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


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


def _new_model(tokenizer, config: DemoModelConfig):
    """A Llama model of ``config``'s shape, randomly initialised, for ``tokenizer``."""
    from transformers import LlamaConfig, LlamaForCausalLM

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
    return LlamaForCausalLM(model_config)


def _rope_theta(config: DemoModelConfig) -> float:
    if config.copy_circuit:
        return copy_circuit.ROPE_THETA
    return 10000.0
