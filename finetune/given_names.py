"""Given names for the name rules (``finetune.pii_names``).

Given names come from names-dataset (MIT): 727,556 first names from Facebook profiles, each
with its rank in up to 10 of 105 countries. Loading its pickles takes about 10 s and 1.9 GB
(7 s and 0.94 GB for the first names alone), so the first use derives a compact list, every
one-word first name ranked within the top 1000 of at least one country (55,449 names,
lower-cased, with the best rank; "popular" below means top 300: 18,045 names), frees the
dataset and caches the list in ``$ASSISTANT_NAMES_CACHE`` or else
``$XDG_CACHE_HOME/helpdesk-assistant/names-v1.json.gz`` (``~/.cache`` by default; 290 kB,
written to a temporary file and renamed). Building it costs about 8 s and 0.95 GB of peak
memory, once per machine; later processes load it lazily, on the first bare-name check, in
about 0.05 s and 10 MB. Where the cache cannot be written, each process derives the list and
keeps it in memory. (gender-guesser, used before, is GPLv3: it cannot ship with this
Apache-2.0 project.) The Facebook data also ranks words used as names somewhere ("Data",
"China", "Welcome", "Gift"): those likely in help-desk text are in the word lists.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import logging
import os
import re
import tempfile
from pathlib import Path

_log = logging.getLogger(__name__)


# Given names: names-dataset (MIT) ranks first names per country; it takes ~10 s and ~1 GB to
# load, so a compact derived list is built once and cached on disk (see the module docstring).
NAMES_CACHE_ENV = "ASSISTANT_NAMES_CACHE"
_NAMES_FORMAT = 1  # of the cache file, named after it
_KNOWN_RANK = 1000  # kept: ranked within the top 1000 first names of at least one country
POPULAR_RANK = 300  # "popular" (rules 2-5 without a contact word): within the top 300
# the tokens ``_bare_names`` looks up: one word, maybe joined by hyphens or apostrophes
_NAME_KEY = re.compile(r"(?=.{2})[^\W\d_]+(?:['’-][^\W\d_]+)*")
# a cache file derived by another rule is derived again
NAMES_RULE = f"best rank <= {_KNOWN_RANK}, name ~ {_NAME_KEY.pattern}"


def names_cache_path() -> Path:
    """``$ASSISTANT_NAMES_CACHE``, else ``$XDG_CACHE_HOME/helpdesk-assistant/names-v1.json.gz``."""
    if os.environ.get(NAMES_CACHE_ENV):
        return Path(os.environ[NAMES_CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "helpdesk-assistant" / f"names-v{_NAMES_FORMAT}.json.gz"


def _derive_given_names() -> bytes:
    """The cache file's JSON: lower-cased given name -> best per-country rank (~8 s, ~1 GB).

    names-dataset maps 727,556 first names (scraped from Facebook) to up to 10 countries and
    their rank there. Kept: single words ranked within the top ``_KNOWN_RANK`` somewhere.
    Returns text, not the dict: the few survivors would sit scattered over the arenas of the
    freed pickle and keep about 800 MB resident; parsed afresh, they take about 10 MB.
    """
    import gc
    from importlib.metadata import version

    from names_dataset import NameDataset

    dataset = NameDataset(load_first_names=True, load_last_names=False)
    ranks: dict[str, int] = {}
    for name, info in dataset.first_names.items():
        best = min(info["rank"].values(), default=_KNOWN_RANK + 1)
        if best <= _KNOWN_RANK and _NAME_KEY.fullmatch(name):
            key = name.lower()
            ranks[key] = min(best, ranks.get(key, best))
    del dataset
    gc.collect()
    data = {
        "format": _NAMES_FORMAT,
        "source": f"names-dataset {version('names-dataset')}",
        "rule": NAMES_RULE,
        "names": dict(sorted(ranks.items())),
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _parse_names(document: bytes) -> dict[str, int] | None:
    """The names of a cache file's JSON, or None when it is damaged or from another rule."""
    try:
        data = json.loads(document)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("format") != _NAMES_FORMAT:
        return None
    if data.get("rule") != NAMES_RULE or not isinstance(data.get("names"), dict):
        return None
    return data["names"]


def _write_names_cache(path: Path, document: bytes) -> None:
    """Temp file + rename, so that no reader sees half a file; OSError when not writable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(document)
        os.chmod(tmp, 0o644)  # public data; mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@functools.cache
def given_names() -> dict[str, int]:
    """Lower-cased given name -> best per-country rank (1: the most common name somewhere).

    Loaded on first use, once per process: from the cache file in about 0.05 s and 10 MB, or
    derived from names-dataset (about 8 s, 0.95 GB peak) and cached when the file is missing,
    damaged or from another rule.
    """
    path = names_cache_path()
    try:
        with gzip.open(path, "rb") as f:
            names = _parse_names(f.read())
    except (OSError, EOFError):  # missing, unreadable or truncated
        names = None
    if names is None:
        document = _derive_given_names()
        try:
            _write_names_cache(path, document)
        except OSError as exc:  # read-only home, full disk: keep the list in memory only
            _log.warning("given names kept in memory only, not cached at %s: %s", path, exc)
        names = _parse_names(document)
        assert names is not None
    return names
