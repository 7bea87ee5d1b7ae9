"""Kestra's trigger conditions and preconditions, as the scheduler evaluates them.

``Conditions`` checks a trigger's ``conditions`` on an ended execution (Flow triggers) or a date
(Schedule and polling triggers); ``Window`` and :func:`precondition_entries` are the stateful side of a
Flow trigger's ``preconditions`` (and of ``MultipleCondition``): requirements that must all be met within
a time window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter

from roost.engine.model import Execution
from roost.flow.properties import Duration

log = logging.getLogger("roost.scheduler")

_DURATION: TypeAdapter[timedelta] = TypeAdapter(Duration)
_WEEKDAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")


# -- small helpers ----------------------------------------------------------------------------------------
def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.isoformat().replace("+00:00", "Z")


def parse_date(value: Any, zone: ZoneInfo | None = None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    else:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone or UTC)
    return dt


def duration(value: Any, default: timedelta | None = None) -> timedelta | None:
    if value is None:
        return default
    if isinstance(value, timedelta):
        return value
    return _DURATION.validate_python(value)


def short_type(type_name: str | None) -> str:
    name = (type_name or "").rsplit(".", 1)[-1]
    return name[:-9] if name.endswith("Condition") and name not in ("Condition",) else name


def label_list(labels: Any) -> list[dict[str, str]]:
    if not labels:
        return []
    if isinstance(labels, dict):
        return [{"key": str(k), "value": str(v)} for k, v in labels.items()]
    return [{"key": str(x.get("key")), "value": str(x.get("value"))} for x in labels if isinstance(x, dict)]


def _parse_time(value: str) -> tuple[dtime, ZoneInfo | None]:
    """``HH:MM[:SS][offset]`` as a time (the offset, when given, as a fixed zone)."""
    t = dtime.fromisoformat(str(value).replace("Z", "+00:00"))
    return t.replace(tzinfo=None), (t.tzinfo if t.tzinfo else None)  # type: ignore[return-value]


# -- conditions ------------------------------------------------------------------------------------------
class ConditionError(ValueError):
    pass


class Conditions:
    """Kestra's trigger conditions, evaluated on an execution (Flow triggers) or a date (Schedule)."""

    def __init__(self, render: Callable[[str, dict[str, Any]], Any] | None = None) -> None:
        self.render = render
        self._warned: set[str] = set()

    def all(self, conditions: Iterable[dict[str, Any]], *, execution: Execution | None = None,
            when: datetime | None = None, variables: dict[str, Any] | None = None) -> bool:  # fmt: skip
        return all(self.one(c, execution=execution, when=when, variables=variables) for c in conditions or ())

    def one(self, cond: dict[str, Any], *, execution: Execution | None = None, when: datetime | None = None,
            variables: dict[str, Any] | None = None) -> bool:  # fmt: skip
        kind = short_type(cond.get("type"))
        when = when or datetime.now(UTC)
        ex = execution
        if kind in ("ExecutionFlow", "Flow"):
            if ex is None:
                return True
            return ex.namespace == cond.get("namespace") and ex.flow_id == cond.get("flowId")
        if kind in ("ExecutionNamespace", "FlowNamespace"):
            if ex is None:
                return True
            ns, target = ex.namespace, str(cond.get("namespace", ""))
            comparison = str(cond.get("comparison") or ("PREFIX" if cond.get("prefix") else "EQUALS")).upper()
            if comparison == "PREFIX":
                return ns == target or ns.startswith(target + ".") or ns.startswith(target)
            if comparison == "SUFFIX":
                return ns.endswith(target)
            return ns == target
        if kind == "ExecutionStatus":
            if ex is None:
                return True
            state = ex.state.current
            if cond.get("in") and state not in cond["in"]:
                return False
            return not (cond.get("notIn") and state in cond["notIn"])
        if kind == "ExecutionLabels":
            if ex is None:
                return True
            have = ex.label_map()
            return all(have.get(lbl["key"]) == lbl["value"] for lbl in label_list(cond.get("labels")))
        if kind == "HasRetryAttempt":
            if ex is None:
                return True
            retried = [tr for tr in ex.task_runs if len(tr.attempts) > 1]
            states = {a.get("state") for tr in retried for a in tr.attempts if isinstance(a, dict)}
            if cond.get("in"):
                return bool(states & set(cond["in"]))
            if cond.get("notIn"):
                return bool(retried) and not (states & set(cond["notIn"]))
            return bool(retried)
        if kind in ("ExecutionOutputs", "Expression"):
            expression = cond.get("expression")
            if not expression or self.render is None:
                return True
            scope = dict(variables or {})
            if ex is not None:
                scope.setdefault("outputs", ex.outputs or {})
            value = self.render(expression, scope)
            return value is True or str(value).strip().lower() == "true"
        if kind == "Not":
            return not any(
                self.one(c, execution=ex, when=when, variables=variables)
                for c in cond.get("conditions") or ()
            )
        if kind == "Or":
            return any(
                self.one(c, execution=ex, when=when, variables=variables)
                for c in cond.get("conditions") or ()
            )
        if kind in ("DayWeek", "DayWeekInMonth", "Weekend", "TimeBetween", "DateTimeBetween"):
            return self._date(kind, cond, self._date_of(cond, when, variables))
        if kind == "MultipleCondition":
            return True  # evaluated with its state by the scheduler (a window of sub-conditions)
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning(
                "trigger condition %s is not supported by this scheduler; it never matches", cond.get("type")
            )
        return False

    def _date_of(self, cond: dict[str, Any], when: datetime, variables: dict[str, Any] | None) -> datetime:
        raw = cond.get("date")
        if raw and self.render is not None and "{{" in str(raw):
            try:
                raw = self.render(str(raw), dict(variables or {}))
            except Exception:
                raw = None
        if raw:
            try:
                return parse_date(raw) or when
            except ValueError:
                return when
        return when

    @staticmethod
    def _date(kind: str, cond: dict[str, Any], when: datetime) -> bool:
        if kind == "Weekend":
            return when.weekday() >= 5
        if kind == "DayWeek":
            return _WEEKDAYS[when.weekday()] == str(cond.get("dayOfWeek", "")).upper()
        if kind == "DayWeekInMonth":
            if _WEEKDAYS[when.weekday()] != str(cond.get("dayOfWeek", "")).upper():
                return False
            which = str(cond.get("dayInMonth", "FIRST")).upper()
            nth = (when.day - 1) // 7
            if which == "LAST":
                return (when + timedelta(days=7)).month != when.month
            return nth == {"FIRST": 0, "SECOND": 1, "THIRD": 2, "FOURTH": 3}.get(which, -1)
        if kind == "TimeBetween":
            ok = True
            for key, cmp in (("after", lambda a, b: a >= b), ("before", lambda a, b: a <= b)):
                if cond.get(key):
                    t, zone = _parse_time(cond[key])
                    local = when.astimezone(zone) if zone else when
                    ok = ok and cmp(local.time().replace(tzinfo=None), t)
            return ok
        if kind == "DateTimeBetween":
            after, before = parse_date(cond.get("after")), parse_date(cond.get("before"))
            return (after is None or when >= after) and (before is None or when <= before)
        return True


