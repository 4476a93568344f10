"""Types and parsing the settings' sections share.

The section modules do without ``from __future__ import annotations``: ``Settings``
inherits their fields, and pydantic-settings needs the types themselves, not names that
only resolve in the section's module. Validator names must differ across the sections:
``Settings`` keeps one validator per name.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic_settings import NoDecode

CommaList = Annotated[list[str], NoDecode]


def split_commas(value: Any) -> Any:
    """A comma-separated string (the environment's form) as a list; anything else as is."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value
