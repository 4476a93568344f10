"""Scrub personal data from transcripts before anything is stored or trained on.

Each kind is replaced by a typed placeholder (``<EMAIL>``, ``<PHONE>``, ...) and counted.
Patterns run in a fixed order so that one kind never eats another (a URL's credentials go
before emails, MAC addresses before IPv6, card and id numbers before phones). Error codes,
version numbers, ticket ids, dates, times and internal extensions are left alone: the model
must learn those.

Checksummed numbers are validated with python-stdnum, never by shape alone:

* ``<CARD>``: 13-19 digits, contiguous or in groups split by single spaces or dashes, with a
  valid Luhn digit and a card-like prefix (2-6; 15 digits only as Amex 34/37, so IMEIs stay).
* ``<IBAN>``: country code, check digits and BBAN, with or without spaces (``stdnum.iban``:
  per-country length and format, then mod 97).
* ``<NATIONAL_ID>``: numbers whose shape is distinctive on its own: US SSN ``123-45-6789``
  (``stdnum.us.ssn`` ranges), Swiss AHV ``756.1234.5678.97``, Belgian ``85.07.30-033.28``,
  French NIR (15 digits), Spanish DNI/NIE, Irish PPS, Italian codice fiscale, UK NINO written
  ``AB 12 34 56 C`` (no checksum exists: prefix rules only). Bare 9-12 digit runs (Dutch BSN,
  German Steuer-ID, UK NHS number, an unformatted SSN or NINO) pass a checksum too often by
  chance, so they count only after a cue word ("BSN", "Steuer-ID", "NHS number", "SSN", ...).

Passwords: ``<PASSWORD>`` replaces the value and keeps the words around it, after "password
is/:/= X", "reset your password to X", "set/changed it to X", "your temporary one is X", "the
code is 123456" (4-8 digits; "error/exit/area/zip ... code" excluded). Outside an explicit
"password" the value must look like one: a digit, a letter and an upper-case letter or symbol
(or 8+ characters), and not a version, a number with a unit (1080p, 5GHz), a time, a hex or
error code (0x80070005, TP-204), a host name or a path: "set it to DHCP", "set it to 1080p"
and "reset it to factory defaults" stay.

Names: see ``finetune.pii_names`` (the rules) and ``finetune.given_names`` (the list of given
names they consult). The patterns are in ``finetune.pii_patterns``.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from finetune.pii_names import NOT_NAMES, scrub_names
from finetune.pii_patterns import (
    CARD,
    CODE,
    EMAIL,
    EMPLOYEE_ID,
    IBAN,
    ID_CUES,
    ID_SHAPES,
    IPV4,
    IPV6,
    MAC,
    NINO,
    NOT_A_SECRET,
    NOT_CODES,
    PASSWORD,
    PASSWORD_PHRASES,
    PHONE,
    SECRETS,
    URL_CREDENTIALS,
    URL_PARAMS,
)

PLACEHOLDERS = (
    "URL_SECRET", "EMAIL", "SECRET", "PASSWORD", "IBAN", "CARD", "NATIONAL_ID", "MAC", "IPV6",
    "IPV4", "PHONE", "EMPLOYEE_ID", "NAME",
)  # fmt: skip


@functools.cache
def _validator(name: str) -> Callable[[str], bool]:
    """python-stdnum's ``is_valid`` for a module path like ``"nl.bsn"``; "nino" by shape."""
    if name == "nino":
        return lambda value: bool(NINO.fullmatch(re.sub(r"\s", "", value.upper())))
    import importlib

    return importlib.import_module(f"stdnum.{name}").is_valid


def _is_card(number: str) -> bool:
    from stdnum import luhn

    digits = re.sub(r"[ -]", "", number)
    if not 13 <= len(digits) <= 19 or digits[0] not in "23456":
        return False
    if len(digits) == 15 and digits[:2] not in ("34", "37"):  # Amex; IMEIs are 15 digits too
        return False
    return luhn.is_valid(digits)


def _password_tail(value: str, strict: bool) -> str | None:
    """None unless ``value`` looks like a secret; else the trailing punctuation to keep."""
    inner, tail = value, ""
    if value[:1] in "\"'`" and len(value) > 2 and value[-1] == value[0]:
        inner = value[1:-1]
    else:
        inner = value.rstrip(".,:?)]")
        tail = value[len(inner) :]
    if len(inner) < (6 if strict else 3) or NOT_A_SECRET.fullmatch(inner):
        return None
    digit = any(c.isdigit() for c in inner)
    letter = any(c.isalpha() for c in inner)
    symbol = any(not c.isalnum() for c in inner)
    if not strict:
        return tail if digit or symbol else None
    mixed_case = any(c.isupper() for c in inner) and any(c.islower() for c in inner)
    return tail if digit and letter and (mixed_case or symbol or len(inner) >= 8) else None


