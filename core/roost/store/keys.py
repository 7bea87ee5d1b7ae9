"""The rule for KV keys, one for every way in: the KV API, the KV tasks and ``kv_put`` (Kestra's
``KVStore.validateKey``). A key the API could neither read nor delete is never stored."""

from __future__ import annotations

import re
from typing import Any

KV_KEY = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]*")
MAX_KV_KEY = 255  # the kv table's column


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""What a KV store's ``get`` answers for an absent (or expired) key: ``None`` is a value a key may hold."""


class InvalidKey(ValueError):
    """A KV key breaks the rule; the message quotes the key and the rule."""


def kv_key(key: object) -> str:
    """``key`` when it is a valid KV key, else :class:`InvalidKey`."""
    if not isinstance(key, str) or not KV_KEY.fullmatch(key) or len(key) > MAX_KV_KEY:
        raise InvalidKey(
            f"invalid key {key!r}: letters, digits, '.', '_' and '-', starting with a letter or digit "
            f"(at most {MAX_KV_KEY} characters)"
        )
    return key


def is_kv_key(key: object) -> bool:
    try:
        kv_key(key)
    except InvalidKey:
        return False
    return True
