"""Bearer-key checks for the /v1 routes (ASSISTANT_API_KEYS) and admin routes."""

from __future__ import annotations

import hmac

from assistant.errors import APIError


class KeyChecker:
    def __init__(self, api_keys: list[str], admin_key: str | None) -> None:
        self.api_keys = list(api_keys)
        self.admin_key = admin_key

    @staticmethod
    def _bearer(header: str | None) -> str | None:
        if not header or not header.lower().startswith("bearer "):
            return None
        return header[7:].strip() or None

    def check_api(self, header: str | None) -> None:
        if not self.api_keys:
            return
        key = self._bearer(header)
        if key is None:
            raise APIError(
                401, "missing API key: send 'Authorization: Bearer KEY'", code="missing_api_key"
            )
        if not any(hmac.compare_digest(key, k) for k in self.api_keys + self._admin()):
            raise APIError(401, "invalid API key", code="invalid_api_key")

    def check_admin(self, header: str | None) -> None:
        """Admin routes are off until an admin key is set: they change the index."""
        if not self.admin_key:
            raise APIError(
                403,
                "admin routes are off on this server: set ASSISTANT_ADMIN_KEY to use them",
                code="admin_disabled",
            )
        key = self._bearer(header)
        if key is None or not hmac.compare_digest(key, self.admin_key):
            raise APIError(401, "this route needs the admin key", code="invalid_admin_key")

    def _admin(self) -> list[str]:
        return [self.admin_key] if self.admin_key else []
