"""PII scrubbing: a table of tricky cases, and of things that must survive."""

import pytest

from finetune.pii import Scrubber, ScrubReport, names_from_emails

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
]


@pytest.mark.parametrize(("text", "expected", "kind"), SCRUBBED)
def test_scrubs(text, expected, kind):
    report = ScrubReport()
    out = Scrubber().scrub(text, report)
    assert expected in out, out
    assert report.counts[kind] >= 1
    for leaked in ("S3cret", "Summer2026", "E204517", "900331", "Martin", "abc123XYZ"):
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
