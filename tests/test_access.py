"""Document permissions: access.yaml rules, reader flags written by the indexer, and the
retriever showing each caller only what their groups may read (real Chroma, real MiniLM)."""

from __future__ import annotations

import sys

import pytest

from retrieval.access import AccessError, AccessRules, flag_changes, flags, where

RULES = """\
- path: "hr/**"
  groups: [hr]
- path: "security/*.md"
  groups: [security, it-admins]
- path: "**"
  groups: [everyone]
"""


def test_first_matching_rule_wins_and_globs_follow_folders():
    rules = AccessRules.parse(RULES)
    assert rules.groups_for("hr/salaries.md") == ("hr",)
    assert rules.groups_for("hr/2026/bonus.pdf") == ("hr",)
    assert rules.groups_for("security/incident.md") == ("security", "it-admins")
    assert rules.groups_for("security/deep/incident.md") == ("everyone",)  # * stays in a folder
    assert rules.groups_for("hrx/notes.md") == ("everyone",)  # not the hr folder
    assert rules.groups_for("vpn.md") == ("everyone",)
    only_hr = AccessRules.parse('- path: "hr/**"\n  groups: [hr]\n')
    assert only_hr.groups_for("vpn.md") == ()  # no rule matches: admins only
    assert AccessRules(None).groups_for("anything.md") == ("everyone",)  # no file at all
    assert AccessRules.parse("").groups_for("vpn.md") == ()
    round_trip = AccessRules.from_json(rules.to_json())
    assert round_trip.groups_for("security/incident.md") == ("security", "it-admins")
    assert AccessRules.from_json(AccessRules(None).to_json()).restricted is False


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('- path: "hr/**"\n  groups: [hr, "fin ance"]\n', 2, "group name 'fin ance'"),
        ('- path: "hr/**"\n  groups: [hr, "../x"]\n', 2, "group name '../x'"),
        ('- path: "hr/**"\n  groups: hr\n', 2, "'groups' must be a list"),
        ('- path: "hr/**"\n- path: "**"\n  groups: [everyone]\n', 1, "no 'groups'"),
        ('- path: "hr/**"\n  groups: [hr]\n  grups: [x]\n', 3, "unknown key 'grups'"),
        ("path: hr\ngroups: [hr]\n", 1, "expected a list of rules"),
        ('- path: "hr/**"\n  groups: [hr\n', 3, ""),  # broken YAML
    ],
)
def test_invalid_rules_name_the_line(text, line, words):
    with pytest.raises(AccessError) as err:
        AccessRules.parse(text, "access.yaml")
    assert f"access.yaml line {line}" in str(err.value) and words in str(err.value)


def test_flags_and_filters():
    assert flags(("hr", "it")) == {"groups": "hr,it", "access:hr": True, "access:it": True}
    changes = flag_changes("hr,it", ("everyone",))
    assert changes == {"access:hr": None, "access:it": None, "groups": "everyone",
                       "access:everyone": True}  # fmt: skip
    assert where({"hr"}) == {"access:hr": True}
    assert where({"hr", "everyone"}) == {"$or": [{"access:everyone": True}, {"access:hr": True}]}


@pytest.fixture(scope="module")
def embedder():
    from retrieval.embeddings import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder("sentence-transformers/all-MiniLM-L6-v2")


def _docs(tmp_path):
    docs = tmp_path / "docs"
    (docs / "hr").mkdir(parents=True)
    (docs / "hr" / "salaries.md").write_text(
        "# Salary bands 2026\n\nThe salary band of a senior engineer is 80-95k. "
        "Bonus payouts happen in March. Code HRX-991 marks a confidential review.\n"
    )
    (docs / "vpn.md").write_text(
        "# VPN\n\nConnect with TunnelPoint. Error TP-204 means the certificate expired.\n"
    )
    (docs / "printing.md").write_text("# Printing\n\nSend jobs to FollowMe and badge in.\n")
    (docs / "access.yaml").write_text('- path: "hr/**"\n  groups: [hr]\n- path: "**"\n'
                                      "  groups: [everyone]\n")  # fmt: skip
    return docs


