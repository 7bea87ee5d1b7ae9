"""Masking of secret values in log lines."""

from __future__ import annotations

from collections.abc import Iterable

MASK = "******"


def mask(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret value in ``text`` with ``******`` (longest first, so overlaps stay hidden)."""
    for value in sorted((s for s in secrets if s), key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text
