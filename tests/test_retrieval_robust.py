"""Retrieval under bad input and wrong models: passages or none, never an exception; one
sentence and exit 1 for a model that cannot serve the store, which stays untouched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
DOCS = ["vpn-error-codes.md", "followme-printing.md", "passwords-and-self-service-reset.md"]


def run(*args, timeout=300):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def snapshot(folder: Path) -> dict:
    """What a store holds: each collection's metadata, record ids and documents."""
    from retrieval.store import open_client

    client = open_client(folder)
    out = {}
    for collection in client.list_collections():
        got = collection.get(include=["documents", "metadatas"])
        out[collection.name] = (
            collection.metadata,
            sorted(
                zip(
                    got["ids"],
                    got["documents"],
                    [json.dumps(m, sort_keys=True) for m in got["metadatas"]],
                    strict=True,
                )
            ),
        )
    return out


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    from retrieval.embeddings import SentenceTransformerEmbedder
    from retrieval.store import build_indexer, open_client

    root = tmp_path_factory.mktemp("robust")
    docs = root / "docs"
    docs.mkdir()
    for name in DOCS:
        shutil.copy(DATA / "docs" / name, docs / name)
    embedder = SentenceTransformerEmbedder("sentence-transformers/all-MiniLM-L6-v2")
    client = open_client(root / "store")
    build_indexer(
        client=client, collection="docs", embedder=embedder, chunk_tokens=200,
        chunk_overlap_tokens=30,
    ).run([docs])  # fmt: skip
    return client, embedder, docs, root / "store"


@pytest.mark.parametrize(
    "query",
    [
        "",
        "   \n\t ",
        "hi",
        "thanks!",
        " ".join(["printer", "toner", "vpn", "certificate"] * 2500),  # 10k words
        "Mein VPN zeigt den Fehler TP-204, was soll ich tun?",
        "Как сбросить пароль?",
        "パスワードをリセットする方法",
        "TP-204",
        "0x80070005",
        "\x00\x01 <script>alert(1)</script> ' OR 1=1 --",
        "🙂🙂🙂",
    ],
)
def test_odd_questions_return_passages_or_none(indexed, query):
    from retrieval.retriever import MODES, Retriever

    client, embedder, _, _ = indexed
    retriever = Retriever(client, embedder)
    for mode in MODES:
        hits = retriever.search(query, 4, mode=mode)
        assert isinstance(hits, list) and len(hits) <= 4
        assert all(h.source in DOCS and -1 <= h.score <= 1 for h in hits)


def test_an_error_code_alone_finds_its_section(indexed):
    """A rare code in the question raises the keyword weight: the TP-204 section is first."""
    from retrieval.retriever import Retriever

    client, embedder, _, _ = indexed
    hits = Retriever(client, embedder).search("TP-204", 3)
    assert hits[0].source == "vpn-error-codes.md"
    assert "TP-204" in hits[0].section


def test_default_returns_one_passage_per_document(indexed):
    from retrieval.retriever import Retriever

    client, embedder, _, _ = indexed
    hits = Retriever(client, embedder).search("vpn certificate error", 5)
    assert len({h.source for h in hits[:3]}) == 3  # three documents indexed: one each first
    assert len(hits) == 5  # then more passages of the same documents, not nothing
    several = Retriever(client, embedder, per_document=None).search("vpn certificate error", 5)
    assert len(several) == 5 and len({h.source for h in several[:3]}) < 3


def test_missing_embedding_model_is_one_sentence_and_no_store(tmp_path, indexed):
    _, _, docs, _ = indexed
    store = tmp_path / "store"
    result = run("index", str(docs), "--store", str(store), "--embedding-model", "/no/such/model")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith("error: cannot load embedding model")
    assert "Traceback" not in result.stderr
    assert not store.exists(), "a model that cannot load must not create a store"


