"""Mask secret values in text (log lines, task outputs shown to users)."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

MASK = "******"


def mask(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret value with ``******``.

    Longer values are tried first so a secret that contains another one is
    masked whole. Empty values are ignored (they would match everywhere).
    """
    if isinstance(secrets, MaskSet):
        return secrets.mask(text)
    values = sorted({s for s in secrets if isinstance(s, str) and s}, key=len, reverse=True)
    if not values or not text:
        return text
    return re.sub("|".join(map(re.escape, values)), MASK, text)


class MaskSet:
    """The secret values of one execution: every log line of the execution is masked with all of them,
    whichever task (or the engine) learnt them and whichever task writes the line.

    Values are held in clear in memory only. What survives a restart (:meth:`state`, :meth:`restore`)
    holds no value: a value read from the secret backend is kept as its reference ``(namespace, key)``
    and read again; any other value (a credential token, a decrypted text) as a keyed BLAKE2b digest and
    its length, found again by hashing every window of that length of a line — once found, the value
    is known in clear again and masked like the others. Thread-safe: worker threads add and mask at once.
    """

    def __init__(self, salt: bytes | None = None) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._refs: dict[tuple[str, str], str] = {}  # reference → value it gave
        self._pending: dict[str, int] = {}  # digest → length: values known by digest only, not seen since
        self._unresolved: set[tuple[str, str]] = set()  # references that could not be read again
        self._salt = salt or os.urandom(16)
        self._pattern: re.Pattern[str] | None = None
        self.version = 0  # bumped by every change; what was written is ``saved``
        self.saved = 0

    # -- the set -------------------------------------------------------------------------------------
    def add(self, value: Any, ref: tuple[str, str] | None = None) -> None:
        """Remember ``value`` (a non-empty string); ``ref`` names the secret it was read from."""
        if not isinstance(value, str) or not value:
            return
        with self._lock:
            if value in self._values and (ref is None or self._refs.get(ref) == value):
                return
            self._values.add(value)
            if ref is not None:
                self._refs[ref] = value
            self._pattern = None
            self.version += 1

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._values))

    def __len__(self) -> int:
        return len(self._values)

    def __bool__(self) -> bool:
        return bool(self._values or self._pending)

    def __contains__(self, value: object) -> bool:
        return value in self._values

    @property
    def dirty(self) -> bool:
        return self.version != self.saved

    # -- masking -------------------------------------------------------------------------------------
    def mask(self, text: str) -> str:
        if not text or not self:
            return text
        if self._pending:
            self._find_pending(text)
        pattern = self._pattern
        if pattern is None:
            with self._lock:
                values = sorted(self._values, key=len, reverse=True)
                pattern = self._pattern = re.compile("|".join(map(re.escape, values))) if values else None
        return pattern.sub(MASK, text) if pattern is not None else text

    def _digest(self, value: str) -> str:
        return hashlib.blake2b(
            value.encode("utf-8", "surrogatepass"), key=self._salt, digest_size=16
        ).hexdigest()

    def _find_pending(self, text: str) -> None:
        for length in set(self._pending.values()):
            for i in range(len(text) - length + 1):
                window = text[i : i + length]
                digest = self._digest(window)
                if digest in self._pending:
                    with self._lock:
                        self._pending.pop(digest, None)
                    self.add(window)
                    if not self._pending:
                        return

    # -- what survives a restart ---------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """A JSON-able form holding no secret value (see the class documentation)."""
        with self._lock:
            by_ref = set(self._refs.values())
            digests = {self._digest(v): len(v) for v in self._values if v not in by_ref}
            digests.update(self._pending)
            return {
                "salt": self._salt.hex(),
                "refs": sorted([ns, key] for ns, key in {*self._refs, *self._unresolved}),
                "digests": sorted([length, d] for d, length in digests.items()),
            }

    def absorb(self, state: dict[str, Any], resolve: Callable[[str, str], str | None]) -> None:
        """Add what another process's set of the same execution learnt (its :meth:`state`): secret
        references are read again; digests count only when made with this set's salt (a worker process
        starts from the executor's state, so they are)."""
        other = MaskSet.restore(state, resolve)
        for ref, value in other._refs.items():
            self.add(value, ref)
        if state.get("salt") == self._salt.hex() and other._pending:
            with self._lock:
                known = {self._digest(v) for v in self._values}
                fresh = {d: n for d, n in other._pending.items() if d not in known and d not in self._pending}
                if fresh:
                    self._pending.update(fresh)
                    self.version += 1
        with self._lock:
            if other._unresolved - self._unresolved:
                self._unresolved |= other._unresolved
                self.version += 1

    @classmethod
    def restore(cls, state: dict[str, Any], resolve: Callable[[str, str], str | None]) -> MaskSet:
        """The set from :meth:`state`; ``resolve(namespace, key)`` reads a secret again (None if gone)."""
        masks = cls(bytes.fromhex(state["salt"]))
        for ns, key in state.get("refs") or ():
            try:
                value = resolve(ns, key)
            except Exception:  # the backend may be back later: the reference is kept
                value = None
            if value:
                masks.add(value, (ns, key))
            else:
                masks._unresolved.add((ns, key))
        known = {masks._digest(v) for v in masks._values}
        masks._pending = {d: int(length) for length, d in state.get("digests") or () if d not in known}
        masks.saved = masks.version
        return masks