# -- preconditions ----------------------------------------------------------------------------------------
class Window:
    """Kestra's ``timeWindow``: DURATION_WINDOW (default, 24 h from midnight), SLIDING_WINDOW,
    DAILY_TIME_DEADLINE and DAILY_TIME_WINDOW."""

    def __init__(self, spec: dict[str, Any] | None) -> None:
        spec = spec or {}
        self.type = str(spec.get("type") or "DURATION_WINDOW").upper()
        self.window = duration(spec.get("window"), timedelta(hours=24)) or timedelta(hours=24)
        self.advance = duration(spec.get("windowAdvance"), timedelta(0)) or timedelta(0)
        self.deadline = spec.get("deadline")
        self.start_time = spec.get("startTime")
        self.end_time = spec.get("endTime")

    def bounds(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The fixed window holding ``now`` (None for a sliding window)."""
        if self.type == "SLIDING_WINDOW":
            return None
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.type == "DAILY_TIME_DEADLINE" and self.deadline:
            t, zone = _parse_time(self.deadline)
            end = datetime.combine(midnight.date(), t, tzinfo=zone or now.tzinfo)
            return midnight, end
        if self.type == "DAILY_TIME_WINDOW" and self.start_time and self.end_time:
            (ts, zs), (te, ze) = _parse_time(self.start_time), _parse_time(self.end_time)
            return (datetime.combine(midnight.date(), ts, tzinfo=zs or now.tzinfo),
                    datetime.combine(midnight.date(), te, tzinfo=ze or now.tzinfo))  # fmt: skip
        origin = midnight + self.advance
        if origin > now:
            origin -= timedelta(days=1)
        steps = (now - origin) // self.window
        start = origin + steps * self.window
        return start, start + self.window

    def counts(self, now: datetime) -> bool:
        """Whether an execution ending now may count at all (outside a daily window, it may not)."""
        b = self.bounds(now)
        return b is None or b[0] <= now <= b[1]


def _filter_value(field: str, ex: Execution) -> Any:
    return {"FLOW_ID": ex.flow_id, "NAMESPACE": ex.namespace, "STATE": ex.state.current}.get(field)


def _filter_ok(f: dict[str, Any], ex: Execution, render: Callable[[str, dict[str, Any]], Any] | None,
               variables: dict[str, Any]) -> bool:  # fmt: skip
    import re

    field = str(f.get("field", "")).upper()
    op = str(f.get("type", "EQUAL_TO")).upper()
    if field == "EXPRESSION":
        expr = f.get("value")
        if not expr or render is None:
            return True
        value = render(str(expr), variables)
        truth = value is True or str(value).strip().lower() == "true"
        return not truth if op == "IS_FALSE" else truth
    actual = _filter_value(field, ex)
    expected = f.get("value")
    values = f.get("values") or (expected if isinstance(expected, list) else None)
    text = "" if actual is None else str(actual)
    if op in ("EQUAL_TO", "EQUALS"):
        return text == str(expected)
    if op in ("NOT_EQUAL_TO", "NOT_EQUALS"):
        return text != str(expected)
    if op == "IN":
        return text in {str(v) for v in values or []}
    if op == "NOT_IN":
        return text not in {str(v) for v in values or []}
    if op in ("STARTS_WITH", "PREFIX"):
        return text.startswith(str(expected))
    if op == "ENDS_WITH":
        return text.endswith(str(expected))
    if op == "CONTAINS":
        return str(expected) in text
    if op == "REGEX":
        return re.search(str(expected), text) is not None
    if op == "IS_NULL":
        return actual is None
    if op == "IS_NOT_NULL":
        return actual is not None
    return False


def precondition_entries(pre: Any) -> list[tuple[str, Callable[..., bool]]]:
    """The named requirements of a ``preconditions`` block: each flow, each ``where`` group."""
    entries: list[tuple[str, Callable[..., bool]]] = []
    for i, f in enumerate(getattr(pre, "flows", None) or []):

        def flow_ok(ex: Execution, render: Any, variables: dict[str, Any], f: dict[str, Any] = f) -> bool:
            if f.get("namespace") and ex.namespace != f["namespace"]:
                return False
            if f.get("flowId") and ex.flow_id != f["flowId"]:
                return False
            if ex.state.current not in (f.get("states") or ["SUCCESS"]):
                return False
            have = ex.label_map()
            return all(have.get(lbl["key"]) == lbl["value"] for lbl in label_list(f.get("labels")))

        entries.append((f"flow_{i}:{f.get('namespace')}.{f.get('flowId')}", flow_ok))
    for i, w in enumerate(getattr(pre, "where", None) or []):

        def where_ok(ex: Execution, render: Any, variables: dict[str, Any], w: dict[str, Any] = w) -> bool:
            filters = w.get("filters") or []
            results = (_filter_ok(f, ex, render, variables) for f in filters)
            return any(results) if str(w.get("operand", "AND")).upper() == "OR" else all(results)

        entries.append((f"where_{i}:{w.get('id') or i}", where_ok))
    return entries
