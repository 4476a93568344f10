"""A GGUF file -> a safetensors folder that vLLM, transformers and peft load.

transformers reads GGUF (dequantising every tensor) but refuses to save a model it loaded
from GGUF, so the weights go into a model built from the same config, which saves normally.
The dtype is float32: on a CPU without AVX-512/BF16 (this project's build machines), vLLM
ran float32 about twice as fast as bfloat16, which it can only emulate there.
"""

from __future__ import annotations

from pathlib import Path

from assistant.errors import UserError


def gguf_to_safetensors(gguf: Path, folder: Path, *, dtype: str = "float32") -> dict:
    """Write config, weights, tokenizer and chat template of ``gguf`` into ``folder``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch_dtype = getattr(torch, dtype)
    where, name = str(gguf.parent), gguf.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name)
        config = AutoConfig.from_pretrained(where, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(where, gguf_file=name, dtype=torch_dtype)
    except (ImportError, ValueError, OSError) as exc:
        raise UserError(f"transformers could not read {name}: {exc}") from None
    model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    result = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    missing = set(result.missing_keys) - tied
    if missing or result.unexpected_keys:
        raise UserError(
            f"the weights in {name} do not fit its own config (missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(result.unexpected_keys)[:3]})"
        )
    model.generation_config = loaded.generation_config
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if not tokenizer.chat_template:
        raise UserError(f"{name} carries no chat template: it cannot be served for chat")
    return {
        "architecture": config.model_type,
        "dtype": dtype,
        "parameters": sum(p.numel() for p in model.parameters()),
        "layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size,
        "head_dim": getattr(config, "head_dim", None)
        or config.hidden_size // config.num_attention_heads,
    }
