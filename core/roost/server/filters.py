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
from typing import Any

from roost.server.errors import bad_request

# the filter and its matching live with the store's search; the routes filter in Python with the same rules
from roost.store.search import Filter, match_date, match_labels, match_text, parse_date, parse_duration

OPS = ("EQUALS", "NOT_EQUALS", "GREATER_THAN", "LESS_THAN", "GREATER_THAN_OR_EQUAL_TO", "LESS_THAN_OR_EQUAL_TO",
       "IN", "NOT_IN", "STARTS_WITH", "ENDS_WITH", "CONTAINS", "REGEX", "PREFIX")  # fmt: skip

_PATTERN = re.compile(r"^filters\[(.*?)\]\[(.*?)\](?:\[(.+)\])?$")


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


__all__ = [
    "OPS",
    "Filter",
    "from_query_filters",
    "match_date",
    "match_labels",
    "match_text",
    "page_slice",
    "parse_date",
    "parse_duration",
    "parse_filters",
    "sorter",
]
