"""From raw transcripts to a clean, scrubbed, split training set.

Read (JSONL, CSV, text logs) -> normalise turns -> scrub PII -> drop empty and
near-duplicate conversations -> split train/eval by conversation, deterministically ->
write ``train.jsonl``, ``eval.jsonl`` and ``report.json``. Nothing unscrubbed is written.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from finetune.errors import FinetuneError
from finetune.pii import Scrubber, ScrubReport
from finetune.pii_names import names_from_emails
from finetune.transcripts import Conversation, ReadReport, read_transcripts

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


@dataclass
class PrepareReport:
    read: int = 0
    kept: int = 0
    dropped_empty: int = 0
    dropped_duplicates: int = 0
    train: int = 0
    eval: int = 0
    pii: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        data = asdict(self)
        data["problems"] = len(self.problems)
        return data


def clean_turns(messages: list[dict]) -> list[dict]:
    """Trim, drop empty turns, merge consecutive turns of one role, drop trailing user turns."""
    out: list[dict] = []
    for message in messages:
        text = message["content"].strip()
        if not text:
            continue
        if out and out[-1]["role"] == message["role"]:
            out[-1]["content"] += "\n" + text
        else:
            out.append({"role": message["role"], "content": text})
    while out and out[-1]["role"] != "assistant":
        out.pop()
    return out


def _shingles(messages: list[dict], n: int = 3) -> set[str]:
    words = re.findall(r"\w+", " ".join(m["content"] for m in messages).lower())
    return {" ".join(words[i : i + n]) for i in range(max(len(words) - n + 1, 1))}


def drop_near_duplicates(
    conversations: list[Conversation], threshold: float = 0.9
) -> tuple[list[Conversation], int]:
    """Keep the first of each group whose word-trigram Jaccard similarity is >= threshold.

    Pairwise, bucketed by size (sets of very different sizes cannot reach the threshold);
    fine for tens of thousands of conversations.
    """
    kept: list[tuple[Conversation, set[str]]] = []
    dropped = 0
    for conv in conversations:
        sig = _shingles(conv.messages)
        duplicate = False
        for _, other in kept:
            small, big = sorted((len(sig), len(other)))
            if big and small / big < threshold:
                continue
            if len(sig & other) / max(len(sig | other), 1) >= threshold:
                duplicate = True
                break
        if duplicate:
            dropped += 1
        else:
            kept.append((conv, sig))
    return [c for c, _ in kept], dropped


def split_of(conversation_id: str, eval_fraction: float, seed: str = "helpdesk") -> str:
    """'eval' or 'train', from a hash of the id: stable across runs, machines and orders."""
    digest = hashlib.sha256(f"{seed}\x00{conversation_id}".encode()).digest()
    return "eval" if int.from_bytes(digest[:8], "big") / 2**64 < eval_fraction else "train"


def prepare(
    data: Path | None,
    output: Path,
    *,
    extra: list[Conversation] = (),
    eval_fraction: float = 0.1,
    near_duplicate: float = 0.9,
    seed: str = "helpdesk",
    log: Callable[[str], None] = print,
) -> PrepareReport:
    """Prepare transcripts from ``data`` (a file or folder) plus ``extra`` conversations.

    ``extra`` (rated answers from the feedback store) always goes to the train side: the
    eval side measures held-out transcripts only.
    """
    output = Path(output)
    if not 0 <= eval_fraction < 1:
        raise FinetuneError("the eval fraction must be at least 0 and below 1")
    read_report = ReadReport()
    conversations: list[Conversation] = []
    if data is not None:
        data = Path(data)
        if not data.exists():
            raise FinetuneError(f"'{data}' does not exist")
        conversations = read_transcripts(data, read_report)
    train_only = {conv.id for conv in extra}
    conversations += list(extra)
    report = PrepareReport(read=len(conversations), problems=list(read_report.problems))
    if not conversations:
        raise FinetuneError(f"no conversations found in '{data}' (JSONL, CSV or text logs)")

    names: set[str] = set()
    for conv in conversations:
        names |= conv.names
        names |= names_from_emails(_EMAIL.findall(" ".join(m["content"] for m in conv.messages)))
    scrubber = Scrubber(names)
    pii = ScrubReport()
    cleaned: list[Conversation] = []
    seen_ids: dict[str, int] = {}
    for conv in conversations:
        turns = clean_turns(conv.messages)
        if not any(m["role"] == "user" for m in turns) or len(turns) < 2:
            report.dropped_empty += 1
            continue
        for turn in turns:
            turn["content"] = scrubber.scrub(turn["content"], pii)
        # ids repeat across sources (two exports may both have "1"): make them unique
        seen_ids[conv.id] = seen_ids.get(conv.id, 0) + 1
        conv_id = conv.id if seen_ids[conv.id] == 1 else f"{conv.id}#{seen_ids[conv.id]}"
        cleaned.append(Conversation(conv_id, turns, conv.origin))
    kept, report.dropped_duplicates = drop_near_duplicates(cleaned, near_duplicate)
    report.kept = len(kept)
    report.pii = pii.as_dict()

    output.mkdir(parents=True, exist_ok=True)
    sides: dict[str, list[dict]] = {"train": [], "eval": []}
    for conv in kept:
        side = "train" if conv.id in train_only else split_of(conv.id, eval_fraction, seed)
        sides[side].append({"id": conv.id, "messages": conv.messages})
    for side, records in sides.items():
        _write_jsonl(output / f"{side}.jsonl", records)
    report.train, report.eval = len(sides["train"]), len(sides["eval"])
    (output / "report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    for problem in report.problems:
        log(problem)
    return report


def _write_jsonl(path: Path, records: list[dict]) -> None:
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)  # never a half-written file under the real name


def read_prepared(path: Path) -> list[dict]:
    """Records of a prepared JSONL file (``{"id", "messages"}``), checked line by line."""
    path = Path(path)
    if not path.is_file():
        raise FinetuneError(f"'{path}' does not exist")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            messages = record["messages"]
            if not all(m["role"] in {"system", "user", "assistant"} for m in messages):
                raise ValueError("roles must be system, user or assistant")
        except (ValueError, KeyError, TypeError) as exc:
            raise FinetuneError(f"{path}:{number}: not a prepared conversation ({exc})") from None
        records.append(record)
    return records
