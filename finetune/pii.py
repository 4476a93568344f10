"""Scrub personal data from transcripts before anything is stored or trained on.

Each kind is replaced by a typed placeholder (``<EMAIL>``, ``<PHONE>``, ...) and counted.
Patterns run in a fixed order so that one kind never eats another (a URL's credentials go
before emails, MAC addresses before IPv6). Error codes, version numbers, ticket ids,
dates, times and internal extensions are left alone: the model must learn those.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

PLACEHOLDERS = (
    "URL_SECRET", "EMAIL", "SECRET", "PASSWORD", "MAC", "IPV6", "IPV4", "PHONE",
    "EMPLOYEE_ID", "NAME",
)  # fmt: skip

# scheme://user:password@host  ->  scheme://<URL_SECRET>@host
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@:]+:[^\s/@]+(?=@)")
# ?token=...&sig=...  ->  ?token=<URL_SECRET>
_URL_PARAMS = re.compile(
    r"(?i)([?&](?:access_token|token|api_key|apikey|key|sig|signature|secret|password|pwd|"
    r"auth|code|session|sessionid)=)[^\s&#]+"
)
_EMAIL = re.compile(r"(?i)(?<![\w.+-])[a-z0-9][a-z0-9._%+-]*@[a-z0-9-]+(?:\.[a-z0-9-]+)+")
_SECRETS = [
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}\b"),  # API keys in the sk-... style
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),  # GitHub tokens
    re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b"),  # JWT
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    # long random-looking strings: 24+ characters mixing letters and digits
    re.compile(r"\b(?=[A-Za-z0-9+/_-]*\d)(?=[A-Za-z0-9+/_-]*[A-Za-z])[A-Za-z0-9+/_-]{32,}={0,2}"),
]
# "my password is Summer2026!", "password: Xk9#", "PIN 4821": keep the words, drop the value.
# A value must hold a digit or a symbol, so "password expired" or "password manager" stay.
_PASSWORD = re.compile(
    r"(?i)\b((?:password|passwd|pwd|pw|passcode|passphrase|pin)\b"
    r"(?:\s+(?:is|was|would be|will be|is now))?\s*[:=]?\s*)"
    r"(?=[\"']?[^\s\"',;]*(?:\d|[!@#$%^&*~+=?][^\s\"',;.?!]))"
    r"([\"']?[^\s\"',;]{3,}[\"']?)"
)
_MAC = re.compile(r"(?i)(?<![\w:-])(?:[0-9a-f]{2}([:-]))(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}(?![\w:-])")
_IPV6 = re.compile(
    r"(?i)(?<![\w:])(?:"
    r"(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}"  # full form
    r"|(?=[0-9a-f:]*[0-9a-f]{2})(?:[0-9a-f]{1,4}:){1,6}(?::[0-9a-f]{1,4}){1,6}"  # a::b
    r"|(?:[0-9a-f]{1,4}:){1,7}:(?![0-9a-f])"  # a:: (trailing)
    r"|::(?:[0-9a-f]{1,4}:){0,6}[0-9a-f]{1,4}"  # ::1
    r")(?:%\w+)?(?![\w:])"
)
_IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
    r"(?:/\d{1,2})?(?![\w.])"
)
_PHONE = re.compile(
    r"(?<![\w.+-])(?:"
    r"\+\d{1,3}[\s.-]?(?:\(0\)\s?)?\d[\d\s.-]{6,14}\d"  # +44 7700 900123
    r"|\(?0\d{2,4}\)?[\s.-]?\d{3,4}[\s.-]?\d{3,4}"  # 07700 900331, (01632) 960435
    r"|\(\d{3}\)\s?\d{3}[\s.-]\d{4}"  # (555) 123-4567
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 555-123-4567
    r")(?![\w])"
)
# Greetings, introductions and sign-offs followed by a capitalised name.
_NAME_CUES = re.compile(
    r"(?:\b(?:[Mm]y name is|[Tt]his is|[Ii]t'?s|[Ii] am|[Ii]'m|[Nn]ame:?|[Cc]aller:?|"
    r"[Hh]i|[Hh]ello|[Hh]ey|[Dd]ear|[Mm]orning|[Aa]fternoon|[Ee]vening|[Tt]hanks|[Tt]hank you|"
    r"[Cc]heers|[Rr]egards|[Bb]est|[Ss]peak(?:ing)? (?:to|with)|[Mm]anager is|[Aa]sk for)"
    r"[,:]?\s+)"
    r"((?:[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?)(?:\s+(?:[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?|[A-Z]\.))?)"
    r"(?![A-Za-z])"
)
_NAME_BY_CONTACT = re.compile(
    r"\b[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)? [A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?"
    r"(?=,?\s*\(?<(?:EMPLOYEE_ID|EMAIL|PHONE)>)"
)
_EMPLOYEE_ID = r"\bE\d{6}\b"
# Capitalised words after a cue that are not names.
NOT_NAMES = frozenset(
    """A All An And Any Anyone Are As At Be But By Can Could Did Do Does Everyone Folks For From
    Friday Good Great Guys Have He Hello Here Hey Hi How I If In Is It Its Just Let Lovely
    Monday Morning My No Nobody Not Now OK Ok Okay On Or Our Please Quick Right Saturday See She
    So Sorry Sunday Sure Team Thank Thanks That The Their Then There They This Thursday Today
    Tuesday Very We Wednesday Well What When Where Which Who Why Will With Yes Yesterday You
    Your IT Service Desk Support Helpdesk HR Finance Payroll Accounts Reception Security""".split()  # noqa: SIM905
)


@dataclass
class ScrubReport:
    counts: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, int]:
        return {kind: self.counts[kind] for kind in PLACEHOLDERS if self.counts[kind]}


class Scrubber:
    """Replace personal data by typed placeholders; ``known_names`` are scrubbed everywhere."""

    def __init__(
        self, known_names: Iterable[str] = (), employee_id_pattern: str = _EMPLOYEE_ID
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

        text = sub(_URL_CREDENTIALS, "URL_SECRET", text, keep_group=1)
        text = sub(_URL_PARAMS, "URL_SECRET", text, keep_group=1)
        text = sub(_EMAIL, "EMAIL", text)
        for pattern in _SECRETS:
            text = sub(pattern, "SECRET", text)
        text = sub(_PASSWORD, "PASSWORD", text, keep_group=1)
        text = sub(_MAC, "MAC", text)
        text = sub(_IPV6, "IPV6", text)
        text = sub(_IPV4, "IPV4", text)
        text = sub(_PHONE, "PHONE", text)
        text = sub(self.employee_id, "EMPLOYEE_ID", text)
        text = self._names(text, report)
        return text

    def _names(self, text: str, report: ScrubReport) -> str:
        def cue(match: re.Match) -> str:
            words = match.group(1).split()
            while words and words[-1] in NOT_NAMES:
                words.pop()
            if not words or words[0] in NOT_NAMES:
                return match.group(0)
            report.counts["NAME"] += 1
            name = " ".join(words)
            start = match.start(1) - match.start(0)
            return match.group(0)[:start] + "<NAME>" + match.group(0)[start + len(name) :]

        text = _NAME_CUES.sub(cue, text)
        # "Brenda Hollis, E118204", "Janet Morley, janet@x": a name next to contact data
        text, n = _NAME_BY_CONTACT.subn("<NAME>", text)
        report.counts["NAME"] += n
        if self.known is not None:
            text, n = self.known.subn("<NAME>", text)
            report.counts["NAME"] += n
        # "<NAME> <NAME>" from a first and a last name scrubbed one by one reads as one name
        return re.sub(r"<NAME>(?:\s+<NAME>)+", "<NAME>", text)


def names_from_emails(emails: Iterable[str]) -> set[str]:
    """'priya.nandakumar@x' -> {'Priya', 'Nandakumar'}: names a conversation may mention."""
    names = set()
    for email in emails:
        local = email.split("@", 1)[0]
        for part in re.split(r"[._-]", local):
            if part.isalpha() and len(part) > 2:
                names.add(part.capitalize())
    return names
