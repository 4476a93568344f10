"""The Admin tab's analytics: ``AdminAnalytics``, used by ``PageController``.

One request, ``GET /v1/admin/analytics?from=&to=``, as the admin using the page (their key,
or their sign-in session). The report's ``figures`` (the data of each plot) are drawn with
Gradio's own bar plots, the content-gap clusters shown as a table; a CSV of one of the
report's tables is fetched only when asked for (clustering the questions is the slow part).
Like the rest of the page, it imports nothing from ``assistant``.
"""

# Gradio reads the `gr.Request` annotations at runtime: no postponed ones.
import re
import tempfile
from pathlib import Path

import gradio as gr

from ui.client import Client, PageError, session_of

FIGURES = ("questions_per_day", "feedback_per_day", "escalations_per_day", "top_sources",
           "content_gaps")  # fmt: skip
TABLES = ("summary", "daily", "top_sources", "content_gaps")
GAP_HEADERS = ["size", "questions (representative)", "examples", "nearest document", "what to do"]
ACTIONS = {"write": "write a page: no document comes close",
           "improve": "improve the nearest document"}  # fmt: skip
COLOURS = {"grounded": "#22aa77", "not grounded": "#dd6622", "retrieval off": "#999999",
           "liked": "#22aa77", "disliked": "#dd6622", "escalations": "#2277aa"}  # fmt: skip
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
LABEL = 38  # characters of a ranking's label under its bar; the tables carry the whole text


def _percent(share) -> str:
    return "n/a" if share is None else f"{share:.0%}"


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" + ("" if n == 1 else "s")


def summary_markdown(report: dict) -> str:
    """The period's totals in two lines an IT manager reads at a glance."""
    t = report["totals"]
    gaps = report["content_gaps"]
    return (
        f"**{report['from']} to {report['to']}** ({report['timezone']}): "
        f"{t['questions']} questions in {t['conversations']} conversations, "
        f"{_percent(t['grounded_share'])} grounded in the docs, "
        f"{t['liked']} thumbs up / {t['disliked']} down, "
        f"{t['escalations']} tickets ({t['escalations_sent']} sent, "
        f"{t['escalations_failed']} failed, {t['escalations_queued']} queued), "
        f"deflection {_percent(t['deflection_rate'])}.  \n"
        f"Content gaps: {gaps.get('questions', 0)} questions the docs failed, in "
        f"{_count(gaps.get('clusters_total', len(gaps['clusters'])), 'cluster')} "
        f"(the {len(gaps['clusters'])} largest below)."
    )


def gap_rows(report: dict) -> list[list]:
    """One row per content-gap cluster, the largest first."""
    rows = []
    for c in report["content_gaps"]["clusters"]:
        near = c.get("nearest_document") or {}
        nearest = near.get("title") or near.get("source") or "none"
        if near.get("score") is not None:
            nearest += f" ({near['score']:.2f})"
        rows.append([c["size"], c["representative"], " | ".join(c["examples"]), nearest,
                     ACTIONS.get(c.get("action"), "")])  # fmt: skip
    return rows


def make_plots() -> list:
    """The section's empty ``gr.BarPlot``s, one per figure, in ``FIGURES`` order (called
    inside the page's Blocks)."""
    plots = []
    for name in FIGURES:
        common = {"y": "count", "y_title": "count", "y_axis_format": "d",
                  "elem_id": f"plot-{name}", "show_label": False}  # fmt: skip
        if name.endswith("_per_day"):
            plots.append(gr.BarPlot(x="day", color="series", color_map=COLOURS, x_title="day",
                                    x_label_angle=-45, **common))  # fmt: skip
        else:
            plots.append(gr.BarPlot(x="item", sort="-y", x_title="", x_label_angle=-30,
                                    **common))  # fmt: skip
    return plots


def plot_frame(spec: dict):
    """The data of one figure as the ``DataFrame`` its bar plot draws: a row per day and
    series (stacked), or a row per ranked item (labels numbered, cut to ``LABEL``)."""
    import pandas as pd

    if spec["kind"] == "bars":
        rows = [{"day": day, "count": values[i], "series": name}
                for name, values in spec["series"].items()
                for i, day in enumerate(spec["x"])]  # fmt: skip
        return pd.DataFrame(rows, columns=["day", "count", "series"])
    labels = []
    for n, label in enumerate(spec["labels"], 1):  # numbered: equal labels stay apart
        cut = label if len(label) <= LABEL else label[: LABEL - 1] + "…"
        labels.append(f"{n}. {cut}")
    return pd.DataFrame({"item": labels, "count": spec["values"]}, columns=["item", "count"])


def plot(spec: dict):
    """The update of one figure's bar plot: its data and title."""
    empty = spec["kind"] == "ranking" and not spec["values"]
    return gr.update(value=plot_frame(spec),
                     title=spec["title"] + (": none in this period" if empty else ""))  # fmt: skip


class AdminAnalytics:
    """What the Admin tab's analytics section does, over ``client``."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @staticmethod
    def _period(first: str, last: str) -> dict:
        params = {}
        for name, value in (("from", first), ("to", last)):
            value = (value or "").strip()
            if value and not _DAY.fullmatch(value):
                raise PageError(f"'{value}' is not a day: write it as YYYY-MM-DD.", 400)
            if value:
                params[name] = value
        return params

    def show(self, first: str, last: str, key: str, request: gr.Request):
        """Outputs: a summary, one plot per figure, the content-gap rows."""
        try:
            report = self.client.request(
                "GET",
                "/admin/analytics",
                key,
                session=session_of(request),
                params=self._period(first, last),
            ).json()
        except PageError as exc:
            return (f"Problem: {exc}", *(gr.update(),) * (len(FIGURES) + 1))
        except Exception:
            message = "Problem: The server cannot be reached."
            return (message, *(gr.update(),) * (len(FIGURES) + 1))
        figures = report["figures"]
        plots = [plot(figures[name]) for name in FIGURES]
        return (summary_markdown(report), *plots, gap_rows(report))

    def download(self, first: str, last: str, table: str, key: str, request: gr.Request):
        """One of the report's tables as a CSV file, for Gradio to offer."""
        try:
            params = {**self._period(first, last), "format": "csv", "table": table}
            resp = self.client.request(
                "GET", "/admin/analytics", key, session=session_of(request), params=params
            )
        except PageError as exc:
            raise gr.Error(str(exc)) from None
        disposition = resp.headers.get("content-disposition", "")
        name = re.search(r'filename="([^"/\\]+)"', disposition)
        path = Path(tempfile.mkdtemp(prefix="analytics-")) / (
            name.group(1) if name else f"analytics-{table}.csv"
        )
        path.write_text(resp.text, encoding="utf-8")
        return str(path)
