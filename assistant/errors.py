"""Errors the assistant reports to people (CLI) and to programs (OpenAI-shaped HTTP)."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: printed as one sentence, exit status 1, no traceback."""


class APIError(Exception):
    """An error returned by the HTTP API as ``{"error": {"message", "type", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers  # sent with the error, e.g. Retry-After
        # what a hostile request sent may be echoed here: unpaired surrogates cannot be sent
        # as UTF-8, so they become '?'
        self.message = message.encode("utf-8", "replace").decode()
        self.type = type or _TYPES.get(status, "api_error")
        self.code = code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "code": self.code}}


_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}
