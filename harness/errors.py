"""User-facing errors: one line, naming the field and the allowed values; no traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(ValueError):
    """Bad input from a user (config, name, shape). The CLI prints it as one line."""


def unknown_name(field: str, value: object, allowed: Iterable[str]) -> UserError:
    """`field='x'` is not one of the allowed names; suggests the nearest one."""
    allowed = sorted(allowed)
    close = difflib.get_close_matches(str(value), allowed, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return UserError(f"{field}: unknown '{value}'{hint}; valid: {', '.join(allowed)}")


def check(condition: bool, field: str, message: str) -> None:
    """Raise a one-line UserError naming `field` unless `condition` holds."""
    if not condition:
        raise UserError(f"{field}: {message}")
