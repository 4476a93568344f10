"""Adapt the embedding model to the company, and keep it only where it is proven to help.

Training pairs look like the questions people ask, not like the manual's structure:
(heading -> text) pairs from one manual made all-MiniLM-L6-v2 *worse* on real questions
(recall@1 0.733 -> 0.617, measured here). So the pairs come from the help-desk transcripts:
the employee's question, and the doc passage that the agent's answer matches best (when it
matches well enough). Each pair gets a hard negative: the passage of another document that
the current model ranks highest for the question. Training is sentence-transformers'
trainer with MultipleNegativesRankingLoss (in-batch and hard negatives).

The guard: questions of a held-out share of the conversations (and, when given, a
questions file with gold files) are searched over all passages before and after; the new
model is written only if its MRR is higher and its recall@5 no lower. Otherwise nothing is
written and the report says why.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.errors import RetrievalError
from retrieval.evaluation import is_gold


@dataclass(frozen=True)
class Passage:
    source: str
    text: str


@dataclass(frozen=True)
class Pair:
    query: str
    positive: int  # index of the passage
    group: str  # conversation id: held-out split by conversation
    score: float  # cosine of the agent's answer to the passage


@dataclass(frozen=True)
class Probe:
    """A held-out question and the documents that answer it."""

    query: str
    gold: frozenset[str]


def mine_pairs(
    conversations: list[tuple[str, str, str]],
    passages: list[Passage],
    passage_vectors: np.ndarray,
    embed: Callable[[list[str]], np.ndarray],
    min_score: float = 0.5,
) -> list[Pair]:
    """(conversation id, employee question, agent answer) -> pairs whose answer fits a passage."""
    if not conversations or not passages:
        return []
    answers = embed([answer for _, _, answer in conversations])
    best = answers @ passage_vectors.T
    pairs = []
    for row, (group, question, _) in enumerate(conversations):
        index = int(np.argmax(best[row]))
        if best[row, index] >= min_score:
            pairs.append(Pair(question, index, group, float(best[row, index])))
    return pairs


def split(pairs: list[Pair], eval_fraction: float) -> tuple[list[Pair], list[Pair]]:
    """Held out by a hash of the conversation id, so a rerun splits the same way."""

    def held(pair: Pair) -> bool:
        digest = hashlib.sha1(pair.group.encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < eval_fraction

    return [p for p in pairs if not held(p)], [p for p in pairs if held(p)]


def score(
    query_vectors: np.ndarray,
    passage_vectors: np.ndarray,
    passages: list[Passage],
    probes: list[Probe],
    k: int = 5,
) -> dict:
    """Recall@1, recall@k and MRR by document: the best passage of each document counts."""
    if not probes:
        return {"n": 0, "recall@1": 0.0, f"recall@{k}": 0.0, "mrr": 0.0}
    sims = query_vectors @ passage_vectors.T
    ranks = []
    for row, probe in enumerate(probes):
        seen: list[str] = []
        for index in np.argsort(-sims[row]):
            source = passages[index].source
            if source not in seen:
                seen.append(source)
            if len(seen) >= k:
                break
        ranks.append(next((i for i, s in enumerate(seen, 1) if is_gold(s, probe.gold)), None))
    n = len(probes)
    return {
        "n": n,
        "recall@1": round(sum(r == 1 for r in ranks) / n, 4),
        f"recall@{k}": round(sum(r is not None for r in ranks) / n, 4),
        "mrr": round(sum(1 / r for r in ranks if r) / n, 4),
    }


def hard_negatives(
    query_vectors: np.ndarray,
    passage_vectors: np.ndarray,
    passages: list[Passage],
    pairs: list[Pair],
) -> list[int]:
    """For each pair, the passage of another document the model ranks highest."""
    sims = query_vectors @ passage_vectors.T
    out = []
    for row, pair in enumerate(pairs):
        own = passages[pair.positive].source
        out.append(next(int(i) for i in np.argsort(-sims[row]) if passages[int(i)].source != own))
    return out


@dataclass
class TrainConfig:
    epochs: float = 1.0
    learning_rate: float = 2e-5
    batch_size: int = 16
    seed: int = 0


def train(
    base: str,
    triplets: list[tuple[str, str, str]],
    output: Path,
    config: TrainConfig,
    *,
    progress: bool = True,
) -> None:
    """Fine-tune ``base`` on (query, positive, hard negative) texts; saves into ``output``."""
    if len(triplets) < 2:
        raise RetrievalError(f"{len(triplets)} training pair(s): too few to train on")
    import os
    import tempfile

    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.training_args import BatchSamplers

    from retrieval.embeddings import resolve_model

    random.seed(config.seed)
    os.environ.setdefault("WANDB_DISABLED", "true")
    model = SentenceTransformer(resolve_model(base), device="cpu")
    data = Dataset.from_dict(
        {
            "anchor": [a for a, _, _ in triplets],
            "positive": [p for _, p, _ in triplets],
            "negative": [n for _, _, n in triplets],
        }
    )
    with tempfile.TemporaryDirectory(prefix="embed-train-") as tmp:
        args = SentenceTransformerTrainingArguments(
            output_dir=tmp,
            num_train_epochs=config.epochs,
            per_device_train_batch_size=min(config.batch_size, len(triplets)),
            learning_rate=config.learning_rate,
            warmup_ratio=0.1,
            seed=config.seed,
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            save_strategy="no",
            report_to=[],
            logging_steps=10_000,
            disable_tqdm=not progress,
            use_cpu=True,
        )
        trainer = SentenceTransformerTrainer(
            model=model,
            args=args,
            train_dataset=data,
            loss=MultipleNegativesRankingLoss(model),
        )
        trainer.train()
    model.save(str(output))


def collect_passages(
    roots: list[Path],
    count_tokens: Callable[[str], int],
    chunk_tokens: int,
    overlap: int,
    headers: bool = True,
) -> list[Passage]:
    """The docs' passages as the indexer cuts and embeds them (unreadable files skipped)."""
    from retrieval.chunking import Chunker
    from retrieval.indexer import IndexReport, scan
    from retrieval.loaders import LoadError, load

    chunker = Chunker(count_tokens, chunk_tokens, overlap)
    passages = []
    for file in scan(roots, IndexReport()).values():
        try:
            chunks = chunker.split(load(file.path, file.source), file.digest)
        except LoadError:
            continue
        passages += [Passage(c.source, c.embedding_text(headers)) for c in chunks]
    return passages
