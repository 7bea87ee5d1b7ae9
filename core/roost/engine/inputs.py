"""Typed execution inputs: every bad input is reported, and no execution starts."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from roost.flow.model import Flow, Input
from roost.flow.properties import Duration, is_expression

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TD: TypeAdapter[dt.timedelta] = TypeAdapter(Duration)


class InputsInvalid(Exception):
    """One or more inputs are missing or of the wrong type; ``errors`` maps input id to message."""

    def __init__(self, errors: dict[str, str], flow_ref: str = "") -> None:
        self.errors = errors
        lines = "\n".join(f"  - inputs.{k}: {v}" for k, v in errors.items())
        super().__init__(
            f"invalid inputs for flow {flow_ref}:\n{lines}" if flow_ref else f"invalid inputs:\n{lines}"
        )


def _json(text: str) -> Any:
    """JSON from a user, refusing what cannot be written back (NaN, Infinity) or nests too deeply."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("the JSON nests too deeply") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def resolve_inputs(
    flow: Flow, raw: dict[str, Any], ctx: Any = None, store_file: Any = None
) -> dict[str, Any]:
    """Type every input of ``flow`` from ``raw`` (strings from the CLI/API, or native values).

    ``ctx`` renders expression defaults; ``store_file(input_id, value) -> uri`` stores FILE inputs.
    """
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    for inp in flow.inputs:
        present = inp.id in raw and raw[inp.id] is not None and raw[inp.id] != ""
        value = raw.get(inp.id) if present else inp.defaults
        if value is not None and not present and is_expression(value) and ctx is not None:
            try:
                value = ctx.render(value, inputs=out)
            except Exception as exc:
                errors[inp.id] = f"default {value!r} failed to render: {exc}"
                continue
        if value is None or value == "":
            if inp.required:
                errors[inp.id] = f"missing required input '{inp.id}' of type {inp.type}"
            else:
                out[inp.id] = None
            continue
        try:
            out[inp.id] = coerce(inp, value, store_file)
        except (ValueError, TypeError) as exc:
            errors[inp.id] = str(exc)
    if errors:
        raise InputsInvalid(errors, f"{flow.namespace}.{flow.id}")
    # inputs the flow does not declare are ignored, as Kestra does
    return out


def coerce(inp: Input, value: Any, store_file: Any = None, kind: str | None = None) -> Any:
    kind = kind or inp.type
    label = f"input '{inp.id}' ({kind})"
    if kind == "STRING" or kind == "SECRET":
        text = (
            value
            if isinstance(value, str)
            else json.dumps(value)
            if isinstance(value, dict | list)
            else str(value)
        )
        if inp.validator and not re.fullmatch(inp.validator, text):
            raise ValueError(f"{label}: {text!r} does not match the pattern {inp.validator!r}")
        if inp.min_length is not None and len(text) < inp.min_length:
            raise ValueError(f"{label}: shorter than {inp.min_length} characters")
        if inp.max_length is not None and len(text) > inp.max_length:
            raise ValueError(f"{label}: longer than {inp.max_length} characters")
        return text
    if kind == "EMAIL":
        if not isinstance(value, str) or not _EMAIL.match(value):
            raise ValueError(f"{label}: {value!r} is not an email address")
        return value
    if kind == "INT":
        try:
            number = int(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{label}: expected an integer, got {value!r}")
        return _bounded(label, number, inp)
    if kind == "FLOAT":
        try:
            number_f = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{label}: expected a number, got {value!r}") from None
        return _bounded(label, number_f, inp)
    if kind in ("BOOLEAN", "BOOL"):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"{label}: expected true or false, got {value!r}")
    if kind in ("ENUM", "SELECT"):
        allowed = inp.values if isinstance(inp.values, list) else None
        if allowed is not None and value not in allowed and not inp.allow_custom_value:
            raise ValueError(f"{label}: {value!r} is not one of {', '.join(map(str, allowed))}")
        return value
    if kind == "MULTISELECT":
        items = _json(value) if isinstance(value, str) and value.startswith("[") else value
        if isinstance(items, str):
            items = [s.strip() for s in items.split(",") if s.strip()]
        allowed = inp.values if isinstance(inp.values, list) else inp.options
        for item in items:
            if allowed is not None and item not in allowed and not inp.allow_custom_value:
                raise ValueError(f"{label}: {item!r} is not one of {', '.join(map(str, allowed))}")
        return list(items)
    if kind == "DATETIME":
        when = value if isinstance(value, dt.datetime) else _parse(label, dt.datetime.fromisoformat, value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when.isoformat().replace("+00:00", "Z")
    if kind == "DATE":
        return (
            value if isinstance(value, dt.date) else _parse(label, dt.date.fromisoformat, value)
        ).isoformat()
    if kind == "TIME":
        return (
            value if isinstance(value, dt.time) else _parse(label, dt.time.fromisoformat, value)
        ).isoformat()
    if kind == "DURATION":
        try:
            duration = _TD.validate_python(value)
        except Exception:
            raise ValueError(f"{label}: expected an ISO-8601 duration such as PT5M, got {value!r}") from None
        from roost.flow.properties import format_duration

        return format_duration(duration)
    if kind == "JSON":
        if isinstance(value, str):
            try:
                return _json(value)
            except ValueError as exc:
                raise ValueError(f"{label}: not valid JSON ({exc})") from None
        return value
    if kind == "YAML":
        if isinstance(value, str):
            from roost.flow.yaml import YamlError, load_data

            try:
                return load_data(value)  # bounded: an input is untrusted
            except YamlError as exc:
                raise ValueError(f"{label}: not valid YAML ({exc})") from None
        return value
    if kind == "URI":
        if not isinstance(value, str) or not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", value):
            raise ValueError(f"{label}: {value!r} is not a URI")
        return value
    if kind == "ARRAY":
        items = value
        if isinstance(value, str):
            try:
                items = _json(value)
            except ValueError:
                raise ValueError(f"{label}: expected a JSON array, got {value!r}") from None
        if not isinstance(items, list):
            raise ValueError(f"{label}: expected an array, got {type(items).__name__}")
        return [coerce(inp, item, store_file, inp.item_type or "STRING") for item in items]
    if kind == "FILE":
        if isinstance(value, str) and value.startswith(("kestra://", "nsfile://")):
            return value
        if store_file is None:
            raise ValueError(f"{label}: expected a kestra:// URI")
        if isinstance(value, str | Path) and Path(value).is_file():
            return store_file(inp.id, Path(value))
        if isinstance(value, bytes) or callable(
            getattr(value, "read", None)
        ):  # bytes, or a stream (an upload)
            return store_file(inp.id, value)
        raise ValueError(f"{label}: {value!r} is neither a stored file nor a readable local file")
    raise ValueError(f"{label}: unsupported input type")


def _parse(label: str, fn: Any, value: Any) -> Any:
    try:
        return fn(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{label}: {value!r} is not an ISO-8601 value") from None


def _bounded(label: str, number: float, inp: Input) -> Any:
    if inp.min is not None and number < float(inp.min):
        raise ValueError(f"{label}: {number} is lower than the minimum {inp.min}")
    if inp.max is not None and number > float(inp.max):
        raise ValueError(f"{label}: {number} is greater than the maximum {inp.max}")
    return number