def _index(client, embedder, docs):
    from retrieval.access import AccessRules
    from retrieval.store import build_indexer

    indexer = build_indexer(
        client=client,
        collection="docs",
        embedder=embedder,
        chunk_tokens=200,
        chunk_overlap_tokens=30,
        access=AccessRules.load(docs / "access.yaml"),
    )
    return indexer.run([docs])


EVERYONE = frozenset({"everyone"})
HR = frozenset({"everyone", "hr"})


def test_hidden_documents_never_reach_other_groups(tmp_path, embedder):
    from retrieval.retriever import Retriever
    from retrieval.store import open_client

    docs = _docs(tmp_path)
    client = open_client(tmp_path / "store")
    report = _index(client, embedder, docs)
    assert report.added == 3 and not report.skipped  # access.yaml itself is not a document
    retriever = Retriever(client, embedder)
    # the HR page's exact title, its rare code, and a paraphrase: none reach 'everyone'
    for query in ("Salary bands 2026", "HRX-991", "how much does a senior engineer earn"):
        for mode in ("dense", "keyword", "hybrid"):
            hits = retriever.search(query, 5, mode=mode, groups=EVERYONE)
            assert all(h.source != "hr/salaries.md" for h in hits), (query, mode)
            hr_hits = retriever.search(query, 5, mode=mode, groups=HR)
            assert any(h.source == "hr/salaries.md" for h in hr_hits), (query, mode)
    # admins (no filter) see everything; other groups' documents stay visible to HR
    assert retriever.search("HRX-991", 1, groups=None)[0].source == "hr/salaries.md"
    assert retriever.search("TP-204 certificate", 1, groups=HR)[0].source == "vpn.md"
    assert retriever.readable("vpn.md", EVERYONE)
    assert not retriever.readable("hr/salaries.md", EVERYONE)
    assert retriever.readable("hr/salaries.md", HR)
    assert not retriever.readable("hr/missing.md", HR)


def test_changed_rules_rewrite_flags_without_embedding(tmp_path, embedder):
    from retrieval.access import AccessError
    from retrieval.retriever import Retriever
    from retrieval.store import open_client

    docs = _docs(tmp_path)
    client = open_client(tmp_path / "store")
    _index(client, embedder, docs)
    retriever = Retriever(client, embedder)
    assert not retriever.search("HRX-991", 3, mode="keyword", groups=EVERYONE)

    (docs / "access.yaml").write_text('- path: "**"\n  groups: [everyone]\n')
    report = _index(client, embedder, docs)
    assert report.embedded == 0 and report.unchanged == 3 and report.access_updated == 1
    assert retriever.search("HRX-991", 1, mode="keyword", groups=EVERYONE)[0].source == (
        "hr/salaries.md"
    )
    assert retriever.search("HRX-991", 1, mode="dense", groups=EVERYONE)
    again = _index(client, embedder, docs)
    assert again.access_updated == 0 and again.embedded == 0

    # a broken file stops the next run before anything changes: the old rules stay
    (docs / "access.yaml").write_text('- path: "hr/**"\n  groups: [h r]\n')
    with pytest.raises(AccessError, match="line 2"):
        _index(client, embedder, docs)
    assert retriever.readable("hr/salaries.md", EVERYONE)


