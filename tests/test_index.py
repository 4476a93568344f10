"""`assistant index`: real Chroma, real MiniLM embeddings, incremental counts."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "data" / "docs"


def index(docs: Path, store: Path, *extra: str, env: dict | None = None):
    """``assistant index DOCS --store STORE --json EXTRA`` in this process (CliRunner, as
    simonw/llm tests its CLI): the libraries and the embedding model load once for the
    whole module, not once per call. Returns the JSON report and what went to stderr."""
    from typer.testing import CliRunner

    from assistant.cli.main import app

    result = CliRunner().invoke(
        app,
        ["index", str(docs), "--store", str(store), "--json", *extra],
        env={"HF_HUB_OFFLINE": "1", **(env or {})},
        catch_exceptions=False,
    )
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()  # as when the command's process ends
    assert result.exit_code == 0, result.stderr
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
    (docs / "broken.docx").write_bytes(b"PK\x03\x04 not a zip")
    (docs / "huge.txt").write_bytes(b"")
    os.truncate(docs / "huge.txt", 51 * 1024 * 1024)  # sparse: no 51 MiB written
    report, stderr = index(docs, tmp_path / "store")
    assert report["added"] == 3
    assert report["skipped"] == 7
    bad = ("binary.md", "latin1.txt", "empty.md", "broken.pdf", "photo.png", "broken.docx")
    for name in (*bad, "huge.txt"):
        assert f"skipped {name}" in stderr
    assert "Traceback" not in stderr


def test_dry_run_writes_nothing(docs, tmp_path):
    store = tmp_path / "store"
    report, stderr = index(docs, store, "--dry-run")
    assert report["added"] == 3 and report["dry_run"] is True
    assert report["chunks"] == 0
    assert "would add vpn-error-codes.md" in stderr
    indexed, _ = index(docs, store)
    (docs / "guest-wifi.html").unlink()
    report, stderr = index(docs, store, "--dry-run")
    assert report["removed"] == 1 and "would remove guest-wifi.html" in stderr
    assert report["chunks"] == indexed["chunks"]  # nothing was removed for real


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


def test_docx_headings_lists_and_tables():
    from retrieval.loaders import load

    doc = load(DOCS / "hardware-returns.docx", "hardware-returns.docx")
    assert doc.title == "Returning and swapping IT hardware"
    assert "\n## Booking a return\n" in doc.text
    assert "- Pack the charger" in doc.text
    assert "Depot handheld scanner | Depot team lead | End of last shift" in doc.text


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


class ChromaServer:
    """A real `chroma run` on loopback, as a deployment at scale would use; it can be
    stopped and started again on the same port and data folder."""

    def __init__(self, folder: Path) -> None:
        from tests.conftest import free_port

        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self) -> None:
        import time
        import urllib.request

        chroma = Path(sys.executable).parent / "chroma"
        with open(self.folder / "chroma.log", "a") as log:
            self.proc = subprocess.Popen(
                [str(chroma), "run", "--path", str(self.folder / "chroma-data"),
                 "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/api/v2/heartbeat", timeout=2)
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((self.folder / "chroma.log").read_text()) from None
                time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@pytest.fixture
def chroma_server(tmp_path):
    server = ChromaServer(tmp_path)
    server.start()
    yield server
    server.stop()


def test_chroma_server_mode(docs, tmp_path, chroma_server):
    """index --chroma-url writes to the server; a Retriever over HttpClient finds passages;
    with the server stopped the gateway answers ungrounded (no 500), and grounded again once
    the server is back."""
    from fastapi.testclient import TestClient

    from assistant.settings import Settings
    from retrieval.embeddings import SentenceTransformerEmbedder
    from retrieval.retriever import Retriever
    from retrieval.store import open_client
    from tests.conftest import gateway_app
    from tests.fakes import FakeUpstream

    url = chroma_server.url
    first, _ = index(docs, tmp_path / "unused", "--chroma-url", url)
    assert first["added"] == 3 and first["chunks"] > 3
    assert not (tmp_path / "unused").exists()  # nothing written locally
    (docs / "vpn-error-codes.md").unlink()
    again, _ = index(docs, tmp_path / "unused", "--chroma-url", url)
    assert (again["removed"], again["unchanged"]) == (1, 2)

    client = open_client(chroma_url=url)
    retriever = Retriever(client, SentenceTransformerEmbedder("all-MiniLM-L6-v2"))
    hits = retriever.search("guest wifi voucher for a visitor", 3)
    assert hits[0].source == "guest-wifi.html"
    assert all(h.source != "vpn-error-codes.md" for h in retriever.search("TP-204", 5))

    settings = Settings(home=tmp_path / "home", docs_dir=docs, chroma_url=url)
    ask = {"model": "helpdesk-demo", "messages": [{"role": "user",
           "content": "guest wifi voucher for a visitor"}]}  # fmt: skip
    with TestClient(gateway_app(settings, upstream=FakeUpstream(), index=retriever)) as api:
        assert api.post("/v1/chat/completions", json=ask).json()["grounded"] is True
        chroma_server.stop()
        down = api.post("/v1/chat/completions", json=ask)
        assert down.status_code == 200 and down.json()["grounded"] is False, down.text
        chroma_server.start()
        back = api.post("/v1/chat/completions", json=ask).json()
        assert back["grounded"] is True and back["sources"][0]["source"] == "guest-wifi.html"


def test_index_refuses_a_store_that_a_server_holds(docs, tmp_path):
    from retrieval.store import StoreLock

    store = tmp_path / "store"
    with StoreLock(store, "assistant serve"):
        result = subprocess.run(
            [sys.executable, "-m", "assistant", "index", str(docs), "--store", str(store)],
            capture_output=True,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    assert result.returncode == 1
    assert "in use by assistant serve" in result.stderr and "/v1/admin/reindex" in result.stderr


def test_html_keeps_boxed_notes_and_drops_link_columns(tmp_path):
    """DocBook's <div class="sidebar"> is a TIP box (content); a site's sidebar of links
    is navigation. Link density tells them apart."""
    from retrieval.loaders import load

    page = tmp_path / "page.html"
    page.write_text(
        "<html><head><title>APT</title></head><body>"
        '<div class="navheader"><a href="a.html">Prev</a> <a href="b.html">Next</a></div>'
        '<div class="sidebar"><a href="x.html">Home</a> <a href="y.html">Install</a> '
        '<a href="z.html">Networking and firewall setup</a></div>'
        "<h1>The apt-file command</h1><p>apt-file search lists packages that contain a file.</p>"
        '<div class="sidebar"><p class="title"><strong>TIP</strong> Listing a package contents'
        "</p><p>Similar to apt-file list, dpkg -L package lists all files of an installed "
        "package; dpkg -S file finds which installed package a local file belongs to.</p></div>"
        '<aside class="note"><p>Run apt-file update first: the database starts empty.</p></aside>'
        '<aside><a href="1">One</a> <a href="2">Two</a> <a href="3">Three</a></aside>'
        "</body></html>"
    )
    text = load(page, "page.html").text
    assert "dpkg -S file finds which installed package" in text
    assert "Run apt-file update first" in text
    assert "apt-file search lists packages" in text
    for furniture in ("Prev", "Networking and firewall setup", "Three"):
        assert furniture not in text


def test_changed_chunk_settings_re_embed_every_file_and_leave_no_stale_chunk(docs, tmp_path):
    """Chunk size, overlap, headers and prefix are part of each document's version: a change
    re-embeds everything on the next plain run, and the old chunks go."""
    from retrieval.store import open_client

    store = tmp_path / "store"
    first, _ = index(docs, store)
    smaller, _ = index(docs, store, env={"ASSISTANT_CHUNK_TOKENS": "96"})
    assert (smaller["updated"], smaller["unchanged"]) == (3, 0)
    assert smaller["chunks"] > first["chunks"] and smaller["embedded"] == smaller["chunks"]
    client = open_client(store)
    assert client.get_collection("docs").count() == smaller["chunks"]  # no stale chunk left
    again, _ = index(
        docs, store, env={"ASSISTANT_CHUNK_TOKENS": "96", "ASSISTANT_CHUNK_HEADERS": "0"}
    )
    assert (again["updated"], again["unchanged"]) == (3, 0)


def test_a_store_that_cannot_be_written_is_one_error_and_the_index_stays_whole(docs, tmp_path):
    """Disk full during a reindex, made real with a file-size limit on the indexing process
    (writes past it fail as on a full disk): one sentence, no traceback; what was live stays
    searchable; once there is room the next run completes."""
    import resource
    import signal

    from retrieval.embeddings import SentenceTransformerEmbedder
    from retrieval.retriever import Retriever
    from retrieval.store import open_client

    store = tmp_path / "store"
    index(docs, store)
    big = "\n\n".join(f"## Printer fault {i}\n\nFault P-{i:04d} means tray {i % 5} jams." * 3
                      for i in range(60))  # fmt: skip
    (docs / "printer-faults.md").write_text("# Printer faults\n\n" + big)
    size = (store / "chroma.sqlite3").stat().st_size

    def disk_full() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    full = subprocess.run(
        [sys.executable, "-m", "assistant", "index", str(docs), "--store", str(store), "--json"],
        capture_output=True, text=True, preexec_fn=disk_full, timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert full.returncode == 1, full.stderr
    assert "Traceback" not in full.stderr
    assert "the index could not be written" in full.stderr and "disk full" in full.stderr

    retriever = Retriever(open_client(store), SentenceTransformerEmbedder("all-MiniLM-L6-v2"))
    assert retriever.search("guest wifi voucher for a visitor", 3)[0].source == "guest-wifi.html"
    del retriever
    report, _ = index(docs, store)
    assert report["added"] == 1 and report["unchanged"] == 3
