"""Fusion, per-document diversity, query cleaning, gold matching and model prefixes."""

from __future__ import annotations

import pytest

from retrieval.embeddings import default_prefixes
from retrieval.evaluation import is_gold, load_questions
from retrieval.fusion import convex, diversify, rrf
from retrieval.query import MAX_QUERY_CHARS, clean_query


def test_convex_fusion_keeps_a_clear_dense_favourite():
    cosine = {"a": 0.70, "b": 0.50, "c": 0.48}
    # "c" is the best keyword match, but 0.2 of weight cannot lift it over a 0.22 lead.
    assert convex(cosine, {"c": 12.0, "b": 3.0}, 0.2) == ["a", "c", "b"]
    # Near-ties are decided by the keywords.
    assert convex({"a": 0.50, "b": 0.49}, {"b": 5.0}, 0.2) == ["b", "a"]
    # No keyword evidence or no weight: the dense order, unchanged.
    assert convex(cosine, {}, 0.2) == ["a", "b", "c"]
    assert convex(cosine, {"c": 9.0}, 0.0) == ["a", "b", "c"]


def test_rrf_rewards_agreement():
    assert rrf([["a", "b", "c"], ["b", "x", "a"]])[:2] == ["b", "a"]
    assert rrf([["a"], []]) == ["a"]


def test_diversify_limits_passages_per_document_in_order():
    doc = {"a1": "a", "a2": "a", "b1": "b", "a3": "a", "c1": "c"}.__getitem__
    order = ["a1", "a2", "b1", "a3", "c1"]
    assert diversify(order, doc, 1) == ["a1", "b1", "c1", "a2", "a3"]
    assert diversify(order, doc, 2) == ["a1", "a2", "b1", "c1", "a3"]
    assert diversify(order, doc, None) == order


@pytest.mark.parametrize(
    ("message", "query"),
    [
        ("hi, quick one: my printer is offline thanks!", "my printer is offline"),
        ("Hello team, sorry to bother you again - VPN says TP-204. Any ideas?", "VPN says TP-204"),
        ("Hey there!! urgent: apt says NO_PUBKEY", "apt says NO_PUBKEY"),
        ("Good morning, how do I map the S: drive? Kind regards", "how do I map the S: drive"),
        ("history of the hive", "history of the hive"),  # 'hi' only as a whole word
        ("heya the yolo printer", "heya the yolo printer"),
        ("set up dns for dthanks", "set up dns for dthanks"),
        ("what does error 0x80070005 mean", "what does error 0x80070005 mean"),
        ("hi", ""),
        ("thanks!", ""),
        ("   ", ""),
    ],
)
def test_clean_query_strips_greetings_and_sign_offs_only_at_the_edges(message, query):
    assert clean_query(message) == query


def test_clean_query_caps_pasted_logs():
    assert len(clean_query("error " * 10_000)) <= MAX_QUERY_CHARS


def test_gold_with_a_folder_matches_the_path_and_a_bare_name_any_folder(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"question": "password on a folder", "gold": ["howto/htaccess.html"]}\n'
        '{"question": "vpn", "gold": ["./guides/vpn.md"]}\n'
    )
    first, second = load_questions(path)
    assert is_gold("howto/htaccess.html", first.gold)
    assert is_gold("manual/en/howto/htaccess.html", first.gold)
    assert not is_gold("rewrite/htaccess.html", first.gold)
    assert not is_gold("myhowto/htaccess.html", first.gold)
    assert is_gold("guides/vpn.md", second.gold)
    assert is_gold("vpn.md", frozenset({"vpn.md"})) and is_gold("a/b/vpn.md", frozenset({"vpn.md"}))


def test_prefixes_follow_the_model_family():
    assert default_prefixes("intfloat/e5-base-v2") == ("query: ", "passage: ")
    assert default_prefixes("intfloat/multilingual-e5-small") == ("query: ", "passage: ")
    assert default_prefixes("BAAI/bge-small-en-v1.5")[0].startswith("Represent this sentence")
    assert default_prefixes("BAAI/bge-small-en-v1.5")[1] == ""
    assert default_prefixes("nomic-ai/nomic-embed-text-v1.5") == (
        "search_query: ",
        "search_document: ",
    )
    assert default_prefixes("sentence-transformers/all-MiniLM-L6-v2") == ("", "")
    assert default_prefixes("thenlper/gte-small") == ("", "")
