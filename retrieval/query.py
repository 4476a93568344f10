"""What of a chat message is worth searching for.

People write to a help desk the way they write to a colleague: "hi team, quick one: ...
thanks!". Greetings, pleasantries and sign-offs carry no topic, yet they pull the query's
embedding towards every passage that sounds conversational and give BM25 words to match.
They are cut here, at the edges of the message only (never inside it), and a pasted log
of thousands of words is cut to its first ``MAX_QUERY_CHARS`` characters, which is more
than any embedding model reads anyway.
"""

from __future__ import annotations

import re

MAX_QUERY_CHARS = 2000

_SEP = r"[\s,.;:!?)(-]*"
_OPENERS = re.compile(
    r"^(?:(?:hi|hello|hey|hiya|howdy|greetings|good\s+(?:morning|afternoon|evening)|"
    r"dear\s+\w+|yo)(?:\s+(?:there|all|team|folks|guys|everyone|it|support|helpdesk))?"
    r"|quick\s+(?:one|question|q)|sorry\s+to\s+(?:bother|trouble)\s+you(?:\s+again)?"
    r"|hope\s+you(?:'re|\s+are)\s+(?:well|doing\s+well)|(?:please\s+)?help(?:\s+me)?(?:\s+please)?"
    r"|urgent|asap)(?=\W|$)" + _SEP,
    re.IGNORECASE,
)
_CLOSERS = re.compile(
    r"(?:" + _SEP + r"\b(?:thanks?(?:\s+(?:a\s+lot|so\s+much|in\s+advance))?|thank\s+you"
    r"(?:\s+(?:so\s+much|in\s+advance))?|thx|cheers|(?:kind\s+|best\s+)?regards|any\s+ideas|"
    r"please\s+help|help\s+please|please|asap|urgent)" + _SEP + r")+$",
    re.IGNORECASE,
)


def clean_query(text: str) -> str:
    """``text`` without greetings or sign-offs at its edges; empty when nothing else is left."""
    query = " ".join(text.split())[:MAX_QUERY_CHARS]
    while True:
        stripped = _OPENERS.sub("", query, count=1)
        if stripped == query:
            break
        query = stripped
    return _CLOSERS.sub("", query).strip()
