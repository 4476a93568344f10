"""One embedder shared by the event loop, the search threads and the reindex thread.

A Hugging Face fast tokenizer keeps its truncation and padding settings on itself and sets
them at each call: ``count_tokens`` (no truncation, no padding) in one thread between the
set-up and the encoding of a batch in another made the batch come out unpadded
("Unable to create tensor") or, with older ``tokenizers``, raised "Already borrowed".
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest


@pytest.fixture(scope="module")
def embedder():
    from retrieval.embeddings import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder("sentence-transformers/all-MiniLM-L6-v2")


def test_encode_from_several_threads_gives_no_error_and_the_same_vectors(embedder):
    # a batch that needs padding (different lengths) and truncation (over 256 tokens)
    batch = ["vpn " * 400, "printer", "reset my password please, it expired on Monday"]
    query = ["What does VPN error TP-204 mean?"]
    passages = np.asarray(embedder.embed(batch))
    asked = np.asarray(embedder.embed_query(query))
    section = "The quick brown fox jumps over the lazy dog. " * 40
    tokens = embedder.count_tokens(section)

    errors: list[str] = []
    wrong: list[str] = []
    done = {"embed": 0, "query": 0, "count": 0}
    deadline = time.monotonic() + 3.0

    def hammer(kind: str) -> None:
        while time.monotonic() < deadline or done[kind] < 5:
            try:
                if kind == "embed":
                    same = np.allclose(embedder.embed(batch), passages, atol=1e-5)
                elif kind == "query":
                    same = np.allclose(embedder.embed_query(query), asked, atol=1e-5)
                else:
                    same = embedder.count_tokens(section) == tokens
            except Exception as exc:  # what the race raised
                errors.append(f"{kind}: {type(exc).__name__}: {str(exc)[:120]}")
                return
            if not same:
                wrong.append(kind)
            done[kind] += 1

    kinds = ["embed", "embed", "query", "count", "count"]
    threads = [threading.Thread(target=hammer, args=(kind,)) for kind in kinds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert not wrong, f"different results under concurrency: {wrong}"
    assert done["embed"] >= 5 and done["count"] >= 5
