"""Database values to JSON-safe values (task outputs and stored rows).

Dates and times become ISO-8601 strings (aware timestamps converted to ``timeZoneId``
when one is set), intervals ISO-8601 durations, decimals a float when the float holds
the exact value and a string otherwise, bytes base64, UUIDs and anything else strings.
"""

from __future__ import annotations

import base64
import math
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any
from uuid import UUID


def to_json(value: Any, tz: tzinfo | None = None) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Decimal):
        return decimal_to_json(value)
    if isinstance(value, datetime):
        if tz is not None and value.tzinfo is not None:
            value = value.astimezone(tz)
        return value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return iso_duration(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_json(v, tz) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json(v, tz) for v in value]
    return str(value)


def decimal_to_json(value: Decimal) -> float | int | str:
    if not value.is_finite():
        return "NaN" if value.is_nan() else ("Infinity" if value > 0 else "-Infinity")
    if value == value.to_integral_value() and value.as_tuple().exponent >= 0:
        return int(value)
    as_float = float(value)
    if Decimal(repr(as_float)) == value:
        return as_float
    return str(value)


def iso_duration(value: timedelta) -> str:
    """``PT1H30M``, ``P2DT3S``, ``-PT5S``: the ISO-8601 form Kestra prints."""
    total = value.total_seconds()
    sign = "-" if total < 0 else ""
    value = -value if total < 0 else value
    days = value.days
    seconds = value.seconds
    micros = value.microseconds
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = f"{sign}P"
    if days:
        out += f"{days}D"
    if hours or minutes or secs or micros or not days:
        out += "T"
        if hours:
            out += f"{hours}H"
        if minutes:
            out += f"{minutes}M"
        if secs or micros or not (hours or minutes):
            out += f"{secs}.{micros:06d}".rstrip("0").rstrip(".") + "S" if micros else f"{secs}S"
    return out


def to_param(value: Any, system: str) -> Any:
    """A ``parameters`` value as the driver binds it (maps become JSON text)."""
    import json

    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        if system in ("postgresql", "duckdb"):
            return list(value)
        return json.dumps(list(value))
    return value
