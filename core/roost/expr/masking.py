"""Mask secret values in text (log lines, task outputs shown to users)."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "******"


def mask(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret value with ``******``.

    Longer values are tried first so a secret that contains another one is
    masked whole. Empty values are ignored (they would match everywhere).
    """
    values = sorted({s for s in secrets if isinstance(s, str) and s}, key=len, reverse=True)
    if not values or not text:
        return text
    return re.sub("|".join(map(re.escape, values)), MASK, text)