@dataclass
class ScrubReport:
    counts: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, int]:
        return {kind: self.counts[kind] for kind in PLACEHOLDERS if self.counts[kind]}


class Scrubber:
    """Replace personal data by typed placeholders; ``known_names`` are scrubbed everywhere."""

    def __init__(
        self, known_names: Iterable[str] = (), employee_id_pattern: str = EMPLOYEE_ID
    ) -> None:
        self.employee_id = re.compile(employee_id_pattern)
        words = {
            w for name in known_names for w in re.findall(r"[A-Z][a-z]+(?:-[A-Z][a-z]+)?", name)
        }
        words -= NOT_NAMES
        self.known = (
            re.compile(
                r"\b(?:" + "|".join(sorted(map(re.escape, words), key=len, reverse=True)) + r")\b"
            )
            if words
            else None
        )

    def scrub(self, text: str, report: ScrubReport | None = None) -> str:
        report = report if report is not None else ScrubReport()

        def sub(pattern: re.Pattern, kind: str, text: str, keep_group: int | None = None) -> str:
            def replace(match: re.Match) -> str:
                report.counts[kind] += 1
                if keep_group is not None:
                    return match.group(keep_group) + f"<{kind}>"
                return f"<{kind}>"

            return pattern.sub(replace, text)

        text = sub(URL_CREDENTIALS, "URL_SECRET", text, keep_group=1)
        text = sub(URL_PARAMS, "URL_SECRET", text, keep_group=1)
        text = sub(EMAIL, "EMAIL", text)
        for pattern in SECRETS:
            text = sub(pattern, "SECRET", text)
        text = sub(PASSWORD, "PASSWORD", text, keep_group=1)
        text = self._passwords(text, report)
        text = self._checked(text, report)
        text = sub(MAC, "MAC", text)
        text = sub(IPV6, "IPV6", text)
        text = sub(IPV4, "IPV4", text)
        text = sub(PHONE, "PHONE", text)
        text = sub(self.employee_id, "EMPLOYEE_ID", text)
        text = self._names(text, report)
        return text

    def _passwords(self, text: str, report: ScrubReport) -> str:
        for pattern, strict in PASSWORD_PHRASES:

            def phrase(match: re.Match, strict: bool = strict) -> str:
                tail = _password_tail(match.group("value"), strict)
                if tail is None:
                    return match.group(0)
                report.counts["PASSWORD"] += 1
                return match.group("keep") + "<PASSWORD>" + tail

            text = pattern.sub(phrase, text)

        def code(match: re.Match) -> str:
            before = re.search(r"(\w+)\W*$", text[: match.start()])
            if before and before.group(1).lower() in NOT_CODES:
                return match.group(0)
            report.counts["PASSWORD"] += 1
            return match.group("keep") + "<PASSWORD>"

        return CODE.sub(code, text)

    def _checked(self, text: str, report: ScrubReport) -> str:
        """IBANs, card numbers and national ids: a candidate counts if its checksum holds."""
        from stdnum import iban

        def longest(match: re.Match, kind: str, valid: Callable[[str], bool]) -> str:
            # the longest valid prefix that ends on a character: "GB82 WEST ... 32 AB" -> IBAN
            found = match.group(0)
            for end in range(len(found), 0, -1):
                if found[end - 1].isalnum() and valid(found[:end]):
                    report.counts[kind] += 1
                    return f"<{kind}>" + found[end:]
            return found

        text = IBAN.sub(lambda m: longest(m, "IBAN", iban.is_valid), text)
        text = CARD.sub(lambda m: longest(m, "CARD", _is_card), text)
        for pattern, name in ID_SHAPES:
            valid = _validator(name)
            text = pattern.sub(lambda m, v=valid: longest(m, "NATIONAL_ID", v), text)

        def cued(match: re.Match, validators: list[Callable[[str], bool]]) -> str:
            start = match.start("value") - match.start(0)
            value = match.group("value")
            # shrink by whole words: "BSN 111222333 for" -> "111222333"
            ends = [m.start() for m in re.finditer(r"(?<=[A-Z0-9])(?=[ .-]|$)", value)]
            for end in reversed(ends):
                candidate = value[:end]
                if any(valid(candidate) for valid in validators):
                    report.counts["NATIONAL_ID"] += 1
                    return match.group(0)[:start] + "<NATIONAL_ID>" + value[end:]
            return match.group(0)

        for pattern, kinds in ID_CUES:
            validators = [_validator(name) for name in kinds]
            text = pattern.sub(lambda m, v=validators: cued(m, v), text)
        return text

    def _names(self, text: str, report: ScrubReport) -> str:
        text, n = scrub_names(text, self.known)
        report.counts["NAME"] += n
        return text
