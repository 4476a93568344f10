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

Names: ``<NAME>`` after greetings and introductions ("Hi Priya", "my name is ..."), next to
contact data, for every ``known_names`` word, and without a cue word when the context says
"person". Only capitalised tokens are candidates (not ALL-CAPS, not camel-case like
AnyConnect, not in a path or host name), and never one of ``NOT_NAMES``, ``_FUNCTION_WORDS``
(function words, months, everyday words) or ``_IT_WORDS`` (products, UI labels, places).

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

A candidate is a name when:

1. a contact word comes right before it ("tell", "ask", "cc", "ping", "let", "spoke to",
   "passed it to", "email from", "my colleague"...) and it is a known given name ("tell
   Priya", "ask Jürgen", even "ask Grant"); after "Mr"/"Dr"... any capitalised token;
2. a person verb or a possessive follows it ("Priya phoned", "Mark Brown said", "Priya's
   laptop"), or, for a popular given name that is no common word, a plain verb ("Janet gets",
   "Priya from Finance");
3. it is a given name that is no common word (``_WORD_NAMES``: "Grant", "Mark", "Summer"...)
   followed by another capitalised token (the surname, unless a product or place noun):
   "Marcus Brody", "Fatima Zahra Benali";
4. such a given name is joined by "and"/"or"/"&" or a space to a name: "Graham and Janet",
   "Fatima <NAME>";
5. such a popular given name is addressed: "Nathan, please ...", "Thanks for that, Priya.",
   "with me, Layla, but ...".

Rules 2-5 do not fire after "in/at/outside/near ..." ("the room outside Trent says ..."). So
"Will it reboot?", "Grant access", "Mark as read", "April update", "Outlook", "Teams", "Berlin
office", "Cisco AnyConnect", "Jordan building" and sentence-initial words ("Please", "Printer")
stay; a person is missed when the name is outside the list and has no cue ("Ffion Quist
joins": 1128th at best), or is a common word without a cue ("Will Smith joins").
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
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

_log = logging.getLogger(__name__)

PLACEHOLDERS = (
    "URL_SECRET", "EMAIL", "SECRET", "PASSWORD", "IBAN", "CARD", "NATIONAL_ID", "MAC", "IPV6",
    "IPV4", "PHONE", "EMPLOYEE_ID", "NAME",
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
# The phrasings below capture the words to keep as ``keep`` and the candidate as ``value``;
# ``_password_tail`` then decides whether the candidate is a secret.
_VALUE = r"(?P<value>(?P<q>[\"'`]?)[^\s\"'`,;<>]+(?P=q))"
_PW_NOUN = r"(?:password|passwd|pwd|pw|passcode|passphrase|pin)s?"
_PASSWORD_PHRASES = [
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
_CODE = re.compile(
    r"(?i)\b(?P<keep>(?P<noun>code|pin|otp|passcode)\s*(?:is now|is|was|:|=)?\s*)"
    r"(?P<value>\d{4,8})(?![\w/]|[.,:-]\d)"
)
_NOT_CODES = frozenset(
    """error status exit return response result reason http event stop fault bug zip post postal
    area dial country sort product tax source promo discount bar qr sku item part model region
    language currency colour color""".split()  # noqa: SIM905
)
# Values that look mixed but are not secrets: versions, units, times, hex and error codes,
# host names, paths, dates.
_NOT_A_SECRET = re.compile(
    r"v?\d+(?:[.,:/-]\d+)+\S*"  # 2.4.1, 10.0.0.1, 12:30, 2026-02-09, 12/05/2026
    r"|\d+(?:\.\d+)?(?:[A-Za-z]{1,5}|%)"  # 1080p, 5GHz, 100Mbps, 16GB, 50%
    r"|(?i:0x[0-9a-f]+)"
    r"|[A-Z]{1,8}-?\d+[A-Z]?(?:-\d+)?"  # TP-204, INC0012345, KB5034441, AH00124
    r"|[A-Z]{2,}\d*(?:-[A-Za-z]+)+"  # WPA3-Personal, TLS-Strict
    r"|(?i:(?:[a-z0-9-]+\.)+[a-z]{2,})"  # host names
    r"|(?i:[a-z]:\\.*|[/\\~].*|.*://.*)"  # paths, URLs
)
# Card numbers: contiguous, or groups split by one kind of separator (checked afterwards)
_CARD = re.compile(
    r"(?<![\w.,+/-])(?:\d{13,19}|\d{4}(?P<sep>[ -])\d{3,6}(?:(?P=sep)\d{3,6}){1,3})"
    r"(?![\w/]|[.,-]\d)"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
# National ids whose written shape is distinctive enough to check without a cue word.
_ID_SHAPES = [
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
_ID_CUES = [
    (
        re.compile(
            rf"\b(?:{words})\b(?i:\s+(?:number|no|num|nr))?\.?\s*(?:[:#=-]|is|was)?\s*"
            r"(?P<value>[A-Z0-9](?:[A-Z0-9]|[ .-](?=[A-Z0-9])){6,22})"
        ),
        kinds,
    )
    for words, kinds in _ID_CUE_WORDS
]
_NINO = re.compile(r"(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]")
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
# Words that the given-name list also holds (romanisations: "The", "In", "Do"; words used as
# names in a few countries: "Day", "Main", "Welcome") and that are never names in this text.
_FUNCTION_WORDS = frozenset(
    """About After Again Ah Also Am Another Anything Ate Away Back Because Been Before Both Bye
    Come Did Done Each Else En Even Ever Every Few Fine First Five Four Go Got Ha Had Has Her
    Him His Ho Hmm Into Last Later Like Long Lot Made Maybe Me Men Mine Mi Mo More Most Much Must
    Na Next Nine Non Oh One Only Other Over Per Said Same Says Se Should Since Some Soon Still
    Such Take Tell Than Thanks These Those Though Three Through Till To Too Two Uh Um Un Up Us
    Via Was Way Were While Whom Whose Would Ya Yeah Ye Yep Yo Yet January February March April
    May June July August September October November December Easter Christmas Eid Ramadan
    Along Amid Baby Base Believe Best Bright Brilliant Bro Chose Circle Clever Cut Darling Day
    Deny Dim Far Find Fun Hide Junior Lady Late Lay Led Liked Live Lord Low Main Make Mates Mean
    Meet Met Minor Mummy Nice None Nor Owner Papa Real Reason Saw Seller Sender Senior Seven
    Show Sit Six Slow Sum Sweetie Thee Them Unique Welcome Wider Witness Wonder""".split()  # noqa: SIM905
)
# Products, UI labels, places and departments: never a name, wherever they appear.
_IT_WORDS = frozenset(
    """Access Account Accounts Acrobat Adobe Admin Advanced Alexa Alpha Alto Android AnyConnect
    Apple App Apps Archive Asset Assist Atlas Audio Aurora Authenticator Azure Backup Battery Beta
    Bin BitLocker Bluetooth Box Branch Build Building Button Calendar Camera Campus Center Centre
    Chrome Chromebook Cisco Citrix Click Close Cloud Command Confluence Connect Control Cortana
    Cross Dark Delta Dell Depot Desktop Device Devices Display Dock Docker Docs Drive Dropbox Duo
    Echo Edge Edit Editor Entra Excel Exchange Explorer Fedora File Files Finder Firefox Floor
    Focus Folder Format Galaxy Gmail Google Group Hat Helm Help Home House Hub Insert Intune
    Jamf Jenkins Jira Key Keyboard Kindle Lane Laptop Lenovo Light Line Linux Lock Login Logon Mac
    MacBook Mail Manager Menu Microsoft Mobile Mode Monitor Mouse Network Notes Nova Office
    Okta OneDrive OneNote Open Options Outlook Panel Park Password Patch Phoenix Phone Photos
    Pixel Plan Poly Portal Power PowerPoint Press Printer Profile Project Quay Read Red Release
    Remote Reset Restart Road Room Run Safari Sage Samsung Save Scanner Screen Server Settings
    Share SharePoint Sierra Sign Siri Site Skype Slack Square Start Station Storage Store Street
    Surface Sync Tag Task Teams Terminal Tools Tower Ubuntu Unread Update Updates Vault View
    Visio Wallet Webex Windows Wing Word Workday Xero Zoom Paris London Sydney Austin Dallas
    Houston Denver Orlando Adelaide Chester Preston Lincoln Hamilton Geneva Vienna Milan Salem
    Brooklyn Manila Montana Dakota Carolina Kent Devon Chelsea India America Israel Kenya Asia
    Europe York Jersey Berlin Dublin Boston Phoenix Darwin Wellington Kingston Alias Bash Bench
    Block Bus Cap Coffee Dash Data Dev Duplex Exe Furniture Gemini Git Gold Holiday Hyundai
    Image Lighting Mars Mazda Memo Memory Mesh Mini Nano Nav Neo Orange Panic Pipe Ring Samba
    Shell Sony Star Suzuki Swift Tank Titan Tray Zen Africa Angeles Barcelona Brighton British
    China Cyprus Danish Darlington Denmark Doha Florida France Ghana Hill Hindu Irish Jamaica
    Kong Lanka Las Los Luxembourg Macau Madrid Malta Melbourne Muslim Nepal Oman Panama Rica
    Rico Richmond Russian San Santa Sao Shanghai Shenzhen Singapore Swiss Tamil Venice
    Washington Western""".split()  # noqa: SIM905
)
# Given names that are everyday words too: a name only after a contact word or before a verb.
_WORD_NAMES = frozenset(
    """Angel Amber Art Autumn Bay Bill Bo Brook Buck Can Chance Chase Cherry Chip Crystal Dawn Dean
    Destiny Di Do Don Drew Duke Earl Easter Eve Faith Frank Free Gene General Grace Grant Gray
    Guy Haven Heather Hope Hunter Ivy Jack Jade Jet Joy King Lance Le Lee Lily Love Lucky Major
    Mark Max Miles Min Misty Noble Page Pat Pearl Penny Pin Price Prince Queen Rain Ray Rich
    Robin Rock Rose Ruby Sandy Sky Son Song Spring Stone Storm Summer Sun Sunny Tan Trace
    Trinity Victor Violet Wolf Young Beauty Champion Comfort Divine Favour Fortune Gift Given
    Glory Happy Innocent Justice Liberty Mercy Patience Peace Precious Princess Promise Smart
    Success Talent Trust Unity Wisdom""".split()  # noqa: SIM905
)
_WORD = re.compile(r"[^\W\d_]+(?:['’-](?![sS]\b)[^\W\d_]+)*")
# Words right before a name: "tell Priya", "passed it to Marcus", "email from Jürgen".
_CONTACT_CUE = re.compile(
    r"(?:(?i:\b(?:"
    r"tell|ask|call|ring|phone|ping|e-?mail|message|text|cc|bcc|cc'd|remind|contact|thank|"
    r"welcome|congratulations|congrats|told|asked|called|rang|phoned|pinged|e-?mailed|messaged|"
    r"texted|reminded|contacted|give|gave|send|sent|let|lets|show|showed|help|helped|invite|"
    r"invited|meet|met|see|saw|attn|attention|on\s+behalf\s+of|"
    r"(?:spoke|speak|speaking|talk|talked|talking)\s+(?:to|with)|"
    r"(?:check|checked|confirm|confirmed|chat|chatted|meet|met|sit|sat|work|works|worked)\s+with|"
    r"(?:got|get|heard|hear|received)\s+(?:(?:it|this|that|back)\s+)?from|"
    r"(?:call|e-?mail|message|text|note|ticket|request|reply|voicemail|word)\s+from|"
    r"(?:pass|passed|hand|handed|forward|forwarded|assign|assigned|reassign|reassigned|"
    r"escalate|escalated|send|sent|give|gave|introduce|introduced|show|showed)\s+"
    r"(?:(?:it|this|that|them|the\s+\w+)\s+)?(?:over\s+|back\s+)?to|"
    r"colleague|manager|boss|supervisor|teammate|co-?worker|engineer|technician|user|assistant"
    r"))[,:]?|(?P<title>\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame)\.?))\s+$"
)
# Words right after a name: "Priya phoned", "Marcus said", "Priya's laptop".
_PERSON_VERB = re.compile(
    r"^(?:['’]s\b|\s+(?:has\s+|had\s+|have\s+|will\s+|just\s+|also\s+|already\s+)?"
    r"(?:said|says|phoned|called|rang|e-?mailed|mailed|messaged|texted|asked|asks|told|tells|"
    r"wants|wanted|needs|needed|mentioned|reported|thinks|thought|replied|wrote|confirmed|"
    r"approved|approves|signed\s+off|left|joined|sits|works|is\s+off|is\s+away|is\s+on\s+leave)"
    r"\b|\s+here(?=[\s,.!;:]|$))"
)
# Weaker: "Janet gets a link", "Graham is off sick"; only for names that are no common word
_GENERAL_VERB = re.compile(
    r"^\s+(?:is|was|has|had|will|can|could|would|should|gets|got|does|did|needs|uses|from)\b"
)
_AND = re.compile(r"^\s*(?:,\s*)?(?:and|or|&)\s+$")
# "RoomPanel outside Trent says": a place, not a person
_PLACE_BEFORE = re.compile(r"(?i)\b(?:in|at|outside|inside|near|into|opposite|behind|beside)\s+$")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\n(\"“]|\s-)\s*$")


# Given names: names-dataset (MIT) ranks first names per country; it takes ~10 s and ~1 GB to
# load, so a compact derived list is built once and cached on disk (see the module docstring).
NAMES_CACHE_ENV = "ASSISTANT_NAMES_CACHE"
_NAMES_FORMAT = 1  # of the cache file, named after it
_KNOWN_RANK = 1000  # kept: ranked within the top 1000 first names of at least one country
_POPULAR_RANK = 300  # "popular" (rules 2-5 without a contact word): within the top 300
# the tokens ``_bare_names`` looks up: one word, maybe joined by hyphens or apostrophes
_NAME_KEY = re.compile(r"(?=.{2})[^\W\d_]+(?:['’-][^\W\d_]+)*")
# a cache file derived by another rule is derived again
_NAMES_RULE = f"best rank <= {_KNOWN_RANK}, name ~ {_NAME_KEY.pattern}"


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
        "rule": _NAMES_RULE,
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
    if data.get("rule") != _NAMES_RULE or not isinstance(data.get("names"), dict):
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
def _given_names() -> dict[str, int]:
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


@functools.cache
def _validator(name: str) -> Callable[[str], bool]:
    """python-stdnum's ``is_valid`` for a module path like ``"nl.bsn"``; "nino" by shape."""
    if name == "nino":
        return lambda value: bool(_NINO.fullmatch(re.sub(r"\s", "", value.upper())))
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
    if len(inner) < (6 if strict else 3) or _NOT_A_SECRET.fullmatch(inner):
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
        text = self._passwords(text, report)
        text = self._checked(text, report)
        text = sub(_MAC, "MAC", text)
        text = sub(_IPV6, "IPV6", text)
        text = sub(_IPV4, "IPV4", text)
        text = sub(_PHONE, "PHONE", text)
        text = sub(self.employee_id, "EMPLOYEE_ID", text)
        text = self._names(text, report)
        return text

    def _passwords(self, text: str, report: ScrubReport) -> str:
        for pattern, strict in _PASSWORD_PHRASES:

            def phrase(match: re.Match, strict: bool = strict) -> str:
                tail = _password_tail(match.group("value"), strict)
                if tail is None:
                    return match.group(0)
                report.counts["PASSWORD"] += 1
                return match.group("keep") + "<PASSWORD>" + tail

            text = pattern.sub(phrase, text)

        def code(match: re.Match) -> str:
            before = re.search(r"(\w+)\W*$", text[: match.start()])
            if before and before.group(1).lower() in _NOT_CODES:
                return match.group(0)
            report.counts["PASSWORD"] += 1
            return match.group("keep") + "<PASSWORD>"

        return _CODE.sub(code, text)

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

        text = _IBAN.sub(lambda m: longest(m, "IBAN", iban.is_valid), text)
        text = _CARD.sub(lambda m: longest(m, "CARD", _is_card), text)
        for pattern, name in _ID_SHAPES:
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

        for pattern, kinds in _ID_CUES:
            validators = [_validator(name) for name in kinds]
            text = pattern.sub(lambda m, v=validators: cued(m, v), text)
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
        text = _bare_names(text, report)
        # "<NAME> <NAME>" from a first and a last name scrubbed one by one reads as one name
        return re.sub(r"<NAME>(?:\s+<NAME>)+", "<NAME>", text)


def _capitalised(word: str) -> bool:
    """'Priya', 'Jürgen', "O'Neil", 'MacLeod': not 'IT', 'iPhone' or 'AnyConnect'."""
    if not word[0].isupper() or word.isupper() or len(word) < 2:
        return False
    for part in re.split(r"['’-]", word):
        inner = part[1:]
        if part[:2] == "Mc" or (part[:3] == "Mac" and part[3:4].isupper()):
            inner = part[3:] if part[:2] == "Mc" else part[4:]
        if any(c.isupper() for c in inner):
            return False
    return True


def _bare_names(text: str, report: ScrubReport) -> str:
    """Names without a greeting: see rules 1-5 in the module docstring."""
    tokens = [
        m
        for m in _WORD.finditer(text)
        if _capitalised(m.group())
        # not part of a path, host or placeholder: "x.example/Priya", "<NAME>"
        and text[m.start() - 1 : m.start()] not in ("/", "\\", "@", "_", ".", "<")
        and not re.match(r"[/\\@_>]|\.\w", text[m.end() : m.end() + 2])
    ]
    if not tokens:
        return text
    never = NOT_NAMES | _FUNCTION_WORDS | _IT_WORDS
    given = _given_names()

    def rank(word: str) -> int | None:
        """Best per-country rank of a given name, None if unknown ("Jean-Luc": the rarer part)."""
        key = word.lower()
        if key in given:
            return given[key]
        parts = [given.get(part) for part in key.split("-")] if "-" in key else [None]
        return None if None in parts else max(parts)

    def popular(word: str) -> bool:
        found = rank(word)
        return found is not None and found <= _POPULAR_RANK

    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(tokens):
        token, j = tokens[i], i
        word = token.group()
        if word in never:
            i += 1
            continue
        # the surname (and a middle name) right after: "Marcus Brody", "Fatima Zahra Benali"
        while (
            j + 1 < len(tokens)
            and j - i < 2
            and text[tokens[j].end() : tokens[j + 1].start()] == " "
            and tokens[j + 1].group() not in never
            and (j == i or rank(tokens[j].group()) is not None)
        ):
            j += 1
        start, end = token.start(), tokens[j].end()
        before, after = text[max(0, start - 60) : start], text[end : end + 40]
        known = rank(word) is not None
        plain = known and word not in _WORD_NAMES
        popular_plain = plain and popular(word)
        cue = _CONTACT_CUE.search(before)
        verb = _PERSON_VERB.match(after)
        place = _PLACE_BEFORE.search(before)
        if (
            # 1: "tell Priya", "ask Grant", "Dr Brody", "passed it to Marcus Brody"
            (cue and (known or cue.group("title")))
            # 2: "Priya phoned", "Mark Brown said", "Priya's laptop" (not "Summer's update")
            or (known and verb and not place and (plain or verb.group()[0].isspace()))
            or (popular_plain and not place and _GENERAL_VERB.match(after))
            # 3: "Marcus Brody"
            or (plain and j > i)
            # 4: "Priya and Marcus", "Fatima <NAME>"
            or (plain and spans and _AND.match(text[spans[-1][1] : start]))
            or (
                popular_plain
                and j + 1 < len(tokens)
                and _AND.match(text[end : tokens[j + 1].start()])
                and tokens[j + 1].group() not in never
                and tokens[j + 1].group() not in _WORD_NAMES
                and popular(tokens[j + 1].group())
            )
            or (plain and (before.endswith("<NAME> ") or after.startswith(" <NAME>")))
            # 5: "Nathan, please ...", "with me, Layla, but ...", "Thanks for that, Priya."
            or (
                popular_plain
                and not place
                and (
                    (_SENTENCE_START.search(before) and after.startswith(","))
                    or (before.endswith(", ") and re.match(r"[,.!?]", after))
                )
            )
        ):
            spans.append((start, end))
            i = j + 1
            continue
        i += 1
    for start, end in reversed(spans):
        text = text[:start] + "<NAME>" + text[end:]
    report.counts["NAME"] += len(spans)
    return text


def names_from_emails(emails: Iterable[str]) -> set[str]:
    """'priya.nandakumar@x' -> {'Priya', 'Nandakumar'}: names a conversation may mention."""
    names = set()
    for email in emails:
        local = email.split("@", 1)[0]
        for part in re.split(r"[._-]", local):
            if part.isalpha() and len(part) > 2:
                names.add(part.capitalize())
    return names
