"""The patterns the scrubber (``finetune.pii``) runs, in its order: URL credentials,
emails, secrets and passwords, checksummed numbers (cards, IBANs, national ids), MAC and IP
addresses, phones, employee ids."""

from __future__ import annotations

import re

# scheme://user:password@host  ->  scheme://<URL_SECRET>@host
URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@:]+:[^\s/@]+(?=@)")
# ?token=...&sig=...  ->  ?token=<URL_SECRET>
URL_PARAMS = re.compile(
    r"(?i)([?&](?:access_token|token|api_key|apikey|key|sig|signature|secret|password|pwd|"
    r"auth|code|session|sessionid)=)[^\s&#]+"
)
EMAIL = re.compile(r"(?i)(?<![\w.+-])[a-z0-9][a-z0-9._%+-]*@[a-z0-9-]+(?:\.[a-z0-9-]+)+")
SECRETS = [
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
PASSWORD = re.compile(
    r"(?i)\b((?:password|passwd|pwd|pw|passcode|passphrase|pin)\b"
    r"(?:\s+(?:is|was|would be|will be|is now))?\s*[:=]?\s*)"
    r"(?=[\"']?[^\s\"',;]*(?:\d|[!@#$%^&*~+=?][^\s\"',;.?!]))"
    r"([\"']?[^\s\"',;]{3,}[\"']?)"
)
# The phrasings below capture the words to keep as ``keep`` and the candidate as ``value``;
# ``_password_tail`` then decides whether the candidate is a secret.
_VALUE = r"(?P<value>(?P<q>[\"'`]?)[^\s\"'`,;<>]+(?P=q))"
_PW_NOUN = r"(?:password|passwd|pwd|pw|passcode|passphrase|pin)s?"
PASSWORD_PHRASES = [
    # "I reset your password to X", "password has been changed back to X"
    (
        re.compile(
            rf"(?i)\b(?P<keep>{_PW_NOUN}\b(?:\s+[\w']+){{0,4}}?\s+(?:back\s+)?(?:to|as)\s+){_VALUE}"
        ),
        False,
    ),
    # "set it to X", "changed it to X for you"
    (
        re.compile(
            r"(?i)\b(?P<keep>(?:(?:re)?set|chang(?:e|ed)|updated?|switched|made)\s+"
            rf"(?:it|that|this|them|yours|hers|his|theirs)\s+(?:back\s+)?to\s+){_VALUE}"
        ),
        True,
    ),
    # "your temporary one is X", "new pw: X", "the initial login = X"
    (
        re.compile(
            r"(?i)\b(?P<keep>(?:temporary|temp|new|one-time|initial|default)\s+"
            r"(?:one|password|passwd|pwd|pw|passcode|passphrase|login|credentials?)\s*"
            rf"(?:is now|is|was|will be|:|=)\s*){_VALUE}"
        ),
        True,
    ),
]
# "the code is 739204", "PIN: 4821", "your OTP 552910": 4-8 digits after a code word
CODE = re.compile(
    r"(?i)\b(?P<keep>(?P<noun>code|pin|otp|passcode)\s*(?:is now|is|was|:|=)?\s*)"
    r"(?P<value>\d{4,8})(?![\w/]|[.,:-]\d)"
)
NOT_CODES = frozenset(
    """error status exit return response result reason http event stop fault bug zip post postal
    area dial country sort product tax source promo discount bar qr sku item part model region
    language currency colour color""".split()  # noqa: SIM905
)
# Values that look mixed but are not secrets: versions, units, times, hex and error codes,
# host names, paths, dates.
NOT_A_SECRET = re.compile(
    r"v?\d+(?:[.,:/-]\d+)+\S*"  # 2.4.1, 10.0.0.1, 12:30, 2026-02-09, 12/05/2026
    r"|\d+(?:\.\d+)?(?:[A-Za-z]{1,5}|%)"  # 1080p, 5GHz, 100Mbps, 16GB, 50%
    r"|(?i:0x[0-9a-f]+)"
    r"|[A-Z]{1,8}-?\d+[A-Z]?(?:-\d+)?"  # TP-204, INC0012345, KB5034441, AH00124
    r"|[A-Z]{2,}\d*(?:-[A-Za-z]+)+"  # WPA3-Personal, TLS-Strict
    r"|(?i:(?:[a-z0-9-]+\.)+[a-z]{2,})"  # host names
    r"|(?i:[a-z]:\\.*|[/\\~].*|.*://.*)"  # paths, URLs
)
# Card numbers: contiguous, or groups split by one kind of separator (checked afterwards)
CARD = re.compile(
    r"(?<![\w.,+/-])(?:\d{13,19}|\d{4}(?P<sep>[ -])\d{3,6}(?:(?P=sep)\d{3,6}){1,3})"
    r"(?![\w/]|[.,-]\d)"
)
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
# National ids whose written shape is distinctive enough to check without a cue word.
ID_SHAPES = [
    (re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])"), "us.ssn"),
    (re.compile(r"(?<![\w.])756\.\d{4}\.\d{4}\.\d{2}(?![\w.])"), "ch.ssn"),
    (re.compile(r"(?<![\w.])\d{2}\.\d{2}\.\d{2}-\d{3}\.\d{2}(?![\w.])"), "be.nn"),
    (
        re.compile(r"(?<!\w)[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}(?!\w)"),
        "fr.nir",
    ),
    (re.compile(r"\b\d{8}-?[A-Z]\b"), "es.dni"),
    (re.compile(r"\b[XYZ]-?\d{7}-?[A-Z]\b"), "es.nie"),
    (re.compile(r"\b\d{7}[A-W][ABHTWX]?\b"), "ie.pps"),
    (
        re.compile(r"\b[A-Z]{6}[\dLMNP-V]{2}[A-EHLMPR-T][\dLMNP-V]{2}[A-Z][\dLMNP-V]{3}[A-Z]\b"),
        "it.codicefiscale",
    ),
    (re.compile(r"\b[A-Z]{2} \d{2} \d{2} \d{2} [A-D]\b"), "nino"),
]
_ID_ANY = (
    "us.ssn", "nl.bsn", "de.idnr", "gb.nhs", "fr.nir", "es.dni", "es.nie", "ie.pps",
    "it.codicefiscale", "ch.ssn", "be.nn", "nino",
)  # fmt: skip
# A cue word names the ids it announces ("BSN 111222333", "NHS number: 943 476 5919",
# "Steuer-ID 36 574 261 809"); a generic "ID number" tries them all.
_ID_CUE_WORDS = [
    (r"BSN|(?i:burgerservicenummer|sofinummer)", ("nl.bsn",)),
    (r"SSN|(?i:social\s+security)", ("us.ssn",)),
    (r"NHS", ("gb.nhs",)),
    (r"NINO|NI|(?i:national\s+insurance)", ("nino",)),
    (r"IdNr|(?i:steuer-?\s?id(?:entifikationsnummer)?|steuer-?idnr)", ("de.idnr",)),
    (r"NIR|INSEE", ("fr.nir",)),
    (r"DNI|NIE", ("es.dni", "es.nie")),
    (r"PPSN?", ("ie.pps",)),
    (r"AHV|AVS", ("ch.ssn",)),
    (r"(?i:codice\s+fiscale)", ("it.codicefiscale",)),
    (
        r"TIN|(?i:tax\s+id|national\s+id(?:entity)?|personal\s+(?:id|number)|"
        r"(?:id|identity)\s+(?:number|no|card))",
        _ID_ANY,
    ),
]
ID_CUES = [
    (
        re.compile(
            rf"\b(?:{words})\b(?i:\s+(?:number|no|num|nr))?\.?\s*(?:[:#=-]|is|was)?\s*"
            r"(?P<value>[A-Z0-9](?:[A-Z0-9]|[ .-](?=[A-Z0-9])){6,22})"
        ),
        kinds,
    )
    for words, kinds in _ID_CUE_WORDS
]
NINO = re.compile(r"(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]")
MAC = re.compile(r"(?i)(?<![\w:-])(?:[0-9a-f]{2}([:-]))(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}(?![\w:-])")
IPV6 = re.compile(
    r"(?i)(?<![\w:])(?:"
    r"(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}"  # full form
    r"|(?=[0-9a-f:]*[0-9a-f]{2})(?:[0-9a-f]{1,4}:){1,6}(?::[0-9a-f]{1,4}){1,6}"  # a::b
    r"|(?:[0-9a-f]{1,4}:){1,7}:(?![0-9a-f])"  # a:: (trailing)
    r"|::(?:[0-9a-f]{1,4}:){0,6}[0-9a-f]{1,4}"  # ::1
    r")(?:%\w+)?(?![\w:])"
)
IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
    r"(?:/\d{1,2})?(?![\w.])"
)
PHONE = re.compile(
    r"(?<![\w.+-])(?:"
    r"\+\d{1,3}[\s.-]?(?:\(0\)\s?)?\d[\d\s.-]{6,14}\d"  # +44 7700 900123
    r"|\(?0\d{2,4}\)?[\s.-]?\d{3,4}[\s.-]?\d{3,4}"  # 07700 900331, (01632) 960435
    r"|\(\d{3}\)\s?\d{3}[\s.-]\d{4}"  # (555) 123-4567
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 555-123-4567
    r")(?![\w])"
)
EMPLOYEE_ID = r"\bE\d{6}\b"
