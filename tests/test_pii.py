"""PII scrubbing: a table of tricky cases, and of things that must survive."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from finetune import given_names
from finetune.pii import Scrubber, ScrubReport
from finetune.pii_names import names_from_emails

ROOT = Path(__file__).resolve().parents[1]

SCRUBBED = [
    ("mail me at priya.nandakumar@fennmoor.example please", "<EMAIL>", "EMAIL"),
    ("Reach me: J.O'Neil+it@Mail.Co.UK.", "<EMAIL>", "EMAIL"),
    ("call me back on 07700 900331", "<PHONE>", "PHONE"),
    ("my mobile is +44 7700 900123 or +44 (0)20 7946 0958", "<PHONE>", "PHONE"),
    ("US office (555) 123-4567", "<PHONE>", "PHONE"),
    ("desk line 01632 960435", "<PHONE>", "PHONE"),
    ("my laptop is on 10.20.4.117 now", "<IPV4>", "IPV4"),
    ("the subnet 192.168.10.0/24 is down", "<IPV4>", "IPV4"),
    ("ipv6 is fe80::1c2b:3dff:fe4e:5a6b%eth0", "<IPV6>", "IPV6"),
    ("gateway 2001:db8:85a3:0:0:8a2e:370:7334", "<IPV6>", "IPV6"),
    ("server at 2001:db8::1 answers", "<IPV6>", "IPV6"),
    ("MAC 3C:22:FB:9A:10:7E on the dock", "<MAC>", "MAC"),
    ("mac address 3c-22-fb-9a-10-7e", "<MAC>", "MAC"),
    (
        "open https://admin:S3cret!@nas.fennmoor.example/share",
        "https://<URL_SECRET>@",
        "URL_SECRET",
    ),
    ("link https://x.example/reset?token=abc123XYZ&user=2", "?token=<URL_SECRET>", "URL_SECRET"),
    ("my password is Summer2026! can you check", "password is <PASSWORD>", "PASSWORD"),
    ("temp password: Xk9#mm2", "<PASSWORD>", "PASSWORD"),
    ("pwd=hunter22", "<PASSWORD>", "PASSWORD"),
    ("the wifi passphrase is 'blue-tractor-88'", "<PASSWORD>", "PASSWORD"),
    ("key AKIAIOSFODNN7EXAMPLE leaked", "<SECRET>", "SECRET"),
    ("token sk-proj-abcdefghijklmnop1234567890", "<SECRET>", "SECRET"),
    ("bearer 3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a", "<SECRET>", "SECRET"),
    ("employee number E204517", "<EMPLOYEE_ID>", "EMPLOYEE_ID"),
    ("Brenda Hollis, E118204", "<EMPLOYEE_ID>", "EMPLOYEE_ID"),
    ("hi, it's Martin from the yard", "it's <NAME> from", "NAME"),
    ("My name is Aoife Byrne and I can't log in", "My name is <NAME> and", "NAME"),
    ("Thanks Brenda. For security I'll call", "Thanks <NAME>.", "NAME"),
    ("Regards, Priya Nandakumar, Finance", "Regards, <NAME>, Finance", "NAME"),
    ("my manager is Colin Shaw in payables", "manager is <NAME> in", "NAME"),
    ("Brenda Hollis, E118204", "<NAME>, <EMPLOYEE_ID>", "NAME"),
    ("Janet Morley, janet.m@insurer.example, adjuster", "<NAME>, <EMAIL>", "NAME"),
    # passwords in any phrasing: the value goes, the words stay
    ("I reset your password to Winter2024!xq", "I reset your password to <PASSWORD>", "PASSWORD"),
    ("ok, set it to Hunter22! and try again", "set it to <PASSWORD> and try", "PASSWORD"),
    ("your temporary one is Blue-Sky-42", "your temporary one is <PASSWORD>", "PASSWORD"),
    ("new pw: x7#kd9", "new pw: <PASSWORD>", "PASSWORD"),
    ("the code is 739204", "the code is <PASSWORD>", "PASSWORD"),
    ("changed it to Winter2024!xq for you", "changed it to <PASSWORD> for you", "PASSWORD"),
    ("your one-time code: 552910", "code: <PASSWORD>", "PASSWORD"),
    # card numbers, Luhn-checked
    ("card 4111 1111 1111 1111 exp 12/27", "card <CARD> exp 12/27", "CARD"),
    ("it was 5500-0055-5555-5559", "it was <CARD>", "CARD"),
    ("amex 378282246310005.", "amex <CARD>.", "CARD"),
    # IBANs, checksum-validated, with or without spaces
    ("IBAN GB82 WEST 1234 5698 7654 32 please", "IBAN <IBAN> please", "IBAN"),
    ("pay to DE89370400440532013000.", "pay to <IBAN>.", "IBAN"),
    # national ids by checksum (and shape)
    ("my SSN is 536-90-4399", "my SSN is <NATIONAL_ID>", "NATIONAL_ID"),
    ("BSN 111222333 for the HR form", "BSN <NATIONAL_ID> for", "NATIONAL_ID"),
    ("Steuer-ID: 36 574 261 809", "Steuer-ID: <NATIONAL_ID>", "NATIONAL_ID"),
    ("NHS number 943 476 5919", "NHS number <NATIONAL_ID>", "NATIONAL_ID"),
    ("NI number AB 12 34 56 C", "NI number <NATIONAL_ID>", "NATIONAL_ID"),
    ("numéro 2 95 10 99 126 111 93", "numéro <NATIONAL_ID>", "NATIONAL_ID"),
    ("DNI 54362315K", "DNI <NATIONAL_ID>", "NATIONAL_ID"),
    ("codice fiscale RCCMNL83S18D969H", "fiscale <NATIONAL_ID>", "NATIONAL_ID"),
    ("AHV 756.9217.0769.85", "AHV <NATIONAL_ID>", "NATIONAL_ID"),
    ("PPS 6433435F", "PPS <NATIONAL_ID>", "NATIONAL_ID"),
    # names without a greeting
    ("tell Priya to call back", "tell <NAME> to call back", "NAME"),
    ("Marcus Brody phoned", "<NAME> phoned", "NAME"),
    ("ask Jürgen about it", "ask <NAME> about it", "NAME"),
    ("ask Grant about the share", "ask <NAME> about", "NAME"),
    ("Priya's laptop is slow", "<NAME>'s laptop", "NAME"),
    ("I passed it to Marcus and Priya", "to <NAME> and <NAME>", "NAME"),
    ("Dr Okafor rang", "Dr <NAME> rang", "NAME"),
    ("Ewan MacLeod raised it", "<NAME> raised it", "NAME"),
    ("Nathan, please do not switch it off.", "<NAME>, please", "NAME"),
    ("Got it from Neil. What now?", "from <NAME>.", "NAME"),
    ("Kwame Mensah phoned about it", "<NAME> phoned", "NAME"),
    ("Welcome Chidi! Grab a coffee", "Welcome <NAME>!", "NAME"),
]

KEPT = [
    "VPN says TP-204 after a long holiday",
    "account locked with FID-423 again",
    "Windows 10.0.19045.3803 and Office 16.0.17328.20162",
    "upgrade to version 2.3.1 then 1.12",
    "ticket INC-0071201 from 2026-02-09T08:14:00",
    "call ext 4357 between 07:30 and 18:00",
    "printer HAR-2F-MFP01 on floor 2",
    "reset your password at id.fennmoor.example/reset",
    "the password expired, I need to change password again",
    "did you change your password recently? and is the password manager open?",
    "Hi team, the S: drive is down",
    "Thanks, I've sent a KeyLoop request to your phone",
    "Good morning! TP-204 means the certificate expired",
    "the time was 12:30:45 when it crashed",
    "open S:\\Finance\\2026 and the PIN reset page",
    "meeting at 10.30 in room 1.14",
    # look-alikes of passwords
    "set it to DHCP",
    "reset it to factory defaults",
    "upgrade to version 2.4.1 and set it to 1080p",
    "set it to 5GHz, changed it to WPA3-Personal",
    "set it to srv-01.corp.local",
    "the error code is 1603, the code is 0x80070005",
    "the new password is in the safe",
    # look-alikes of cards, IBANs and ids
    "order 4111111111111112 shipped",
    "IMEI 356938035643809",
    "IBAN GB83 WEST 1234 5698 7654 32",
    "BSN 123456789",
    "NI number QQ 12 34 56 C",
    "Apache says AH00124, Windows says 0x80070005, the VPN says TP-204",
    "ticket INC0012345 and KB5034441 on 2026-02-09",
    "serial 5CD1234XYZ, part 12345678 and 123456789",
    "Windows 10.0.19045.3803 and version 16.0.17328.20162",
    # look-alikes of names
    "Will it reboot?",
    "Grant access to the share",
    "Mark as read, then archive",
    "April update broke the dock",
    "Outlook and Teams on Windows",
    "the Berlin office uses Cisco AnyConnect",
    "Open Jira in Chrome on the Mac, Linux is not supported",
    "Please restart the machine. Printer is jammed again.",
    "Line Manager approval and Key Vault and File Explorer",
    "Florence and Milan offices are moving to Teams Phone",
    "RoomPanel outside Trent says offline",
    "In Outlook, go to View. Summer's update broke it",
    "Grace period ends on 22 May",
    "Don't forget to lock your screen",
    # words that names-dataset ranks as first names somewhere
    "Breaches go to the Data Protection Officer",
    "China is on the restricted list, Hong Kong is not",
    "Senior Engineer approval, then deploy the Gold Image",
    "Memory Integrity is off. Welcome back!",
]


@pytest.mark.parametrize(("text", "expected", "kind"), SCRUBBED)
def test_scrubs(text, expected, kind):
    report = ScrubReport()
    out = Scrubber().scrub(text, report)
    assert expected in out, out
    assert report.counts[kind] >= 1
    for leaked in (
        "S3cret", "Summer2026", "E204517", "900331", "Martin", "abc123XYZ", "Winter2024",
        "Hunter22", "739204", "4111", "WEST", "536-90", "Priya", "Jürgen", "Brody",
    ):  # fmt: skip
        assert leaked not in out or leaked not in text


@pytest.mark.parametrize("text", KEPT)
def test_keeps(text):
    report = ScrubReport()
    assert Scrubber().scrub(text, report) == text
    assert report.as_dict() == {}


def test_known_names_are_scrubbed_everywhere():
    scrubber = Scrubber(known_names=["Kofi Mensah", *names_from_emails(["sara.haddad@x.example"])])
    out = scrubber.scrub("Kofi here. Sara said Mensah's fix works; ask Haddad")
    assert "Kofi" not in out and "Mensah" not in out and "Sara" not in out and "Haddad" not in out
    assert out.startswith("<NAME> here.")


def test_full_names_become_one_placeholder():
    out = Scrubber(known_names=["Priya Nandakumar"]).scrub("Priya Nandakumar, Finance")
    assert out == "<NAME>, Finance"


def test_report_counts_per_kind():
    report = ScrubReport()
    Scrubber().scrub("a@b.example, c@d.example and 10.0.0.1", report)
    assert report.as_dict() == {"EMAIL": 2, "IPV4": 1}


def test_new_kinds_are_counted_and_ordered():
    report = ScrubReport()
    Scrubber().scrub(
        "card 4111 1111 1111 1111, IBAN GB82WEST12345698765432, SSN 536-90-4399, "
        "set it to Hunter22! and tell Priya",
        report,
    )
    assert report.as_dict() == {
        "PASSWORD": 1, "IBAN": 1, "CARD": 1, "NATIONAL_ID": 1, "NAME": 1,
    }  # fmt: skip


def test_a_card_is_no_phone_and_an_iban_keeps_the_next_word():
    out = Scrubber().scrub("5500 0055 5555 5559 or GB82 WEST 1234 5698 7654 32 OK")
    assert out == "<CARD> or <IBAN> OK"


def test_the_given_names_load_lazily_once():
    code = (
        "import sys, finetune.pii as p, finetune.given_names as g; "
        "assert not any(m.startswith(('names_dataset', 'stdnum')) for m in sys.modules); "
        "p.Scrubber().scrub('tell Priya'); p.Scrubber().scrub('ask Marcus'); "
        "assert g.given_names.cache_info().misses == 1"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_given_name_list():
    # the shared cache: derived from names-dataset at most once (the first run on a machine)
    names = given_names.given_names()
    assert 50_000 < len(names) <= 100_000
    assert all(name == name.lower() and 1 <= rank <= 1000 for name, rank in names.items())
    popular = given_names.POPULAR_RANK
    assert names["priya"] <= popular and names["jürgen"] <= popular
    assert "outlook" not in names and "printer" not in names


# names-dataset in small: names-dataset's own first names take ~8 s and ~1 GB to load
FIRST_NAMES = {
    "Priya": {"country": {"IN": 0.44}, "gender": {"F": 0.93}, "rank": {"IN": 48, "GB": 1500}},
    "priya": {"country": {"IN": 0.5}, "gender": {"F": 0.9}, "rank": {"KW": 20}},
    "Jean-Luc": {"country": {"FR": 0.8}, "gender": {"M": 1.0}, "rank": {"FR": 700}},
    "Zebedee": {"country": {"GB": 0.9}, "gender": {"M": 1.0}, "rank": {"GB": 1001}},
    "A A Ron": {"country": {"US": 0.6}, "gender": {"M": 1.0}, "rank": {"MT": 30}},
    "Aab": {"country": {"EG": 1.0}, "gender": {}, "rank": {}},
}


@pytest.fixture
def small_dataset(monkeypatch, tmp_path):
    """names-dataset replaced by FIRST_NAMES, the cache by a file in ``tmp_path``."""
    names_dataset = pytest.importorskip("names_dataset")

    class NameDataset:
        def __init__(self, load_first_names=True, load_last_names=True):
            self.first_names = FIRST_NAMES

    monkeypatch.setattr(names_dataset, "NameDataset", NameDataset)
    cache = tmp_path / "cache" / "names.json.gz"
    monkeypatch.setenv(given_names.NAMES_CACHE_ENV, str(cache))
    given_names.given_names.cache_clear()
    yield cache
    given_names.given_names.cache_clear()  # the next test loads the shared cache again


def test_the_given_names_are_cached_and_reused(small_dataset, monkeypatch):
    assert given_names.names_cache_path() == small_dataset
    expected = {"priya": 20, "jean-luc": 700}
    assert given_names.given_names() == expected
    assert small_dataset.exists() and list(small_dataset.parent.iterdir()) == [small_dataset]
    assert gzip.decompress(small_dataset.read_bytes()).startswith(b'{"format":1,')

    # read back, not derived again: in this process, and in a new one without names_dataset
    given_names.given_names.cache_clear()
    monkeypatch.setattr(given_names, "_derive_given_names", lambda: pytest.fail("derived again"))
    assert given_names.given_names() == expected
    code = (
        "import sys, finetune.pii as p; "
        "assert p.Scrubber().scrub('tell Jean-Luc') == 'tell <NAME>'; "
        "assert p.Scrubber().scrub('tell Zebedee') == 'tell Zebedee'; "
        "assert 'names_dataset' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize(
    "content",
    [b"not gzip", gzip.compress(b'{"format":1,"rule":"an older one","names":{"old":1}}')],
)
def test_a_damaged_or_outdated_cache_is_rebuilt(small_dataset, content):
    small_dataset.parent.mkdir()
    small_dataset.write_bytes(content)
    assert given_names.given_names() == {"priya": 20, "jean-luc": 700}
    assert json.loads(gzip.decompress(small_dataset.read_bytes()))["rule"] == given_names.NAMES_RULE


def test_an_unwritable_cache_keeps_the_names_in_memory(small_dataset, caplog):
    small_dataset.parent.write_text("a file where the cache folder should be")
    assert given_names.given_names() == {"priya": 20, "jean-luc": 700}
    assert "kept in memory only" in caplog.text
    assert Scrubber().scrub("ask Jean-Luc") == "ask <NAME>"