def _tiny_sentence_model(folder: Path, hidden: int, vocab_from) -> None:
    """A real sentence-transformers model (1-layer BERT + mean pooling) of ``hidden`` dims."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel

    bert = folder.parent / f"{folder.name}-bert"
    config = BertConfig(
        vocab_size=vocab_from.vocab_size, hidden_size=hidden, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=2 * hidden,
    )  # fmt: skip
    BertModel(config).save_pretrained(bert)
    vocab_from.save_pretrained(bert)
    word = models.Transformer(str(bert), max_seq_length=128)
    pooling = models.Pooling(hidden, "mean")
    SentenceTransformer(modules=[word, pooling], device="cpu").save(str(folder))


def test_a_model_of_another_dimension_leaves_the_store_untouched(tmp_path, indexed):
    _, embedder, docs, _ = indexed
    model = tmp_path / "model"
    _tiny_sentence_model(model, 32, embedder.tokenizer)
    store = tmp_path / "store"
    first = run("index", str(docs), "--store", str(store), "--embedding-model", str(model))
    assert first.returncode == 0, first.stderr
    before = snapshot(store)
    # The same folder now holds a model of another size (someone replaced it in place).
    shutil.rmtree(model)
    shutil.rmtree(tmp_path / "model-bert")
    _tiny_sentence_model(model, 64, embedder.tokenizer)
    second = run(
        "index", str(docs), "--store", str(store), "--embedding-model", str(model), "--full"
    )
    assert second.returncode == 1
    assert "32-dimensional" in second.stderr and "64-dimensional" in second.stderr
    assert "Traceback" not in second.stderr
    assert snapshot(store) == before
    # And another model by name is refused with the way out, before anything is written.
    third = run("index", str(docs), "--store", str(store))
    assert third.returncode == 1 and "--full" in third.stderr
    assert snapshot(store) == before


def test_eval_retrieval_compare_prints_the_naive_row(indexed, tmp_path):
    _, _, docs, _ = indexed
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps({"question": "vpn says TP-204", "gold": ["vpn-error-codes.md"]})
        + "\n"
        + json.dumps({"question": "printing from my laptop", "gold": ["followme-printing.md"]})
        + "\n"
    )
    result = run("eval-retrieval", "--docs", str(docs), "--questions", str(questions), "--compare")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert {"naive", "dense", "keyword", "hybrid"} <= rows
    as_json = run(
        "eval-retrieval", "--docs", str(docs), "--questions", str(questions), "--compare", "--json"
    )
    summary = json.loads(as_json.stdout.strip().splitlines()[-1])
    assert set(summary["modes"]) == {"naive", "dense", "keyword", "hybrid"}
    assert summary["modes"]["hybrid"]["recall@5"] == 1.0


def test_finetune_embeddings_keeps_the_model_only_when_it_wins(tmp_path):
    """The real command on a slice of the sample: pairs mined from transcripts, judged on
    held-out questions before and after; written only if it wins (or with --force)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in sorted(p.name for p in (DATA / "docs").glob("*.md"))[:8]:
        shutil.copy(DATA / "docs" / name, docs / name)
    out = tmp_path / "adapted"
    args = ["finetune", "embeddings", "--docs", str(docs), "--output", str(out)]
    args += ["--transcripts", str(DATA / "transcripts" / "chats.jsonl"), "--json"]
    result = run(*args, "--min-score", "0.4", "--eval-fraction", "0.4", timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["pairs"] >= 10 and report["train_pairs"] >= 5 and report["probes"] >= 3
    for key in ("mrr_before", "mrr_after", "recall@5_before", "recall@5_after"):
        assert 0 <= report[key] <= 1
    wins = report["mrr_after"] > report["mrr_before"] and (
        report["recall@5_after"] >= report["recall@5_before"]
    )
    assert report["wins"] == wins and report["kept"] == wins
    assert (out / "config_sentence_transformers.json").exists() == wins
    if not wins:
        forced = run(*args, "--min-score", "0.4", "--eval-fraction", "0.4", "--force")
        assert json.loads(forced.stdout.strip().splitlines()[-1])["kept"] is True
        assert (out / "config_sentence_transformers.json").exists()
    # The adapted folder is a model sentence-transformers (and so `index --embedding-model`)
    # loads.
    from retrieval.embeddings import SentenceTransformerEmbedder

    assert SentenceTransformerEmbedder(str(out)).dimension == 384


def test_finetune_embeddings_refuses_a_non_empty_output(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run("finetune", "embeddings", "--docs", str(DATA / "docs"), "--output", str(out))
    assert result.returncode == 1 and "not empty" in result.stderr
    assert (out / "keep.txt").read_text() == "mine"