def test_an_index_from_before_permissions_is_searched_unfiltered_until_reindexed(
    tmp_path, embedder
):
    from retrieval.retriever import Retriever
    from retrieval.store import open_client

    docs = _docs(tmp_path)
    (docs / "access.yaml").unlink()
    client = open_client(tmp_path / "store")
    _index(client, embedder, docs)
    # what an older version left: chunks without flags and no rules recorded
    chunks = client.get_collection("docs")
    found = chunks.get(include=["metadatas"])
    chunks.update(
        ids=found["ids"],
        metadatas=[{"groups": None, "access:everyone": None} for _ in found["ids"]],
    )
    manifest = client.get_collection("docs.manifest")
    meta = dict(manifest.metadata)
    meta.pop("access")
    meta["revision"] += 1
    manifest.modify(metadata=meta)
    retriever = Retriever(client, embedder)
    assert retriever.search("TP-204", 1, groups=EVERYONE)[0].source == "vpn.md"
    report = _index(client, embedder, docs)  # writes the flags, embeds nothing
    assert report.embedded == 0 and report.access_updated == 3
    assert retriever.search("TP-204", 1, groups=EVERYONE)[0].source == "vpn.md"
    assert retriever.search("TP-204", 1, groups=frozenset({"x"})) == []


def _index_command(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """``assistant index ARGS`` in-process: exit status, stdout, stderr. It must stop before
    loading the embedding model (and so before opening the store)."""
    import assistant.knowledge.factories
    from assistant.cli.main import main

    def no_model(settings):
        raise AssertionError("the embedding model was loaded")

    monkeypatch.setattr(assistant.knowledge.factories, "make_embedder", no_model)
    monkeypatch.setattr(sys, "argv", ["assistant", "index", *map(str, args)])
    with pytest.raises(SystemExit) as exited:
        main()
    return (exited.value.code, *capsys.readouterr())


def test_the_index_command_refuses_invalid_rules_and_leaves_the_store(
    tmp_path, embedder, monkeypatch, capsys
):
    from retrieval.retriever import Retriever
    from retrieval.store import open_client

    docs = _docs(tmp_path)
    client = open_client(tmp_path / "store")
    _index(client, embedder, docs)
    manifest = dict(client.get_collection("docs.manifest").metadata)
    # would open the HR pages to everyone, were it valid
    (docs / "access.yaml").write_text('- path: "**"\n  groups: [everyone, "h r"]\n')
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ASSISTANT_ACCESS_FILE", raising=False)
    code, out, err = _index_command(monkeypatch, capsys, docs, "--store", tmp_path / "store")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith(f"error: {docs / 'access.yaml'} line 2: group name 'h r' is not")
    assert dict(client.get_collection("docs.manifest").metadata) == manifest
    assert not Retriever(client, embedder).readable("hr/salaries.md", EVERYONE)  # old rules


def test_the_access_file_setting_is_honoured(tmp_path, monkeypatch, capsys):
    from assistant.errors import APIError
    from assistant.knowledge.factories import access_rules
    from assistant.knowledge.index import IndexService
    from assistant.settings import load_settings

    docs = _docs(tmp_path)  # its own access.yaml keeps hr/** for group hr
    elsewhere = tmp_path / "policy" / "corp-access.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text('- path: "**"\n  groups: [everyone]\n')
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ASSISTANT_ACCESS_FILE", str(elsewhere))
    settings = load_settings(docs_dir=docs)
    assert settings.access_file == elsewhere
    assert access_rules(settings, [docs]).groups_for("hr/salaries.md") == ("everyone",)

    # a broken file there stops a reindex and the index command, though the docs' own is fine
    elsewhere.write_text('- path: "**"\n  groups: everyone\n')
    expected = f"{elsewhere} line 2: 'groups' must be a list such as [hr, it]"

    class NoJobs:
        def submit(self, *args):
            raise AssertionError("a job was started")

    with pytest.raises(APIError) as refused:
        IndexService(settings, None, None, NoJobs()).start_reindex(
            collection=None, path=None, full=False, dry_run=False
        )
    assert (refused.value.status, refused.value.code) == (400, "invalid_access_rules")
    assert refused.value.message == expected
    code, out, err = _index_command(monkeypatch, capsys, docs, "--store", tmp_path / "store")
    assert (code, out, err) == (1, "", f"error: {expected}\n")
    assert not (tmp_path / "store").exists()
