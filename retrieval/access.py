"""Document permissions: which groups may read which documents (``access.yaml``).

Ordered rules, first match wins; a document no rule matches is readable by no one but
admins. Without a rules file every document is readable by ``everyone`` (any caller)::

    - path: "hr/**"
      groups: [hr]
    - path: "security/*.pdf"
      groups: [security, it-admins]
    - path: "**"
      groups: [everyone]

Paths are matched against the source as cited (relative to the indexed folder, ``/``
separated): ``*`` matches within one folder, ``**`` across folders (``hr/**`` is everything
under ``hr``), ``?`` one character. Each chunk carries a flag per allowed group
(``access:hr: true``), so the dense search filters in Chroma and the keyword index filters
its rows: hidden chunks never enter a ranking, so they cannot leak through scores, counts or
snippets. The rules in force are stored with the index at each reindex (the server reads
them from there), and a change to them rewrites the flags without re-embedding anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from retrieval.errors import RetrievalError

ACCESS_FILE = "access.yaml"  # at the root of the docs folder; never indexed itself
EVERYONE = "everyone"
FLAG = "access:"
GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class AccessError(RetrievalError):
    """An unusable rules file; the message names the file and the line."""


@dataclass(frozen=True)
class Rule:
    path: str
    groups: tuple[str, ...]
    line: int  # 1-based, in the file it came from

    def matches(self, source: str) -> bool:
        return _compile(self.path).fullmatch(source) is not None


class AccessRules:
    """Ordered rules; ``None`` rules (no file) means every document is for everyone."""

    def __init__(self, rules: list[Rule] | None = None) -> None:
        self.rules = rules

    @property
    def restricted(self) -> bool:
        return self.rules is not None

    def groups_for(self, source: str) -> tuple[str, ...]:
        """The groups that may read ``source``; empty when no rule matches (admins only)."""
        if self.rules is None:
            return (EVERYONE,)
        for rule in self.rules:
            if rule.matches(source):
                return rule.groups
        return ()

    def to_json(self) -> str:
        rules = None if self.rules is None else [[r.path, list(r.groups)] for r in self.rules]
        return json.dumps(rules)

    @classmethod
    def from_json(cls, text: str) -> AccessRules:
        data = json.loads(text)
        if data is None:
            return cls(None)
        return cls([Rule(path, tuple(groups), 0) for path, groups in data])

    @classmethod
    def load(cls, path: Path | None) -> AccessRules:
        """Rules from ``path``; no path, or no file there, means everything for everyone."""
        if path is None or not Path(path).exists():
            return cls(None)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AccessError(f"{path}: cannot be read ({exc})") from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, name: str = "access.yaml") -> AccessRules:
        import yaml

        try:
            root = yaml.compose(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "not valid YAML"
            raise AccessError(f"{name}{where}: {problem}") from None
        if root is None:
            return cls([])  # an empty file: nothing matches, admins only
        if not isinstance(root, yaml.SequenceNode):
            raise _error(name, root, "expected a list of rules ('- path: GLOB' with 'groups')")
        return cls([_rule(name, node) for node in root.value])


def _rule(name: str, node) -> Rule:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        raise _error(name, node, "each rule is a mapping with 'path' and 'groups'")
    fields = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.value not in ("path", "groups"):
            raise _error(name, key, f"unknown key '{key.value}' (a rule has 'path' and 'groups')")
        fields[key.value] = value
    for needed in ("path", "groups"):
        if needed not in fields:
            raise _error(name, node, f"the rule has no '{needed}'")
    path = fields["path"]
    if not isinstance(path, yaml.ScalarNode) or not path.value.strip():
        raise _error(name, path, "'path' must be a glob such as 'hr/**'")
    groups = fields["groups"]
    if not isinstance(groups, yaml.SequenceNode):
        raise _error(name, groups, "'groups' must be a list such as [hr, it]")
    names = []
    for item in groups.value:
        value = item.value if isinstance(item, yaml.ScalarNode) else None
        if not isinstance(value, str) or not GROUP.fullmatch(value):
            shown = value if isinstance(value, str) else "a nested value"
            raise _error(
                name,
                item,
                f"group name '{shown}' is not allowed: letters, digits, '.', '_' and '-', "
                "starting with a letter or digit, at most 64 characters",
            )
        names.append(value)
    glob = path.value.strip().lstrip("/")
    return Rule(glob, tuple(dict.fromkeys(names)), node.start_mark.line + 1)


def _error(name: str, node, message: str) -> AccessError:
    return AccessError(f"{name} line {node.start_mark.line + 1}: {message}")


_CACHE: dict[str, re.Pattern] = {}


def _compile(glob: str) -> re.Pattern:
    pattern = _CACHE.get(glob)
    if pattern is None:
        out, i = [], 0
        while i < len(glob):
            if glob.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
            elif glob.startswith("**", i):
                out.append(".*")
                i += 2
            elif glob[i] == "*":
                out.append("[^/]*")
                i += 1
            elif glob[i] == "?":
                out.append("[^/]")
                i += 1
            else:
                out.append(re.escape(glob[i]))
                i += 1
        pattern = _CACHE[glob] = re.compile("".join(out), re.S)
    return pattern


def flags(groups: Iterable[str]) -> dict:
    """Chunk metadata for these allowed groups (plus their list, for people to read)."""
    groups = tuple(groups)
    return {"groups": ",".join(groups), **{FLAG + g: True for g in groups}}


def flag_changes(old: str | None, new: tuple[str, ...]) -> dict:
    """The metadata update that turns chunks allowed to ``old`` into ones allowed to ``new``
    (``None`` values delete a key in Chroma)."""
    before = set(filter(None, (old or "").split(",")))
    changes: dict = {FLAG + g: None for g in before - set(new)}
    changes.update(flags(new))
    return changes


def where(groups: Iterable[str]) -> dict:
    """A Chroma ``where`` filter for chunks readable by any of ``groups``."""
    clauses = [{FLAG + g: True} for g in sorted(set(groups))]
    if not clauses:
        return {FLAG + "-": True}  # no group name starts with '-': matches nothing
    return clauses[0] if len(clauses) == 1 else {"$or": clauses}


def readable(meta: dict, groups: frozenset[str] | None) -> bool:
    """Whether a chunk (by its metadata) is readable by ``groups`` (``None``: an admin)."""
    return groups is None or any(meta.get(FLAG + g) for g in groups)
