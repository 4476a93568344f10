"""The demo model's shape and training budget: ``DemoModelConfig`` and the named recipes."""

from __future__ import annotations

from dataclasses import dataclass


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
