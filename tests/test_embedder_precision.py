"""``ASSISTANT_EMBEDDING_PRECISION=int8``: the embedding model quantized when it loads."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.errors import UserError
from assistant.settings import load_settings
from retrieval.embeddings import SentenceTransformerEmbedder
from retrieval.errors import RetrievalError

TEXTS = [
    "VPN error TP-204 means the device certificate has expired; renew it in Fleetwarden.",
    "The cafeteria on floor 2 serves lunch from 11:30.",
    "How do I reset my password when KeyLoop locks me out?",
]


def test_int8_vectors_stay_close_to_float32_and_keep_the_ranking():
    full = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    small = SentenceTransformerEmbedder("all-MiniLM-L6-v2", precision="int8")
    assert small.precision == "int8" and small.dimension == full.dimension
    # another identity: a collection built at one precision is refused at the other
    assert small.name == full.name + "@int8"
    a, b = np.asarray(full.embed(TEXTS)), np.asarray(small.embed(TEXTS))
    drift = np.sum(a * b, axis=1)  # both normalized: cosine between the two vectors of a text
    assert drift.min() > 0.9, drift  # MiniLM: 0.93-0.96 measured
    assert not np.allclose(a, b)  # it did quantize
    query = "vpn says TP-204"
    for embedder, passages in ((full, a), (small, b)):
        scores = passages @ np.asarray(embedder.embed_query([query]))[0]
        assert int(np.argmax(scores)) == 0


def test_unknown_precision_is_one_sentence():
    with pytest.raises(RetrievalError, match="unknown embedding precision 'fp8'"):
        SentenceTransformerEmbedder("all-MiniLM-L6-v2", precision="fp8")


def test_the_setting_accepts_only_the_known_precisions(monkeypatch):
    monkeypatch.setenv("ASSISTANT_EMBEDDING_PRECISION", "int8")
    assert load_settings().embedding_precision == "int8"
    monkeypatch.setenv("ASSISTANT_EMBEDDING_PRECISION", "int4")
    with pytest.raises(UserError, match="embedding_precision"):
        load_settings()
