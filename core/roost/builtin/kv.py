"""Key-value store tasks (``io.kestra.plugin.core.kv.*``)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any, Literal

from roost import Dynamic, Output, RunContext, Task, TaskError
from roost.engine.context import MISSING
from roost.flow.model import NAMESPACE
from roost.store.keys import InvalidKey, kv_key

K = "io.kestra.plugin.core.kv."


def _kv(ctx: RunContext) -> Any:
    return ctx.runtime.kv  # type: ignore[attr-defined]


class KvTask(Task):
    key: Dynamic[str]
    """The key."""
    namespace: Dynamic[str] | None = None
    """Namespace of the key; the flow's by default."""

    def ns(self, ctx: RunContext) -> str:
        namespace = self.namespace or ctx.namespace  # type: ignore[attr-defined]
        if not re.fullmatch(NAMESPACE, namespace) or len(namespace) > 150:
            raise TaskError(
                f"task '{self.id}': invalid namespace {namespace!r}: lower-case letters, digits, '.', '_' and '-'"
            )
        return namespace

    def valid_key(self) -> str:
        """The key, checked by the rule the KV API applies (a key it could not read or delete fails here)."""
        try:
            return kv_key(self.key)
        except InvalidKey as exc:
            raise TaskError(f"task '{self.id}': {exc}") from None


class Set(KvTask, type=K + "Set"):
    """Store a value under a key."""

    value: Any
    """The value (expressions are rendered)."""
    overwrite: Dynamic[bool] = True
    """Replace an existing value."""
    ttl: Dynamic[timedelta] | None = None
    """Time to live."""
    kv_type: (
        Dynamic[Literal["STRING", "NUMBER", "BOOLEAN", "DATETIME", "DATE", "DURATION", "JSON"]] | None
    ) = None
    """Type the value is stored as."""
    description: str | None = None

    def run(self, ctx: RunContext) -> None:
        store, ns, key = _kv(ctx), self.ns(ctx), self.valid_key()
        value = ctx.render(self.value)
        if self.kv_type == "NUMBER" and isinstance(value, str):
            value = float(value) if "." in value else int(value)
        elif self.kv_type == "BOOLEAN" and isinstance(value, str):
            value = value.lower() == "true"
        elif self.kv_type == "JSON" and isinstance(value, str):
            value = json.loads(value)
        if not self.overwrite and store.get(ns, key) is not MISSING:
            raise TaskError(f"key '{key}' already exists in namespace '{ns}' and overwrite is false")
        store.put(ns, key, value, self.ttl.total_seconds() if self.ttl else None)


class GetOutput(Output):
    value: Any = None
    """The value, or null when missing."""


class Get(KvTask, type=K + "Get"):
    """Read the value stored under a key."""

    error_on_missing: Dynamic[bool] = False
    """Fail when the key does not exist."""

    def run(self, ctx: RunContext) -> GetOutput:
        value = _kv(ctx).get(self.ns(ctx), self.valid_key())
        if value is MISSING:
            if self.error_on_missing:
                raise TaskError(f"key '{self.key}' not found in namespace '{self.ns(ctx)}'")
            value = None
        return GetOutput(value=value)


class DeleteOutput(Output):
    deleted: bool
    """Whether a key was removed."""


class Delete(KvTask, type=K + "Delete"):
    """Remove a key."""

    error_on_missing: Dynamic[bool] = False
    """Fail when the key does not exist."""

    def run(self, ctx: RunContext) -> DeleteOutput:
        deleted = _kv(ctx).delete(self.ns(ctx), self.valid_key())
        if not deleted and self.error_on_missing:
            raise TaskError(f"key '{self.key}' not found in namespace '{self.ns(ctx)}'")
        return DeleteOutput(deleted=deleted)


TASKS = (Set, Get, Delete)
