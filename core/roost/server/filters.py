"""Kestra 1.x search filters: ``filters[field][OP]=value`` query parameters.

``filters[labels][EQUALS][team]=data`` carries a label; ``IN``/``NOT_IN`` take a
comma list (or repeated parameters). Fields are the query names Kestra uses
(``q``, ``namespace``, ``flowId``, ``state``, ``labels``, ``startDate``,
``endDate``, ``timeRange``, ``level``, ``executionId``, ``triggerId``, ``scope``,
``childFilter``, ``kind``, ``path``, ``parentPath``, ``updated``...).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from roost.server.errors import bad_request

OPS = ("EQUALS", "NOT_EQUALS", "GREATER_THAN", "LESS_THAN", "GREATER_THAN_OR_EQUAL_TO", "LESS_THAN_OR_EQUAL_TO",
       "IN", "NOT_IN", "STARTS_WITH", "ENDS_WITH", "CONTAINS", "REGEX", "PREFIX")  # fmt: skip

_PATTERN = re.compile(r"^filters\[(.*?)\]\[(.*?)\](?:\[(.+)\])?$")


@dataclass
class Filter:
    field: str
    op: str
    value: Any  # str, list[str] (IN/NOT_IN), or dict[str, str] (labels)


def parse_filters(params: Iterable[tuple[str, str]], allowed: Iterable[str]) -> list[Filter]:
    """The filters of a query string; an unknown field or operation is a 400 that names it."""
    allowed = set(allowed)
    grouped: dict[tuple[str, str, str | None], list[str]] = {}
    for key, value in params:
        if not key.startswith("filters["):
            continue
        m = _PATTERN.match(key)
        if m is None:
            raise bad_request(f"malformed filter parameter {key!r}: expected filters[field][OPERATION]=value")
        grouped.setdefault((m.group(1), m.group(2).upper(), m.group(3)), []).append(value)
    out: list[Filter] = []
    labels: dict[str, dict[str, str]] = {}
    for (field, op, nested), values in grouped.items():
        if field not in allowed:
            raise bad_request(
                f"unknown filter field {field!r}: this search accepts {', '.join(sorted(allowed))}"
            )
        if op not in OPS:
            raise bad_request(
                f"unknown filter operation {op!r} on {field!r}: expected one of {', '.join(OPS)}"
            )
        if field == "labels" and nested is not None:
            labels.setdefault(op, {})[nested] = values[0]
            continue
        if field == "labels" and op in ("EQUALS", "NOT_EQUALS", "CONTAINS") and nested is None:
            pairs = {}
            for v in values:
                for item in v.split(","):
                    k, sep, val = item.partition(":")
                    if not sep or not k:
                        raise bad_request(f"label filter expects key:value, got {item!r}")
                    pairs[k] = val
            labels.setdefault(op, {}).update(pairs)
            continue
        if op in ("IN", "NOT_IN"):
            items = [i for v in values for i in v.strip("[]").split(",") if i != ""]
            out.append(Filter(field, op, items))
        else:
            out.append(Filter(field, op, values[0] if len(values) == 1 else values))
    for op, pairs in labels.items():
        out.append(Filter("labels", op, pairs))
    return out


_FIELD_NAMES = {"QUERY": "q", "SCOPE": "scope", "NAMESPACE": "namespace", "KIND": "kind", "LABELS": "labels",
                "FLOW_ID": "flowId", "START_DATE": "startDate", "END_DATE": "endDate", "STATE": "state",
                "TIME_RANGE": "timeRange", "TRIGGER_EXECUTION_ID": "triggerExecutionId", "TRIGGER_ID": "triggerId",
                "TRIGGER_STATE": "triggerState", "EXECUTION_ID": "executionId", "TASK_ID": "taskId",
                "CHILD_FILTER": "childFilter", "WORKER_ID": "workerId", "EXISTING_ONLY": "existingOnly",
                "MIN_LEVEL": "level", "PATH": "path", "PARENT_PATH": "parentPath", "UPDATED": "updated"}  # fmt: skip


def from_query_filters(items: Iterable[dict[str, Any]], allowed: Iterable[str]) -> list[Filter]:
    """Kestra's ``QueryFilter`` objects (``{"field": "NAMESPACE", "operation": "EQUALS", "value": ...}``), as in
    request bodies; fields may also be given by their query name (``namespace``)."""
    allowed = set(allowed)
    out = []
    for item in items:
        raw = str(item.get("field") or "")
        field = _FIELD_NAMES.get(raw.upper(), raw)
        op = str(item.get("operation") or "EQUALS").upper()
        if field not in allowed:
            raise bad_request(
                f"unknown filter field {raw!r}: this query accepts {', '.join(sorted(allowed))}"
            )
        if op not in OPS:
            raise bad_request(f"unknown filter operation {op!r} on {raw!r}: expected one of {', '.join(OPS)}")
        value = item.get("value")
        if op in ("IN", "NOT_IN") and isinstance(value, str):
            value = [v for v in value.split(",") if v]
        out.append(Filter(field, op, value))
    return out


def match_text(value: Any, op: str, wanted: Any) -> bool:
    """Apply a text operation; ``value`` may be None (matches only negative operations)."""
    text = "" if value is None else str(value)
    if op == "EQUALS":
        return text == str(wanted)
    if op == "NOT_EQUALS":
        return text != str(wanted)
    if op == "IN":
        return text in wanted
    if op == "NOT_IN":
        return text not in wanted
    if op == "STARTS_WITH":
        return text.startswith(str(wanted))
    if op == "ENDS_WITH":
        return text.endswith(str(wanted))
    if op == "CONTAINS":
        return str(wanted).lower() in text.lower()
    if op == "PREFIX":
        return text == str(wanted) or text.startswith(str(wanted) + ".")
    if op == "REGEX":
        try:
            return re.search(str(wanted), text) is not None
        except re.error as exc:
            raise bad_request(f"invalid regular expression {wanted!r}: {exc}") from None
    raise bad_request(f"operation {op} does not apply to a text field")


def parse_date(value: Any, field: str) -> datetime:
    try:
        when = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise bad_request(f"filter {field}: {value!r} is not an ISO-8601 date-time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_duration(value: Any, field: str) -> timedelta:
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(timedelta).validate_python(str(value))
    except ValidationError:
        raise bad_request(f"filter {field}: {value!r} is not an ISO-8601 duration such as PT24H") from None


def match_date(value: datetime | None, op: str, wanted: datetime) -> bool:
    if value is None:
        return op == "NOT_EQUALS"
    return {
        "EQUALS": value == wanted, "NOT_EQUALS": value != wanted,
        "GREATER_THAN": value > wanted, "GREATER_THAN_OR_EQUAL_TO": value >= wanted,
        "LESS_THAN": value < wanted, "LESS_THAN_OR_EQUAL_TO": value <= wanted,
    }.get(op, False)  # fmt: skip


def match_labels(
    labels: list[dict[str, str]] | dict[str, str] | None, op: str, wanted: dict[str, str]
) -> bool:
    if isinstance(labels, dict):
        have = {str(k): str(v) for k, v in labels.items()}
    else:
        have = {str(lbl.get("key")): str(lbl.get("value")) for lbl in labels or []}
    if op in ("EQUALS", "IN"):
        return all(have.get(k) == v for k, v in wanted.items())
    if op in ("NOT_EQUALS", "NOT_IN"):
        return all(have.get(k) != v for k, v in wanted.items())
    if op == "CONTAINS":
        return all(any(k in hk and v in hv for hk, hv in have.items()) for k, v in wanted.items())
    raise bad_request(f"operation {op} does not apply to labels")


def sorter(
    sort: list[str] | None, keys: dict[str, Callable[[Any], Any]], default: str
) -> tuple[Callable[[Any], Any], bool]:
    """A sort key and direction from ``sort=field:asc|desc`` (first one wins)."""
    spec = (sort or [default])[0]
    field, _, direction = spec.partition(":")
    if field not in keys:
        raise bad_request(f"cannot sort by {field!r}: expected one of {', '.join(sorted(keys))}")
    if direction and direction.lower() not in ("asc", "desc"):
        raise bad_request(f"sort direction must be asc or desc, got {direction!r}")
    return keys[field], direction.lower() == "desc"


def page_slice(items: list[Any], page: int, size: int) -> list[Any]:
    start = (page - 1) * size
    return items[start : start + size]
