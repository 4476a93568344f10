"""The Admin tab's analytics without a browser: ``PageController.analytics`` against the
real gateway in-process (test_page_controller's fixture): what each plot draws, the
content-gap table, the CSV download, and what an admin sees for bad input."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import gradio as gr
import pytest

from tests.fakes import FakeIndex
from tests.test_page_controller import asked, gateway, like, request  # noqa: F401
from ui.analytics import FIGURES, TABLES, plot_frame

OFF_TOPIC = "Is the canteen open on Sunday?"


def nothing_close():
    from retrieval.retriever import Hit

    return [Hit(1, "guest-wifi.html", "Guest Wi-Fi", "", None, 0.12, "FENN-GUEST")]


@pytest.fixture
def used(gateway):  # noqa: F811
    """A gateway where one question was answered from the docs (and liked) and two were not
    (the same one twice), seen by the page of an admin (key "adm")."""
    index = FakeIndex()
    g = gateway(index=index)
    _, answers, _ = asked(g.page, "My VPN says TP-204")[-1]
    g.page.chat.rate(like(1, True), answers, "", request())
    index.hits = nothing_close()  # from now on the docs have nothing close
    asked(g.page, OFF_TOPIC)
    asked(g.page, OFF_TOPIC)
    return g


def test_show_draws_each_figure_and_lists_the_gaps(used):
    summary, *rest = used.page.analytics.show("", "", "adm", request())
    plots, gap_rows = rest[: len(FIGURES)], rest[len(FIGURES)]
    today = date.today().isoformat()
    assert f"to {today}**" in summary and "3 questions in 3 conversations" in summary
    assert "33% grounded in the docs" in summary and "1 thumbs up / 0 down" in summary
    assert "2 questions the docs failed, in 1 cluster (the 1 largest below)" in summary

    drawn = dict(zip(FIGURES, plots, strict=True))
    per_day = drawn["questions_per_day"]["value"]
    assert list(per_day.columns) == ["day", "count", "series"]
    on_today = per_day[per_day["day"] == today].set_index("series")["count"].to_dict()
    assert on_today == {"grounded": 1, "not grounded": 2, "retrieval off": 0}
    assert len(per_day) == 7 * 3  # seven days, three stacked series
    assert "(33% grounded in the docs)" in drawn["questions_per_day"]["title"]
    sources = drawn["top_sources"]["value"]
    assert sources["item"].tolist() == ["1. Acceptable use of IT systems",
                                        "2. VPN error codes and fixes"]  # fmt: skip
    assert sources["count"].tolist() == [1, 1]
    gaps = drawn["content_gaps"]["value"]
    assert gaps["item"].tolist() == [f"1. {OFF_TOPIC}"] and gaps["count"].tolist() == [2]
    assert drawn["escalations_per_day"]["title"].startswith("Tickets asked for per day")

    [row] = gap_rows
    assert row[0] == 2 and row[1] == OFF_TOPIC and OFF_TOPIC in row[2]
    assert row[3].startswith("Guest Wi-Fi (0.12)") and row[4].startswith("write a page")


def test_ranking_labels_are_numbered_and_cut_to_fit():
    spec = {"kind": "ranking", "title": "t", "labels": ["x" * 80, "x" * 80], "values": [5, 3]}
    frame = plot_frame(spec)
    first, second = frame["item"].tolist()
    assert first.startswith("1. ") and second.startswith("2. ") and first != second
    assert len(first) <= 3 + 38 and first.endswith("…")
    empty = plot_frame({"kind": "ranking", "title": "t", "labels": [], "values": []})
    assert empty.empty and list(empty.columns) == ["item", "count"]


def test_each_table_downloads_as_csv(used):
    for table in TABLES:
        path = used.page.analytics.download("", "", table, "adm", request())
        rows = list(csv.reader(io.StringIO(Path(path).read_text("utf-8"))))
        assert Path(path).name.startswith(f"analytics-{table}-") and len(rows) > 1
    gaps = used.page.analytics.download("", "", "content_gaps", "adm", request())
    [_, row] = list(csv.reader(io.StringIO(Path(gaps).read_text("utf-8"))))
    assert row[6] == OFF_TOPIC and row[1] == "2"


@pytest.mark.parametrize(
    "first, last, key, problem",
    [
        ("last week", "", "adm", "'last week' is not a day: write it as YYYY-MM-DD."),
        ("2025-03-09", "2025-03-01", "adm", "is after 'to'"),
        ("", "", "wrong", "Problem: "),
    ],
)
def test_bad_days_and_keys_are_a_problem_line_nothing_drawn(used, first, last, key, problem):
    summary, *rest = used.page.analytics.show(first, last, key, request())
    assert summary.startswith("Problem: ") and problem in summary
    assert all(update == gr.update() for update in rest)
    with pytest.raises(gr.Error):
        used.page.analytics.download(first, last, "daily", key, request())
