"""``/v1/sources/PATH`` serves only what the index could have cited: the indexer's own rule
(``retrieval.indexer.indexed_path``) decides, and anything else answers 404 like a
missing file, whoever asks (an admin's and a signed link's requests skip the permission
check, not this one)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from assistant.settings import load_settings
from retrieval.indexer import IndexReport, scan
from retrieval.retriever import Hit
from tests.conftest import gateway_app
from tests.fakes import FakeIndex, FakeUpstream

ADMIN = {"Authorization": "Bearer adm"}


@pytest.fixture
def docs(tmp_path):
    docs = tmp_path / "docs"
    (docs / "it").mkdir(parents=True)
    (docs / ".git").mkdir()
    (docs / "drafts").mkdir()
    (docs / "guide.md").write_text("# Guide\n\nServed.\n")
    (docs / "it" / "vpn.md").write_text("# VPN\n\nServed.\n")
    (docs / ".hidden.md").write_text("# Hidden\n")
    (docs / ".git" / "notes.md").write_text("# Under a hidden folder\n")
    (docs / "drafts" / ".wip.md").write_text("# A hidden draft\n")
    (docs / "access.yaml").write_text("- path: '**'\n  groups: [everyone]\n")
    (docs / "notes.yaml").write_text("not a document type\n")
    (docs / "script.sh").write_text("echo unsupported\n")
    (docs / "alias").symlink_to(docs / "it")  # a linked folder: the scan does not enter it
    (docs / "same.md").symlink_to(docs / "guide.md")  # a linked file inside: indexed
    (tmp_path / "outside.md").write_text("# Outside the docs folder\n")
    (docs / "out.md").symlink_to(tmp_path / "outside.md")
    return docs


def test_sources_serve_exactly_what_the_indexer_would_index(docs, tmp_path):
    settings = load_settings(home=tmp_path / "home", docs_dir=docs, admin_key="adm")
    indexed = set(scan([docs], IndexReport()))
    candidates = [
        "guide.md", "it/vpn.md", "same.md", ".hidden.md", ".git/notes.md", "drafts/.wip.md",
        "access.yaml", "notes.yaml", "script.sh", "alias/vpn.md", "out.md", "missing.md",
        "it/%2e%2e/guide.md", "it/%2e%2e/.hidden.md", "drafts/%2e%2e/%2e%2e/outside.md",
    ]  # fmt: skip
    claimed = FakeIndex(hits=[Hit(1, path, path, "", None, 0.5, "") for path in candidates])
    app = gateway_app(settings, upstream=FakeUpstream(), index=claimed)  # says yes to every name
    with TestClient(app) as http:
        for headers in ({}, ADMIN):
            served = {
                path
                for path in candidates
                if http.get(f"/v1/sources/{path}", headers=headers).status_code == 200
            }
            # a link out of the docs folder is indexed (a folder of links is a corpus) but
            # never served: nothing outside the docs root is read over HTTP
            assert served == indexed - {"out.md"}
            resp = http.get("/v1/sources/.hidden.md", headers=headers)
            assert resp.status_code == 404
            assert resp.json()["error"]["code"] == "document_not_found"
    assert {"guide.md", "it/vpn.md", "same.md", "out.md"} <= indexed
    assert not indexed & {".hidden.md", ".git/notes.md", "drafts/.wip.md", "alias/vpn.md"}


def test_the_rule_on_names_as_cited(docs):
    from retrieval.indexer import indexed_path

    assert indexed_path(docs, "it/vpn.md") == docs / "it" / "vpn.md"
    assert indexed_path(docs, "it/./vpn.md") == docs / "it" / "vpn.md"
    for name in ("", "/etc/passwd", "it/../guide.md", "..", ".hidden.md", "alias/vpn.md", "it"):
        assert indexed_path(docs, name) is None, name


def test_without_an_index_only_admins_open_documents(docs, tmp_path):
    """No index, no permissions to go by: everyone else gets the 404 of a missing file."""
    settings = load_settings(
        home=tmp_path / "home", docs_dir=docs, admin_key="adm", api_keys=["k1"]
    )
    with TestClient(gateway_app(settings, upstream=FakeUpstream())) as http:
        service = {"Authorization": "Bearer k1"}
        hidden = http.get("/v1/sources/guide.md", headers=service)
        missing = http.get("/v1/sources/missing.md", headers=service)
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json() == missing.json()
        assert hidden.json()["error"]["code"] == "document_not_found"
        assert http.get("/v1/sources/guide.md", headers=ADMIN).status_code == 200
        # a link the server signed when it cited the document still opens it
        assert http.get(http.app.state.services.links.url("guide.md")).status_code == 200
