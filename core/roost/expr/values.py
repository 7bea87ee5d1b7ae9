"""How Pebble turns values into text: JSON for maps and lists, ``true``/``false``, null as nothing."""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, NamedTuple

from jinja2 import Undefined

from roost.expr.budget import check_text_size

# Values a template may compute but never print: they would show Python internals.
_OPAQUE = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.BuiltinMethodType,
    types.ModuleType,
    types.CodeType,
    types.FrameType,
    type,
)


def check_printable(value: Any) -> None:
    if isinstance(value, _OPAQUE):
        raise TypeError(f"a {type(value).__name__} cannot be used as a value (call it, e.g. now())")


class Entry(NamedTuple):
    """A map entry, as Pebble yields when a ``for`` loop iterates a map."""

    key: Any
    value: Any


def _json_default(value: Any) -> Any:
    if isinstance(value, Undefined):
        str(value)  # raises the undefined-variable error
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, types.GeneratorType):
        return list(value)
    check_printable(value)
    return str(value)


def to_json(value: Any) -> str:
    """Compact JSON like Jackson's default writer: no spaces, non-ASCII kept."""
    if isinstance(value, Mapping | list | tuple):
        check_text_size(value)  # in a render, shared references must not write gigabytes
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def to_text(value: Any) -> str:
    """The text Kestra's JsonWriter writes for a value inside a larger template."""
    t = type(value)
    if t is str:
        return value
    if value is None:
        return ""
    if t is bool:
        return "true" if value else "false"
    if t is int or t is float:
        return str(value)
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return to_json(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, types.GeneratorType):  # Jinja's map/select filters are lazy
        return to_json(list(value))
    check_printable(value)
    return str(value)  # an Undefined raises here


def is_empty(value: Any) -> bool:
    """Pebble's ``empty`` test: null, blank string, empty collection or map."""
    if value is None:
        return True
    if isinstance(value, Undefined):
        str(value)
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return not value
    return False
