"""Property types shared by flows, tasks and triggers.

``Dynamic[T]`` marks a property that holds either a literal ``T`` or a string
with a ``{{ }}`` expression: validation at deploy time checks the shape, the
engine renders it just before the task runs and types the result as ``T``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, TypeAdapter
from pydantic.alias_generators import to_camel

T = TypeVar("T")

_EXPR = re.compile(r"\{\{|\{%")


def is_expression(value: Any) -> bool:
    """True when ``value`` is a string holding a ``{{ }}`` or ``{% %}`` template."""
    return isinstance(value, str) and _EXPR.search(value) is not None


def needs_render(value: Any) -> bool:
    """True when ``value`` (or anything nested in it) holds an expression."""
    if isinstance(value, str):
        return _EXPR.search(value) is not None
    if isinstance(value, dict):
        return any(needs_render(k) or needs_render(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(needs_render(v) for v in value)
    return False


def stringify(value: Any) -> str:
    """A rendered value as Kestra prints it: JSON for maps and lists, ``true``/``false``, empty for null."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple):
        import json

        return json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False)
    return str(value)


def is_truthy(value: Any) -> bool:
    """Kestra's TruthUtils on a rendered value: false for null, ``false``, ``0``, ``-0`` and blank text."""
    return stringify(value).strip() not in ("false", "0", "-0", "")


def _scalar_text(value: Any) -> Any:
    return stringify(value) if isinstance(value, bool | int | float) else value


def _must_be_expression(value: str) -> str:
    if not is_expression(value):
        raise ValueError("not a {{ expression }}")
    return value


ExpressionStr = Annotated[str, AfterValidator(_must_be_expression)]


class DynamicMarker:
    """Annotation metadata carried by ``Dynamic[T]``: remembers ``T`` for run-time typing."""

    __slots__ = ("inner",)

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def adapter(self) -> TypeAdapter[Any]:
        return _adapter(self.inner)

    def __repr__(self) -> str:
        return f"Dynamic[{getattr(self.inner, '__name__', self.inner)}]"


@cache
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


# Java's Duration.parse grammar (Kestra's durations), letters in either case; fractions are also
# accepted on hours and minutes (PT1.5H), as Kestra's documentation writes them.
_NUM = r"([-+]?\d+(?:[.,]\d+)?)"
_JAVA_DURATION = re.compile(rf"([-+]?)P(?:{_NUM}D)?(?:T(?:{_NUM}H)?(?:{_NUM}M)?(?:{_NUM}S)?)?", re.IGNORECASE)


def parse_duration(value: Any) -> Any:
    """A duration as Kestra reads one: ISO-8601 as Java parses it (``PT0.25s``, ``P2DT3H``, ``-PT6H``),
    or a number of seconds. Weeks, months and years are refused (a Java ``Duration`` has none)."""
    if isinstance(value, timedelta) or value is None:
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected an ISO-8601 duration (e.g. PT5M), got {str(value).lower()}")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if not isinstance(value, str):
        return value
    text = value.strip()
    match = _JAVA_DURATION.fullmatch(text)
    if match is None or not any(match.group(i) for i in range(2, 6)) or text.upper().endswith("T"):
        hint = (
            " (weeks, months and years are not supported)" if re.search(r"[YW]|P[^T]*M", text, re.I) else ""
        )
        raise ValueError(f"expected an ISO-8601 duration (e.g. PT5M, P1DT2H, PT0.5S){hint}, got {value!r}")
    sign = -1 if match.group(1) == "-" else 1
    days, hours, minutes, seconds = (float(g.replace(",", ".")) if g else 0.0 for g in match.groups()[1:])
    return sign * timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
"""A ``timedelta`` read as Kestra reads durations (see :func:`parse_duration`)."""

if TYPE_CHECKING:
    Dynamic = Annotated[T, "dynamic"]
else:

    class Dynamic:
        """``Dynamic[int]``: an int, or a string expression rendered to an int at run time."""

        def __class_getitem__(cls, inner: Any) -> Any:
            if inner is timedelta:
                inner = Duration  # rendered durations are read as Kestra reads them
            if inner is str:  # a number or boolean where text is expected is its text, as Jackson coerces it
                return Annotated[str, BeforeValidator(_scalar_text), DynamicMarker(str)]
            return Annotated[Union[inner, ExpressionStr], DynamicMarker(inner)]  # noqa: UP007


class Model(BaseModel):
    """Base of every YAML-facing model: camelCase aliases, unknown properties rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        arbitrary_types_allowed=True,
        protected_namespaces=(),
        use_attribute_docstrings=True,
    )


def format_duration(value: timedelta) -> str:
    """ISO-8601 form of a timedelta as Java's ``Duration`` prints it (Kestra): hours, never days (``PT30H5M``)."""
    total = value.total_seconds()
    sign = "-" if total < 0 else ""
    total = abs(total)
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    out = "PT"
    if hours:
        out += f"{sign}{int(hours)}H"
    if minutes:
        out += f"{sign}{int(minutes)}M"
    if seconds or not (hours or minutes):
        text = f"{seconds:.9f}".rstrip("0").rstrip(".")
        out += f"{sign}{text}S"
    return out
