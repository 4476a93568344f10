"""`assistant index`: real Chroma, real MiniLM embeddings, incremental counts."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "data" / "docs"


def index(docs: Path, store: Path, *extra: str):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "assistant",
            "index",
            str(docs),
            "--store",
            str(store),
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("vpn-error-codes.md", "guest-wifi.html", "acceptable-use-policy.pdf"):
        shutil.copy(DOCS / name, folder / name)
    return folder


def test_incremental_add_change_delete_rename(docs, tmp_path):
    store = tmp_path / "store"
    first, _ = index(docs, store)
    assert (first["added"], first["updated"], first["removed"], first["unchanged"]) == (3, 0, 0, 0)
    assert first["chunks"] > 3 and first["embedded"] == first["chunks"]

    again, _ = index(docs, store)
    assert (again["added"], again["unchanged"], again["embedded"]) == (0, 3, 0)
    assert again["chunks"] == first["chunks"]

    vpn = docs / "vpn-error-codes.md"
    vpn.write_text(vpn.read_text() + "\n## TP-999 Test code\n\nA new code for the test.\n")
    (docs / "guest-wifi.html").rename(docs / "visitor-wifi.html")
    (docs / "acceptable-use-policy.pdf").unlink()
    changed, _ = index(docs, store)
    assert changed["updated"] == 1  # vpn-error-codes.md
    assert changed["added"] == 1  # visitor-wifi.html (the renamed file)
    assert changed["removed"] == 2  # guest-wifi.html and the PDF
    assert changed["unchanged"] == 0

    rebuilt, _ = index(docs, store, "--full")
    assert (rebuilt["updated"], rebuilt["added"], rebuilt["unchanged"]) == (2, 0, 0)
    assert rebuilt["chunks"] == changed["chunks"] == rebuilt["embedded"]


def test_bad_files_are_skipped_and_counted(docs, tmp_path):
    (docs / "binary.md").write_bytes(b"\x00\x01\x02garbage")
    (docs / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (docs / "empty.md").write_text("   \n")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    (docs / "photo.png").write_bytes(b"\x89PNG")
    report, stderr = index(docs, tmp_path / "store")
    assert report["added"] == 3
    assert report["skipped"] == 5
    for name in ("binary.md", "latin1.txt", "empty.md", "broken.pdf", "photo.png"):
        assert f"skipped {name}" in stderr
    assert "Traceback" not in stderr


def test_dry_run_writes_nothing(docs, tmp_path):
    store = tmp_path / "store"
    report, _ = index(docs, store, "--dry-run")
    assert report["added"] == 3 and report["dry_run"] is True
    assert report["chunks"] == 0


def test_chunks_carry_citation_metadata(docs, tmp_path):
    import chromadb

    store = tmp_path / "store"
    index(docs, store)
    got = (
        chromadb.PersistentClient(path=str(store))
        .get_collection("docs")
        .get(include=["metadatas", "documents"])
    )
    metas = got["metadatas"]
    assert {m["source"] for m in metas} == {
        "vpn-error-codes.md",
        "guest-wifi.html",
        "acceptable-use-policy.pdf",
    }
    vpn = [m for m in metas if m["source"] == "vpn-error-codes.md"]
    assert any("TP-204" in m["section"] for m in vpn)
    assert vpn[0]["title"] == "VPN error codes and fixes"
    assert {m.get("page") for m in metas if m["source"].endswith(".pdf")} == {1, 2}
    html = " ".join(
        d for d, m in zip(got["documents"], metas, strict=True) if m["source"] == "guest-wifi.html"
    )
    assert "voucher" in html and "intranet.js" not in html and "People finder" not in html


def test_missing_path_is_one_clear_error(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "assistant",
            "index",
            str(tmp_path / "nope"),
            "--store",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 1
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr
