"""Names in help-desk text, for the scrubber (``finetune.pii``).

Names: ``<NAME>`` after greetings and introductions ("Hi Priya", "my name is ..."), next to
contact data, for every ``known_names`` word, and without a cue word when the context says
"person". Only capitalised tokens are candidates (not ALL-CAPS, not camel-case like
AnyConnect, not in a path or host name), and never one of ``NOT_NAMES``, ``_FUNCTION_WORDS``
(function words, months, everyday words) or ``_IT_WORDS`` (products, UI labels, places).

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

import functools
import re
from collections.abc import Iterable

from finetune.given_names import POPULAR_RANK, given_names

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


def scrub_names(text: str, known: re.Pattern | None = None) -> tuple[str, int]:
    """Names replaced by ``<NAME>``: after a cue, next to contact data, every ``known`` one,
    and bare ones by rules 1-5; with how many were replaced."""
    count = 0

    def cue(match: re.Match) -> str:
        words = match.group(1).split()
        while words and words[-1] in NOT_NAMES:
            words.pop()
        if not words or words[0] in NOT_NAMES:
            return match.group(0)
        nonlocal count
        count += 1
        name = " ".join(words)
        start = match.start(1) - match.start(0)
        return match.group(0)[:start] + "<NAME>" + match.group(0)[start + len(name) :]

    text = _NAME_CUES.sub(cue, text)
    # "Brenda Hollis, E118204", "Janet Morley, janet@x": a name next to contact data
    text, n = _NAME_BY_CONTACT.subn("<NAME>", text)
    count += n
    if known is not None:
        text, n = known.subn("<NAME>", text)
        count += n
    text, n = _bare_names(text)
    count += n
    # "<NAME> <NAME>" from a first and a last name scrubbed one by one reads as one name
    return re.sub(r"<NAME>(?:\s+<NAME>)+", "<NAME>", text), count


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


def _bare_names(text: str) -> tuple[str, int]:
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
        return text, 0
    never = NOT_NAMES | _FUNCTION_WORDS | _IT_WORDS
    given = given_names()
    rank, popular = functools.partial(_rank, given), functools.partial(_popular, given)

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
    return text, len(spans)


def _rank(given: dict[str, int], word: str) -> int | None:
    """Best per-country rank of a given name, None if unknown ("Jean-Luc": the rarer part)."""
    key = word.lower()
    if key in given:
        return given[key]
    parts = [given.get(part) for part in key.split("-")] if "-" in key else [None]
    return None if None in parts else max(parts)


def _popular(given: dict[str, int], word: str) -> bool:
    found = _rank(given, word)
    return found is not None and found <= POPULAR_RANK


def names_from_emails(emails: Iterable[str]) -> set[str]:
    """'priya.nandakumar@x' -> {'Priya', 'Nandakumar'}: names a conversation may mention."""
    names = set()
    for email in emails:
        local = email.split("@", 1)[0]
        for part in re.split(r"[._-]", local):
            if part.isalpha() and len(part) > 2:
                names.add(part.capitalize())
    return names
