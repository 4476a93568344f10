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
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.chunking import Chunker
from retrieval.embeddings import Embedder, SentenceTransformerEmbedder, resolve_model
from retrieval.errors import RetrievalError
from retrieval.evaluation import is_gold, load_questions
from retrieval.indexer import IndexReport, scan
from retrieval.loaders import LoadError, load


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
    chunker = Chunker(count_tokens, chunk_tokens, overlap)
    passages = []
    for file in scan(roots, IndexReport()).values():
        try:
            chunks = chunker.split(load(file.path, file.source), file.digest)
        except LoadError:
            continue
        passages += [Passage(c.source, c.embedding_text(headers)) for c in chunks]
    return passages


@dataclass
class AdaptReport:
    """What ``adapt_embedder`` did; ``summary()`` is the command's JSON object."""

    base: str
    passages: int
    conversations: int
    pairs: int
    train_pairs: int
    probes: int
    before: dict
    after: dict
    wins: bool
    kept: bool
    output: str | None
    seconds: float
    written: int = 0  # of ``pairs``: questions the served model wrote

    @property
    def reason(self) -> str:
        if self.wins:
            return "MRR higher and recall@5 no lower on held-out questions"
        return "it does not win on held-out questions (MRR must rise, recall@5 must not fall)"

    def summary(self) -> dict:
        out = {
            "base": self.base,
            "passages": self.passages,
            "conversations": self.conversations,
            "pairs": self.pairs,
            "written_questions": self.written,
            "train_pairs": self.train_pairs,
            "probes": self.probes,
        }
        for key in ("mrr", "recall@1", "recall@5"):
            out |= {f"{key}_before": self.before[key], f"{key}_after": self.after[key]}
        return out | {
            "wins": self.wins,
            "kept": self.kept,
            "output": self.output,
            "seconds": self.seconds,
        }


def adapt_embedder(
    embedder: SentenceTransformerEmbedder,
    base: str,
    docs: Path,
    conversations: list[tuple[str, str, str]],
    output: Path,
    *,
    chunk_tokens: int,
    chunk_overlap: int,
    chunk_headers: bool = True,
    eval_questions: Path | None = None,
    min_score: float = 0.5,
    eval_fraction: float = 0.3,
    config: TrainConfig | None = None,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    generate: Callable[[list[str]], list[tuple[int, str]]] | None = None,
) -> AdaptReport:
    """Train ``base`` (the model ``embedder`` runs) on pairs mined from ``conversations``
    ((id, question, agent answer)) and the passages of ``docs``; write it to ``output`` only
    if it wins on the held-out questions (and ``eval_questions``), or with ``force``.

    ``generate`` (passage texts -> (passage index, question)), e.g. a served model writing
    questions (``retrieval.question_writer``), adds pairs for passages no transcript covers;
    they are held out by document, so a held-out question's document was never trained on."""
    started = time.perf_counter()
    count = embedder.count_tokens
    passages = collect_passages([docs], count, chunk_tokens, chunk_overlap, chunk_headers)
    if not passages:
        raise RetrievalError(f"no readable documents in '{docs}'")
    log(f"{len(passages)} passages from {docs}; embedding them with {embedder.name}")
    passage_vectors = _vectors(embedder, [p.text for p in passages])
    pairs = mine_pairs(
        conversations, passages, passage_vectors, lambda t: _vectors(embedder, t), min_score
    )
    mined = len(pairs)
    if generate is not None:
        written = generate([p.text for p in passages])
        pairs += [Pair(q, i, f"doc:{passages[i].source}", 1.0) for i, q in written]
        log(f"{len(written)} questions written by the model for the passages")
    train_pairs, held_pairs = split(pairs, eval_fraction)
    log(
        f"{mined} pairs from {len(conversations)} conversations, {len(pairs) - mined} written "
        f"({len(train_pairs)} to train, {len(held_pairs)} held out)"
    )
    probes = _probes(held_pairs, passages, eval_questions)

    def judge(model: Embedder) -> dict:
        vectors = passage_vectors if model is embedder else None
        return _judge(model, passages, probes, vectors)

    before = judge(embedder)
    triplets = _triplets(embedder, passage_vectors, passages, train_pairs)
    with tempfile.TemporaryDirectory(prefix="embeddings-") as tmp:
        trained = Path(tmp) / "model"
        log(f"training on {len(triplets)} (question, passage, hard negative) triplets")
        train(base, triplets, trained, config or TrainConfig(), progress=progress)
        after = judge(
            SentenceTransformerEmbedder(
                str(trained),
                query_prefix=embedder.query_prefix,
                passage_prefix=embedder.passage_prefix,
            )
        )
        wins = after["mrr"] > before["mrr"] and after["recall@5"] >= before["recall@5"]
        kept = wins or force
        if kept:
            shutil.copytree(trained, output, dirs_exist_ok=True)
    return AdaptReport(
        embedder.name, len(passages), len(conversations), len(pairs), len(train_pairs),
        len(probes), before, after, wins, kept, str(output) if kept else None,
        round(time.perf_counter() - started, 1), len(pairs) - mined,
    )  # fmt: skip


def _probes(held: list[Pair], passages: list[Passage], eval_questions: Path | None) -> list[Probe]:
    """The held-out pairs' questions and the ``--eval`` questions, with their gold files."""
    probes = [Probe(p.query, frozenset({passages[p.positive].source})) for p in held]
    if eval_questions is not None:
        probes += [Probe(q.text, q.gold) for q in load_questions(eval_questions)]
    if not probes:
        raise RetrievalError("nothing to judge the new model on: no held-out pairs and no --eval")
    return probes


def _triplets(
    embedder: Embedder, passage_vectors: np.ndarray, passages: list[Passage], pairs: list[Pair]
) -> list[tuple[str, str, str]]:
    """(question, its passage, the hard negative the current model ranks highest)."""
    queries = _vectors(embedder, [p.query for p in pairs], query=True)
    negatives = hard_negatives(queries, passage_vectors, passages, pairs)
    return [
        (p.query, passages[p.positive].text, passages[n].text)
        for p, n in zip(pairs, negatives, strict=True)
    ]


def _vectors(model: Embedder, texts: list[str], query: bool = False) -> np.ndarray:
    encode = model.embed_query if query else model.embed
    return np.asarray(encode(texts), dtype=np.float32).reshape(len(texts), -1)


def _judge(
    model: Embedder,
    passages: list[Passage],
    probes: list[Probe],
    passage_vectors: np.ndarray | None = None,
) -> dict:
    """``score`` of ``model`` on the probes (passage vectors embedded unless given)."""
    if passage_vectors is None:
        passage_vectors = _vectors(model, [p.text for p in passages])
    return score(
        _vectors(model, [p.query for p in probes], query=True), passage_vectors, passages, probes
    )
