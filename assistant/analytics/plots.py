"""The analytics figures (``analytics_export.figures``) drawn with matplotlib, as PNG.

Sized to be read on a laptop screen or in an e-mail (10 x 4.5 inches at 110 dpi, labels
at 10 points and up); day axes thin their labels past two weeks.
"""

from __future__ import annotations

from pathlib import Path

COLOURS = {"grounded": "#2a7", "not grounded": "#d62", "retrieval off": "#999",
           "liked": "#2a7", "disliked": "#d62", "escalations": "#27a"}  # fmt: skip


def draw(spec: dict):
    """One figure (a matplotlib ``Figure``) from its data; made without pyplot, so nothing
    global is kept (the admin tab draws them in the server's threads)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5))
    ax = fig.subplots()
    if spec["kind"] == "bars":
        x = list(range(len(spec["x"])))
        bottom = [0] * len(x)
        for name, values in spec["series"].items():
            ax.bar(x, values, bottom=bottom, label=name, color=COLOURS.get(name))
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        step = max(1, len(x) // 14)
        ax.set_xticks(x[::step], [d[5:] for d in spec["x"][::step]], fontsize=10)
        ax.set_xlabel("day (month-day)", fontsize=10)
        if len(spec["series"]) > 1:
            ax.legend(fontsize=10)
        ax.yaxis.get_major_locator().set_params(integer=True)
    else:
        labels, values = spec["labels"][::-1], spec["values"][::-1]  # the largest on top
        ax.barh(range(len(values)), values, color="#27a")
        ax.set_yticks(range(len(values)), labels, fontsize=10)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v}", va="center", fontsize=9)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if not values:
            ax.text(0.5, 0.5, "none in this period", ha="center", transform=ax.transAxes)
    ax.set_title(spec["title"], fontsize=12)
    fig.tight_layout()
    return fig


def write_pngs(specs: dict[str, dict], out: Path) -> list[Path] | None:
    """``<name>.png`` per figure in ``out``; ``None`` when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    written = []
    for name, spec in specs.items():
        path = Path(out) / f"{name}.png"
        draw(spec).savefig(path, dpi=110)
        written.append(path)
    return written
