"""`assistant index` killed with SIGKILL mid-run: every document stays whole, the next run repairs.

The real CLI writes in batches of 16 chunks (ASSISTANT_INDEX_BATCH_CHUNKS), so a kill
lands between many commits. The test kills it after different amounts of progress and
checks, through a fresh Chroma client and the Retriever, that each document is live at
its old or its new version only, complete, and never twice.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retrieval.indexer import document_version
from retrieval.store import index_recipe

DATA_DOCS = Path(__file__).resolve().parents[1] / "data" / "docs"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "ASSISTANT_INDEX_BATCH_CHUNKS": "16"}


def run_index(docs: Path, store: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "assistant", "index", str(docs), "--store", str(store), "--json"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def digests(docs: Path) -> dict[str, str]:
    return {
        p.relative_to(docs).as_posix(): document_version(
            hashlib.sha256(p.read_bytes()).hexdigest(), index_recipe(200, 30, True, "")
        )
        for p in docs.rglob("*")
        if p.is_file()
    }


def fresh_client(store: Path):
    """A client that reads the store as it is on disk now (Chroma caches one per path)."""
    import chromadb
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    return chromadb.PersistentClient(path=str(store))


def check_consistent(store: Path, old: dict[str, str], new: dict[str, str], embedder) -> dict:
    """Each live document is at its old or new version, whole; searches show no duplicates."""
    from retrieval.manifest import Manifest
    from retrieval.retriever import Retriever

    client = fresh_client(store)
    live = Manifest(client, "docs").all()
    chunks = client.get_collection("docs").get(include=["metadatas"])["metadatas"]
    for source, entry in live.items():
        assert entry.content_hash in {old.get(source), new.get(source)}, source
        stored = [
            m for m in chunks if m["source"] == source and m["content_hash"] == entry.content_hash
        ]
        assert len(stored) == entry.n_chunks, f"{source}: half a document is live"
    retriever = Retriever(client, embedder)
    for query in ("VPN error TP-204", "reset my password", "printer badge", "guest wifi voucher"):
        hits = retriever.search(query, 10)
        assert hits
        keys = [(h.source, h.section, h.text) for h in hits]
        assert len(keys) == len(set(keys)), f"duplicates for {query!r}"
        for h in hits:
            assert h.source in live
    return live


@pytest.mark.integration
def test_sigkill_at_any_point_keeps_each_document_whole(tmp_path):
    from retrieval.embeddings import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder("sentence-transformers/all-MiniLM-L6-v2")
    docs, store = tmp_path / "docs", tmp_path / "store"
    shutil.copytree(DATA_DOCS, docs)
    first = run_index(docs, store)
    assert first.wait(timeout=600) == 0, first.stderr.read()
    old = digests(docs)

    # Version B: every text file changes, three files go, two arrive.
    for path in sorted(docs.iterdir()):
        if path.suffix in {".md", ".html"}:
            path.write_text(path.read_text() + "\n\nRevised for the crash test.\n")
    for name in ("wifi-networks.md", "mobile-phones.md", "acceptable-use-policy.pdf"):
        (docs / name).unlink()
    (docs / "new-one.md").write_text("# Badge printers\n\nBadge printers sit on floor 2.\n")
    (docs / "new-two.md").write_text("# Scanner loans\n\nBorrow a scanner at the depot.\n")
    new = digests(docs)

    from retrieval.manifest import Manifest

    def committed_new() -> int:
        live = Manifest(fresh_client(store), "docs").all()
        return sum(1 for s, e in live.items() if new.get(s) == e.content_hash)

    kills = 0
    for files in (2, 22):  # kill early and late: once this many files are at their new version
        target = committed_new() + files
        proc = run_index(docs, store)
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if committed_new() >= target:
                proc.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.05)
        proc.wait(timeout=60)
        live = check_consistent(store, old, new, embedder)
        assert set(live) <= set(old) | set(new)
    assert kills >= 2, "the runs finished before the kill: nothing was tested"

    final = run_index(docs, store)
    _, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    live = check_consistent(store, old, new, embedder)
    assert {s: e.content_hash for s, e in live.items()} == new
    total = fresh_client(store).get_collection("docs").count()
    assert total == sum(e.n_chunks for e in live.values()), "leftover chunks were not removed"
