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

from pydantic import AfterValidator, BaseModel, ConfigDict, TypeAdapter
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


if TYPE_CHECKING:
    Dynamic = Annotated[T, "dynamic"]
else:

    class Dynamic:
        """``Dynamic[int]``: an int, or a string expression rendered to an int at run time."""

        def __class_getitem__(cls, inner: Any) -> Any:
            if inner is str:
                return Annotated[str, DynamicMarker(str)]
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
