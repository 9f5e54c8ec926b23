"""Option values as they arrive from HTTP requests and ``--conf``: often strings."""

from __future__ import annotations


def as_flag(value: object) -> bool:
    """A boolean from ``True``/``False`` or a string such as "true", "1", "yes", "on" (any
    case); "false" is false (``bool("false")`` would be true)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
