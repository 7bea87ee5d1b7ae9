"""Paged, filtered reads of executions and logs (the API's and the UI's search).

The store's own search loads every matching row; a search page must not, once a server has run a few
hundred thousand executions. These read-only queries use LIMIT/OFFSET and COUNT, filtering in SQL
whatever the filter maps to a column and in Python the rest. A filter that cannot apply raises
:class:`FilterError` (the API answers 400 with its message).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from roost.store.tables import executions, logs


class FilterError(ValueError):
    """A search filter that cannot apply (an operation a field does not take, a malformed value)."""


@dataclass
class Filter:
    field: str
    op: str
    value: Any  # str, list[str] (IN/NOT_IN), or dict[str, str] (labels)


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
            raise FilterError(f"invalid regular expression {wanted!r}: {exc}") from None
    raise FilterError(f"operation {op} does not apply to a text field")


def parse_date(value: Any, field: str) -> datetime:
    try:
        when = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise FilterError(f"filter {field}: {value!r} is not an ISO-8601 date-time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_duration(value: Any, field: str) -> timedelta:
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(timedelta).validate_python(str(value))
    except ValidationError:
        raise FilterError(f"filter {field}: {value!r} is not an ISO-8601 duration such as PT24H") from None


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
    raise FilterError(f"operation {op} does not apply to labels")


LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]


def _text_clause(col: Any, op: str, value: Any) -> Any:
    if op == "EQUALS":
        return col == str(value)
    if op == "NOT_EQUALS":
        return col != str(value)
    if op == "IN":
        return col.in_([str(v) for v in value])
    if op == "NOT_IN":
        return col.not_in([str(v) for v in value])
    if op == "STARTS_WITH":
        return col.startswith(str(value), autoescape=True)
    if op == "ENDS_WITH":
        return col.endswith(str(value), autoescape=True)
    if op == "CONTAINS":
        return col.contains(str(value), autoescape=True)
    if op == "PREFIX":
        return sa.or_(col == str(value), col.startswith(str(value) + ".", autoescape=True))
    if op == "WITHIN":  # any of these namespaces and their children (what a principal's roles let it read)
        return sa.or_(*(_text_clause(col, "PREFIX", v) for v in value)) if value else sa.false()
    return None  # REGEX and the rest: filtered in Python


def _date_clause(col: Any, op: str, when: datetime) -> Any:
    ts = when.timestamp()
    return {"EQUALS": col == ts, "NOT_EQUALS": col != ts, "GREATER_THAN": col > ts, "GREATER_THAN_OR_EQUAL_TO": col >= ts,
            "LESS_THAN": col < ts, "LESS_THAN_OR_EQUAL_TO": col <= ts}.get(op)  # fmt: skip


EXECUTION_FIELDS = ("q", "scope", "namespace", "flowId", "startDate", "endDate", "state", "labels", "timeRange",
                    "triggerExecutionId", "childFilter", "kind", "executionId")  # fmt: skip
EXECUTION_SORTS = {"state.startDate": executions.c.start_date, "startDate": executions.c.start_date,
                   "state.endDate": executions.c.end_date, "endDate": executions.c.end_date, "id": executions.c.id,
                   "namespace": executions.c.namespace, "flowId": executions.c.flow_id,
                   "state.current": executions.c.state, "state": executions.c.state}  # fmt: skip


def _ts(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def search_executions(store: Any, tenant: str, filters: list[Filter], page: int, size: int,
                      sort: list[str] | None = None) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
    t = executions
    where: list[Any] = [t.c.tenant == tenant, t.c.deleted.is_(False)]
    python: list[Any] = []
    for f in filters:
        op, value = f.op, f.value
        if f.field in ("namespace", "flowId", "executionId", "triggerExecutionId"):
            col = {"namespace": t.c.namespace, "flowId": t.c.flow_id, "executionId": t.c.id,
                   "triggerExecutionId": t.c.parent_id}[f.field]  # fmt: skip
            clause = _text_clause(col, op, value)
            if clause is None:
                key = {
                    "namespace": "namespace",
                    "flowId": "flowId",
                    "executionId": "id",
                    "triggerExecutionId": "parentId",
                }[f.field]
                python.append(lambda d, k=key, o=op, v=value: match_text(d.get(k), o, v))
            else:
                where.append(clause)
        elif f.field == "state":
            if op not in ("EQUALS", "NOT_EQUALS", "IN", "NOT_IN"):
                raise FilterError(f"filters[state] does not support {op}")
            values = value if isinstance(value, list) else [value]
            where.append(t.c.state.in_(values) if op in ("EQUALS", "IN") else t.c.state.not_in(values))
        elif f.field in ("startDate", "endDate"):
            clause = _date_clause(
                t.c.start_date if f.field == "startDate" else t.c.end_date, op, parse_date(value, f.field)
            )
            if clause is None:
                raise FilterError(f"filters[{f.field}] does not support {op}")
            where.append(clause)
        elif f.field == "timeRange":
            where.append(t.c.start_date >= time.time() - parse_duration(value, "timeRange").total_seconds())
        elif f.field == "childFilter":
            child = str(value).upper() == "CHILD"
            if str(value).upper() not in ("CHILD", "MAIN"):
                raise FilterError("filters[childFilter] expects CHILD or MAIN")
            if op == "NOT_EQUALS":
                child = not child
            where.append(t.c.parent_id.is_not(None) if child else t.c.parent_id.is_(None))
        elif f.field == "q":
            like = sa.or_(t.c.id.contains(str(value), autoescape=True), t.c.namespace.contains(str(value), autoescape=True),
                          t.c.flow_id.contains(str(value), autoescape=True))  # fmt: skip
            where.append(like if op != "NOT_EQUALS" else sa.not_(like))
        elif f.field == "scope":
            where += _scope(t.c.namespace, value)
        elif f.field == "labels":
            if not isinstance(value, dict):
                raise FilterError("filters[labels] expects filters[labels][OP][key]=value")
            if op in ("EQUALS", "IN"):
                for k, v in value.items():
                    where.append(t.c.data.contains(json.dumps({"key": k, "value": v}, separators=(",", ":"),
                                                              ensure_ascii=False), autoescape=True))  # fmt: skip
            python.append(lambda d, o=op, v=value: match_labels(d.get("labels"), o, v))
        elif f.field == "kind":
            python.append(lambda d, o=op, v=value: match_text(d.get("kind"), o, v))
    order = []
    for spec in sort or ["state.startDate:desc"]:
        field, _, direction = spec.partition(":")
        column = EXECUTION_SORTS.get(field)
        if column is None:
            raise FilterError(
                f"cannot sort executions by {field!r}: expected one of {', '.join(sorted(EXECUTION_SORTS))}"
            )
        order.append(column.desc() if direction.lower() == "desc" else column.asc())
    query = sa.select(t.c.data).where(*where).order_by(*order)
    with store.engine.connect() as conn:
        if not python:
            total = int(conn.execute(sa.select(sa.func.count()).select_from(t).where(*where)).scalar() or 0)
            rows = conn.execute(query.limit(size).offset((page - 1) * size)).all()
            return [json.loads(r.data) for r in rows], total
        rows = conn.execute(query).all()
    found = [d for d in (json.loads(r.data) for r in rows) if all(p(d) for p in python)]
    start = (page - 1) * size
    return found[start : start + size], len(found)


LOG_FIELDS = (
    "q",
    "scope",
    "namespace",
    "startDate",
    "endDate",
    "flowId",
    "triggerId",
    "level",
    "executionId",
    "taskId",
)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def log_where(tenant: str, filters: list[Filter]) -> list[Any]:
    t = logs
    where: list[Any] = [t.c.tenant == tenant]
    for f in filters:
        op, value = f.op, f.value
        if f.field in ("namespace", "flowId", "executionId", "taskId"):
            col = {
                "namespace": t.c.namespace,
                "flowId": t.c.flow_id,
                "executionId": t.c.execution_id,
                "taskId": t.c.task_id,
            }[f.field]
            clause = _text_clause(col, op, value)
            if clause is None:
                raise FilterError(f"filters[{f.field}] does not support {op} on logs")
            where.append(clause)
        elif f.field == "level":
            level = str(value).upper()
            if level not in LEVELS:
                raise FilterError(f"filters[level]: {value!r} is not one of {', '.join(LEVELS)}")
            at = LEVELS[LEVELS.index(level) :]
            where.append(t.c.level.in_(at) if op != "NOT_EQUALS" else t.c.level.not_in(at))
        elif f.field in ("startDate", "endDate"):
            when = _iso(parse_date(value, f.field))
            clause = {"GREATER_THAN": t.c.timestamp > when, "GREATER_THAN_OR_EQUAL_TO": t.c.timestamp >= when,
                      "LESS_THAN": t.c.timestamp < when, "LESS_THAN_OR_EQUAL_TO": t.c.timestamp <= when,
                      "EQUALS": t.c.timestamp == when, "NOT_EQUALS": t.c.timestamp != when}.get(op)  # fmt: skip
            if clause is None:
                raise FilterError(f"filters[{f.field}] does not support {op}")
            where.append(clause)
        elif f.field == "q":
            like = t.c.message.contains(str(value), autoescape=True)
            where.append(like if op != "NOT_EQUALS" else sa.not_(like))
        elif f.field == "scope":
            where += _scope(t.c.namespace, value)
        elif f.field == "triggerId":
            where.append(sa.false())  # no trigger logs are stored yet
    return where


def _scope(namespace: Any, value: Any) -> list[Any]:
    """Kestra's ``scope`` filter: SYSTEM is the ``system`` namespace, USER every other one (a row of no
    namespace, a log line of the server, counts as USER); both or neither filter nothing."""
    scopes = {s.upper() for s in (value if isinstance(value, list) else str(value).split(","))}
    if scopes == {"SYSTEM"}:
        return [namespace == "system"]
    if scopes == {"USER"}:
        return [sa.or_(namespace.is_(None), namespace != "system")]
    return []


def log_row(r: Any) -> dict[str, Any]:
    out = {"namespace": r.namespace, "flowId": r.flow_id, "executionId": r.execution_id, "taskRunId": r.taskrun_id,
           "taskId": r.task_id, "timestamp": r.timestamp, "level": r.level, "message": r.message, "tenantId": r.tenant}  # fmt: skip
    return {k: v for k, v in out.items() if v is not None}


def search_logs(store: Any, tenant: str, filters: list[Filter], page: int, size: int,
                sort: list[str] | None = None) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
    t = logs
    where = log_where(tenant, filters)
    spec = (sort or ["timestamp:desc"])[0]
    field, _, direction = spec.partition(":")
    col = {"timestamp": t.c.seq, "level": t.c.level, "namespace": t.c.namespace, "flowId": t.c.flow_id}.get(
        field
    )
    if col is None:
        raise FilterError(f"cannot sort logs by {field!r}: expected timestamp, level, namespace or flowId")
    order = col.desc() if direction.lower() == "desc" else col.asc()
    with store.engine.connect() as conn:
        total = int(conn.execute(sa.select(sa.func.count()).select_from(t).where(*where)).scalar() or 0)
        rows = conn.execute(
            sa.select(t).where(*where).order_by(order, t.c.seq).limit(size).offset((page - 1) * size)
        ).all()
    return [log_row(r) for r in rows], total


def execution_logs(store: Any, tenant: str, execution_id: str, *, min_level: str | None = None, task_id: str | None = None,
                   taskrun_id: str | None = None, after_seq: int = 0, limit: int | None = None) -> list[tuple[int, dict[str, Any]]]:  # fmt: skip
    t = logs
    where = [t.c.tenant == tenant, t.c.execution_id == execution_id, t.c.seq > after_seq]
    if min_level:
        where.append(t.c.level.in_(LEVELS[LEVELS.index(min_level) :]))
    if task_id:
        where.append(t.c.task_id == task_id)
    if taskrun_id:
        where.append(t.c.taskrun_id == taskrun_id)
    query = sa.select(t).where(*where).order_by(t.c.seq)
    if limit:
        query = query.limit(limit)
    with store.engine.connect() as conn:
        return [(r.seq, log_row(r)) for r in conn.execute(query).all()]


def delete_logs(store: Any, tenant: str, *, execution_id: str | None = None, namespace: str | None = None,
                flow_id: str | None = None, min_level: str | None = None, task_id: str | None = None,
                taskrun_id: str | None = None) -> int:  # fmt: skip
    t = logs
    where = [t.c.tenant == tenant]
    if execution_id:
        where.append(t.c.execution_id == execution_id)
    if namespace:
        where.append(t.c.namespace == namespace)
    if flow_id:
        where.append(t.c.flow_id == flow_id)
    if min_level:
        where.append(t.c.level.in_(LEVELS[LEVELS.index(min_level) :]))
    if task_id:
        where.append(t.c.task_id == task_id)
    if taskrun_id:
        where.append(t.c.taskrun_id == taskrun_id)
    with store.write_lock, store.engine.begin() as conn:
        return int(conn.execute(t.delete().where(*where)).rowcount or 0)


def count_by_state(store: Any) -> dict[tuple[str, str], int]:
    t = executions
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.tenant, t.c.state, sa.func.count()).group_by(t.c.tenant, t.c.state)
        ).all()
    return {(r[0], r[1]): int(r[2]) for r in rows}
