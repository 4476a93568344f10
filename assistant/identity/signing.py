"""The server's secret, and what it signs: session cookies and short-lived source links.

The secret is ``secret_key`` from the settings, or a random one kept in HOME/secret.key
(made on first start, readable by its owner only), so sessions and links survive restarts.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from urllib.parse import quote


def load_secret(configured: str | None, path: Path) -> bytes:
    if configured:
        return configured.encode()
    path = Path(path)
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48).encode()
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(value)
    os.replace(tmp, path)
    return value


class Signer:
    def __init__(self, secret: bytes, purpose: str) -> None:
        # one key per purpose: a session signature never passes as a link's, or back
        self.key = hmac.new(secret, purpose.encode(), hashlib.sha256).digest()

    def sign(self, text: str) -> str:
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()

    def verify(self, text: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(text), signature or "")


class SourceLinks:
    """``/v1/sources/PATH?exp=..&sig=..``: opens one document until it expires, with no key
    or cookie, so a link in an answer works in any browser tab without carrying a key."""

    def __init__(self, secret: bytes, ttl_s: float, base: str = "/v1/sources") -> None:
        self.signer = Signer(secret, "source-link")
        self.ttl_s = ttl_s
        self.base = base

    def url(self, source: str, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.ttl_s)
        signature = self.signer.sign(f"{source}|{expires}")
        return f"{self.base}/{quote(source)}?exp={expires}&sig={signature}"

    def valid(self, source: str, expires: str | None, signature: str | None) -> bool:
        if not expires or not signature or not expires.isdigit():
            return False
        if int(expires) < time.time():
            return False
        return self.signer.verify(f"{source}|{expires}", signature)
