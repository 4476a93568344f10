"""How the thresholds of assistant/evaluation/metrics.py were chosen, on the sample data alone.

A maintenance script, not part of the product (about a minute on 2 cores):
    python data/tools/support_thresholds.py

Support (SUPPORT_COSINE, SUPPORT_OVERLAP), on data/docs chunked as the indexer does, each
pair scored as `assistant eval-answers` scores a sentence against a source:
  extractive : each sentence of a chunk against that chunk, whole and with every third word
               dropped (a shortened answer);
  paraphrase : PARAPHRASES below, written by hand from doc sentences, against their chunk;
  wrong doc  : each of those sentences against the most similar chunk of another document;
  wrong part : the same against the most similar other chunk of the same document (reported,
               not optimised: neighbouring sections often do support the same sentence).
The pair of thresholds with the largest mean pass rate of extractive and paraphrase pairs
minus the pass rate of wrong-doc pairs is printed first, then the constants in force.
Relevance (RELEVANT_COSINE), on data/transcripts: an employee's first message against the
agent's first reply in the same conversation, and in another one; the threshold with the
largest gap between the two pass rates. Nothing from data/eval is used.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from assistant.evaluation import metrics as m  # noqa: E402
from assistant.evaluation import text as text  # noqa: E402
from finetune.transcripts import read_transcripts  # noqa: E402
from retrieval.chunking import Chunker  # noqa: E402
from retrieval.embeddings import SentenceTransformerEmbedder  # noqa: E402
from retrieval.indexer import IndexReport, scan  # noqa: E402
from retrieval.loaders import load  # noqa: E402
from retrieval.text import content_words, split_sentences  # noqa: E402

GRID = [round(0.05 * i, 2) for i in range(2, 19)]

# (document, words of the original sentence, the sentence said another way)
PARAPHRASES = [
    ("account-lockout.md", "You do not need to wait the 15 minutes",
     "You don't have to sit out the 15 minutes."),
    ("followme-printing.md", "Jobs wait in the queue for",
     "Print jobs stay in the queue for 24 hours, after which they are removed."),
    ("followme-printing.md", "The first time you tap a new badge",
     "When you tap a new badge for the first time, the printer asks you to log in."),
    ("guest-wifi.html", "Peer-to-peer traffic, file sharing sites",
     "On the guest network, file-sharing sites, peer-to-peer traffic and adult content are "
     "not available."),
    ("hardware-returns.docx", "The request gives you a return number",
     "The request provides a return number beginning with HR-, which you write on the box."),
    ("hardware-returns.docx", "Back up any local files to your OneDrive",
     "Copy your local files to OneDrive first, because the device is wiped when it arrives."),
    ("lost-or-stolen-devices.md", "Report a lost or stolen device",
     "You must report a lost or stolen device within an hour of noticing, whatever the time."),
    ("macbook-setup.md", "macOS updates are offered by Fleetwarden",
     "Fleetwarden offers macOS updates within 7 days of release and forces them after 14 days."),
    ("meeting-rooms-av.html", "Others cannot hear the room",
     "If people on the call can't hear the room, make sure the mute light on the ceiling "
     "microphone is green and not red."),
    ("network-drives.md", "Do not store personal photos, music or films",
     "Personal photos, music and films must not be saved on the H: or S: drives."),
    ("new-laptop-first-login-windows.md", "The H: and S: drives appear within five minutes",
     "Once you are on the company network or the VPN, H: and S: show up within five minutes."),
    ("phishing-and-suspicious-email.md", "It is never a disciplinary matter",
     "Reporting a mistake quickly will never get you into disciplinary trouble."),
    ("printer-troubleshooting.html", "If code J-0450 keeps returning from tray 2",
     "When J-0450 keeps coming back from tray 2, the paper is likely damp or too heavy, so "
     "load fresh 80 gsm paper."),
    ("restoring-deleted-files.md", "Restores from backup are normally done",
     "A restore from backup usually takes up to two business days."),
    ("service-desk-hours-and-priorities.html", "Outside these hours, P1 incidents",
     "Out of hours, the on-call engineer deals with P1 incidents on extension 4999."),
    ("shared-mailboxes-and-lists.md", "Ownerless mailboxes are reviewed each quarter",
     "Shared mailboxes with no owner are checked every quarter and can be closed."),
    ("temporary-admin-rights.md", "Developers on ThinkPad P14s laptops get up to 60",
     "Developers with a ThinkPad P14s can have admin rights for up to 60 minutes without "
     "approval."),
    ("travel-abroad-with-it-equipment.pdf", "Register every trip outside the UK",
     "Every trip outside the UK has to be registered in Helm at least five business days "
     "before you leave."),
    ("vpn-tunnelpoint-setup.md", "The shield turns green",
     "When it connects, the shield icon goes green and says Connected - Split tunnel."),
    ("keyloop-mfa-enrollment.md", "Depot staff enrol with their site IT champion",
     "People who work at a depot enrol with the IT champion of their site."),
    ("email-and-calendar.md", "Mail older than two years moves",
     "Emails older than two years are moved to the Online Archive."),
    ("remote-working.md", "Service Desk engineers can connect to your laptop",
     "The Service Desk can take over your laptop remotely using Fenn Remote Assist."),
    ("disk-encryption-recovery-keys.md", "Unplug everything, start the laptop",
     "Disconnect all devices, boot the laptop and sign in before plugging them back in."),
    ("vpn-error-codes.md", "device certificate is renewed every 180 days",
     "Fleetwarden renews the laptop's device certificate every 180 days."),
]  # fmt: skip


def flat(text: str) -> str:
    return " ".join(text.replace("*", "").split())


def chunks(embedder) -> list:
    chunker = Chunker(embedder.count_tokens, 200, 30)
    out = []
    for file in scan([ROOT / "data" / "docs"], IndexReport()).values():
        out += chunker.split(load(file.path, file.source), "")
    return out


def pairs(embedder) -> dict[str, list]:
    pieces = chunks(embedder)
    evidence = [m.Evidence.of({"title": c.title, "section": c.section}, c.text) for c in pieces]
    found = {}
    for doc, words, sentence in PARAPHRASES:
        where = [i for i, c in enumerate(pieces) if c.source == doc and words in flat(c.text)]
        assert where, f"{doc}: '{words}' not found"
        found[sentence] = where[0]
    extractive = []
    for i, chunk in enumerate(pieces):
        for sentence in split_sentences(chunk.text):
            if text.is_claim(sentence) and len(sentence.split()) >= 6:
                words = sentence.split()
                extractive += [
                    (sentence, i),
                    (" ".join(w for j, w in enumerate(words) if j % 3 != 2), i),
                ]
    own = [(s, i) for s, i in extractive[::2]] + list(found.items())
    chunk_vecs = embedder.embed([e.text for e in evidence])
    sentence_vecs = embedder.embed([s for s, _ in own])
    wrong_doc, wrong_part = [], []
    for (sentence, i), vec in zip(own, sentence_vecs, strict=True):

        def nearest(keep, vec=vec):
            return max((j for j in range(len(pieces)) if keep(j)),
                       key=lambda j: m.cosine(vec, chunk_vecs[j]), default=None)  # fmt: skip

        other = nearest(lambda j, i=i: pieces[j].source != pieces[i].source)
        wrong_doc.append((sentence, evidence[other]))
        same = nearest(lambda j, i=i, s=sentence: pieces[j].source == pieces[i].source
                       and j != i and flat(s) not in flat(pieces[j].text))  # fmt: skip
        if same is not None:
            wrong_part.append((sentence, evidence[same]))
    return {
        "extractive": [(s, evidence[i]) for s, i in extractive],
        "paraphrase": [(s, evidence[i]) for s, i in found.items()],
        "wrong doc": wrong_doc,
        "wrong part": wrong_part,
    }


def support(embedder) -> None:
    checker = m.EmbedderSupport(embedder)
    scored = {}
    for kind, items in pairs(embedder).items():
        checker.vectors([s for s, _ in items])
        scored[kind] = [
            (v.cosine, v.overlap, text.facts(s) <= content_words(e.text))
            for s, e in items
            for v in checker.check([s], [e])[0]
        ]

    def rate(kind: str, c: float, o: float) -> float:
        rows = scored[kind]
        return sum(1 for x, y, f in rows if x >= c and y >= o and f) / len(rows)

    def gap(t):
        return (rate("extractive", *t) + rate("paraphrase", *t)) / 2 - rate("wrong doc", *t)

    best = max(((c, o) for c in GRID for o in GRID), key=gap)
    print("support (" + ", ".join(f"{len(v)} {k}" for k, v in scored.items()) + ")")
    for c, o in [best, (m.SUPPORT_COSINE, m.SUPPORT_OVERLAP)]:
        rates = ", ".join(f"{k} {rate(k, c, o):.0%}" for k in scored)
        print(f"  cosine >= {c:.2f} and overlap >= {o:.2f}: {rates}")
    for name, rule in [("cosine only", lambda t: (t, 0.0)), ("overlap only", lambda t: (0.0, t))]:
        top = max(GRID, key=lambda t, rule=rule: gap(rule(t)))
        rates = ", ".join(f"{k} {rate(k, *rule(top)):.0%}" for k in scored)
        print(f"  {name}, best {top:.2f}: {rates}")


def relevance(embedder) -> None:
    firsts = []
    for conv in read_transcripts(ROOT / "data" / "transcripts"):
        user = next((t["content"] for t in conv.messages if t["role"] == "user"), "")
        agent = next((t["content"] for t in conv.messages if t["role"] == "assistant"), "")
        if len(user.split()) >= 3 and agent:
            firsts.append((user, agent))
    questions = embedder.embed([u for u, _ in firsts])
    replies = embedder.embed([a for _, a in firsts])
    shift = len(firsts) // 2
    good = [m.cosine(q, a) for q, a in zip(questions, replies, strict=True)]
    bad = [m.cosine(q, replies[(i + shift) % len(replies)]) for i, q in enumerate(questions)]

    def share(values, t):
        return sum(x >= t for x in values) / len(values)

    top = max(GRID, key=lambda t: share(good, t) - share(bad, t))
    print(f"relevance ({len(good)} conversations)")
    for t in sorted({top, m.RELEVANT_COSINE}):
        print(f"  cosine >= {t:.2f}: same conversation {share(good, t):.0%}, "
              f"another one {share(bad, t):.0%}")  # fmt: skip


if __name__ == "__main__":
    model = SentenceTransformerEmbedder(m.EMBEDDER_MODEL)
    support(model)
    relevance(model)
