"""Pieces shared by the ``assistant`` commands (options, settings, output)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from assistant.settings import load_settings

ConfigOpt = typer.Option(None, "--config", help="YAML settings file.", dir_okay=False)
JsonOpt = typer.Option(False, "--json", help="Print one JSON object as the last line.")


def load(config: Path | None, **overrides):
    return load_settings(config, **overrides)


def emit(result: dict, as_json: bool) -> None:
    """One JSON object on the last line with --json; else aligned ``key: value`` lines."""
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")


def echo_err(line: str) -> None:
    """Progress and problems go to stderr, so stdout stays for the result."""
    typer.echo(line, err=True)


@contextmanager
def progress_bar(shown: bool, label: str) -> Iterator[Callable[[int, int], None]]:
    """``tick(done, total)`` drawing a tqdm bar on stderr while the block runs (nothing
    when not ``shown``, e.g. with --json)."""
    bar = None

    def tick(done: int, total: int) -> None:
        nonlocal bar
        if not shown:
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, desc=label, leave=False)
        bar.update(done - bar.n)

    try:
        yield tick
    finally:
        if bar is not None:
            bar.close()
