"""The scheduler: starts executions from Schedule, Flow and polling triggers.

One thread loops over the deployed flows of every tenant. It keeps an
inventory of the flows that declare triggers (reloaded only when the flows
table changed, and parsed through :meth:`Engine.flow`, which caches by
revision) and wakes at the earliest due date, at the latest every
``refresh`` seconds, or as soon as an execution ends.

- **Schedule** (cron, optional seconds, time zone, inputs, conditions,
  ``lateMaximumDelay``): the next date of each trigger lives in the store's
  ``triggers`` table. Dates missed while no scheduler ran are replayed on
  start-up as ``recoverMissedSchedules`` says (ALL by default, LAST, NONE).
  A backfill (``backfill:`` in the YAML, or ``data["backfill"]`` written by the
  API: ``start``, ``end``, ``currentDate``, ``paused``, ``inputs``, ``labels``)
  replays past dates alongside the live schedule and is dropped once done.
- **Flow** triggers hear :attr:`Engine.on_execution_end`: ``states``,
  ``conditions`` (ExecutionFlow, ExecutionNamespace, ExecutionStatus,
  ExecutionLabels, ExecutionOutputs, Expression, Not, Or, date conditions...)
  and ``preconditions`` (upstream ``flows`` and ``where`` filters that must
  all be met within a ``timeWindow``; progress persists in the trigger state).
- **Polling** triggers (any trigger with ``evaluate(ctx)`` and an ``interval``)
  are evaluated on a small thread pool; each mapping returned starts one
  execution whose ``trigger.*`` variables are that mapping.

Executions started here carry ``trigger={"id", "type", "variables"}``. A
Schedule or Flow trigger's execution id is derived from the trigger and the
date (or upstream execution), and an id that already exists is not created
again: a crash between starting an execution and saving the trigger state
does not fire twice. Disabled triggers (in the YAML, or the store flag the
API sets) and disabled flows start nothing; ``stopAfter`` sets that flag.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import inspect
import logging
import queue
import string
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from roost.engine.conditions import (
    Conditions,
    Window,
    duration,
    iso,
    label_list,
    parse_date,
    precondition_entries,
    short_type,
)
from roost.engine.model import Execution
from roost.engine.trigger_context import Listener, TriggerContext, render_value
from roost.flow.task import TERMINAL_STATES, FlowEndTrigger, RealtimeTrigger, ScheduleTrigger
from roost.store.db import ExecutionExists

log = logging.getLogger("roost.scheduler")

TERMINAL_DEFAULT = TERMINAL_STATES
MAX_DATES_PER_TICK = 500
_ALPHABET = string.ascii_letters + string.digits


# -- execution ids ---------------------------------------------------------------------------------------
def stable_id(*parts: Any) -> str:
    """A 22-character base62 id derived from ``parts`` (same parts, same id)."""
    digest = int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest(), "big")
    out = []
    for _ in range(22):
        digest, rem = divmod(digest, 62)
        out.append(_ALPHABET[rem])
    return "".join(out)


# -- the inventory ------------------------------------------------------------------------------------------
class _FlowEntry:
    __slots__ = (
        "tenant",
        "namespace",
        "flow_id",
        "revision",
        "flow",
        "schedules",
        "flow_triggers",
        "polling",
        "realtime",
    )

    def __init__(self, tenant: str, flow: Any) -> None:
        self.tenant = tenant
        self.namespace = flow.namespace
        self.flow_id = flow.id
        self.revision = flow.revision
        self.flow = flow
        self.schedules = [t for t in flow.triggers if isinstance(t, ScheduleTrigger)]
        self.flow_triggers = [t for t in flow.triggers if isinstance(t, FlowEndTrigger)]
        self.polling = [t for t in flow.triggers if callable(getattr(t, "evaluate", None))
                        and not isinstance(t, (ScheduleTrigger, FlowEndTrigger))]  # fmt: skip
        self.realtime = [t for t in flow.triggers if isinstance(t, RealtimeTrigger)]

    @property
    def active(self) -> bool:
        return bool(self.schedules or self.flow_triggers or self.polling or self.realtime)


# -- the scheduler ----------------------------------------------------------------------------------------
class Scheduler:
    """Fires the triggers of every deployed flow; ``start()`` runs it in a thread, ``stop()`` ends it."""

    def __init__(self, engine: Any, *, refresh: float = 1.0, pollers: int = 4) -> None:
        self.engine = engine
        self.store = engine.store
        self.refresh = refresh
        self._pollers = pollers
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._events: queue.SimpleQueue[Execution] = queue.SimpleQueue()
        self._inventory: dict[tuple[str, str, str], _FlowEntry] = {}
        self._fingerprint: Any = None
        self._broken: set[tuple[str, str, str, int]] = set()
        self._started_at = 0.0
        self._seen: set[tuple[str, str, str, str]] = set()  # triggers evaluated once since start
        self._in_flight: set[tuple[str, str, str, str]] = set()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.RLock()
        self._conditions = Conditions()
        self.next_wakeup = float("inf")
        self.watch_interval = 2.0
        self._watermark: float | None = None
        self._last_watch = 0.0
        self._recent: dict[str, float] = {}  # ended executions already handled (id -> end date)
        from roost.store.cluster import LeaderLock

        self.leader = LeaderLock(self.store, "scheduler")  # several scheduler processes: one fires
        self._leading = False
        self._listeners: dict[tuple[str, str, str, str, int], Listener] = {}  # realtime triggers listening

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> Scheduler:
        if self._thread is not None:
            return self
        self._stop.clear()
        self._started_at = time.time()
        self._seen.clear()
        self._pool = concurrent.futures.ThreadPoolExecutor(self._pollers, thread_name_prefix="roost-trigger")
        self.engine.on_execution_end.append(self._on_execution_end)
        self._thread = threading.Thread(target=self._loop, name="roost-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._wake.set()
        try:
            self.engine.on_execution_end.remove(self._on_execution_end)
        except ValueError:
            pass
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.leader.release()
        self._leading = False
        self._stop_listeners()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Scheduler:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._lead():
                self._wake.wait(self.refresh)
                self._wake.clear()
                continue
            try:
                self.tick()
            except Exception:  # the loop must survive a bug in one flow
                log.exception("scheduler tick failed")
            delay = min(self.refresh, max(0.0, self.next_wakeup - time.time()))
            if delay > 0 and self._events.empty():
                self._wake.wait(delay)
            self._wake.clear()

    def _lead(self) -> bool:
        """Whether this scheduler is the active one (another process may hold the leader lock)."""
        leading = self.leader.held()
        if leading and not self._leading:
            log.info("this scheduler is the active one")
            # a standby taking over reads the ends since about the last leader's last look
            self._watermark = max(self._started_at or 0.0, time.time() - 2 * self.watch_interval)
        elif not leading:
            while not self._events.empty():  # the active scheduler reads them from the store
                self._events.get_nowait()
        self._leading = leading
        return leading

    # -- one pass ----------------------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> None:
        """Evaluate every trigger once: due schedules, backfills, polling triggers and ended executions."""
        if not self._started_at:
            self._started_at = time.time()
        self._reload()
        self._drain_events()
        self._watch_store()
        now = time.time() if now is None else now
        self.next_wakeup = now + self.refresh
        by_tenant: dict[str, list[_FlowEntry]] = {}
        for entry in self._inventory.values():
            if entry.schedules or entry.polling or entry.realtime:
                by_tenant.setdefault(entry.tenant, []).append(entry)
        realtime_states: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for tenant, entries in by_tenant.items():
            states = {
                (s["namespace"], s["flowId"], s["triggerId"]): s for s in self.store.list_triggers(tenant)
            }
            realtime_states.update({(tenant, *k): v for k, v in states.items()})
            for entry in entries:
                if self._stop.is_set():
                    return
                for trig in entry.schedules:
                    try:
                        self._schedule(
                            entry, trig, states.get((entry.namespace, entry.flow_id, trig.id)), now
                        )
                    except Exception:
                        log.exception("schedule %s of %s.%s failed", trig.id, entry.namespace, entry.flow_id)
                for trig in [] if entry.flow.disabled else entry.polling:
                    try:
                        self._poll(entry, trig, states.get((entry.namespace, entry.flow_id, trig.id)), now)
                    except Exception:
                        log.exception(
                            "polling trigger %s of %s.%s failed", trig.id, entry.namespace, entry.flow_id
                        )
        if self._thread is not None or self._listeners:  # listening threads only in a started scheduler
            self._sync_realtime(realtime_states)

    # -- inventory ---------------------------------------------------------------------------------------
    def _reload(self) -> None:
        """Re-read which flows carry triggers, only when the flows table changed."""
        fingerprint = self.store.flows_fingerprint()
        if fingerprint == self._fingerprint:
            return
        rows = self.store.latest_flow_revisions()
        inventory: dict[tuple[str, str, str], _FlowEntry] = {}
        for r in rows:
            if r.deleted:
                continue
            key = (r.tenant, r.namespace, r.id)
            old = self._inventory.get(key)
            if old is not None and old.revision == r.revision:
                inventory[key] = old
                continue
            if (*key, r.revision) in self._broken:
                continue
            try:
                flow = self.engine.flow(r.tenant, r.namespace, r.id, r.revision)
            except Exception as exc:
                self._broken.add((*key, r.revision))
                log.warning("flow %s.%s (revision %s) cannot be parsed; its triggers are ignored: %s",
                            r.namespace, r.id, r.revision, exc)  # fmt: skip
                continue
            entry = _FlowEntry(r.tenant, flow)
            if entry.active:
                inventory[key] = entry
        with self._lock:
            self._inventory = inventory
        self._fingerprint = fingerprint

    # -- state ----------------------------------------------------------------------------------------------
    def _save(self, entry: _FlowEntry, trig: Any, data: dict[str, Any], next_date: float | None) -> None:
        data = {
            k: v
            for k, v in data.items()
            if k not in ("disabled", "nextDate", "namespace", "flowId", "triggerId")
        }
        data["updatedDate"] = iso(datetime.now(UTC))
        self.store.put_trigger(
            entry.tenant, entry.namespace, entry.flow_id, trig.id, data, next_date=next_date
        )

    def _start(self, entry: _FlowEntry, trig: Any, variables: dict[str, Any], *, execution_id: str | None = None,
               inputs: dict[str, Any] | None = None, labels: Any = None) -> Execution | None:  # fmt: skip
        """Start one execution of the entry's flow for ``trig``; None when it already exists or cannot start."""
        if execution_id is not None and self.engine.get_execution(execution_id) is not None:
            return None  # started before a crash or by another scheduler
        flow = entry.flow
        try:
            given = trig.inputs if inputs is None else {**(trig.inputs or {}), **inputs}
            rendered = (
                render_value(self.engine, entry.tenant, flow, given, {"trigger": variables})
                if given
                else None
            )
            merged = label_list(trig.labels) + label_list(labels)
            return self.engine.create_execution(
                flow, rendered, merged or None, tenant=entry.tenant, execution_id=execution_id,
                trigger={"id": trig.id, "type": trig.type, "variables": variables},
            )  # fmt: skip
        except ExecutionExists:
            return None  # another scheduler process fired this date first
        except Exception as exc:
            log.error(
                "trigger %s of %s.%s could not start an execution: %s",
                trig.id,
                entry.namespace,
                entry.flow_id,
                exc,
            )
            return None

    # -- Schedule ---------------------------------------------------------------------------------------------
    def _schedule(self, entry: _FlowEntry, trig: Any, state: dict[str, Any] | None, now: float) -> None:
        key = (entry.tenant, entry.namespace, entry.flow_id, trig.id)
        zone = ZoneInfo(trig.timezone)
        now_dt = datetime.fromtimestamp(now, UTC)
        first_look = key not in self._seen
        self._seen.add(key)
        if entry.flow.disabled or trig.disabled or (state is not None and state.get("disabled")):
            # dates passing while disabled are skipped, not replayed once enabled again
            if state is not None and state.get("nextDate") is not None and state["nextDate"] <= now:
                nxt = trig.next_after(now_dt)
                data = {**state, "nextExecutionDate": iso(nxt)}
                self._save(entry, trig, data, nxt.timestamp())
            return
        data = dict(state or {})
        data["type"] = trig.type
        next_ts = state.get("nextDate") if state else None
        if state is None or next_ts is None or data.get("fingerprint") != trig.fingerprint():
            # new trigger, or its cron changed: start from the next date after now, never from the past
            nxt = trig.next_after(now_dt)
            data["fingerprint"] = trig.fingerprint()
            data["nextExecutionDate"] = iso(nxt)
            if state is None and trig.backfill is not None:
                bf = trig.backfill
                start = parse_date(bf.start, zone)
                data["backfill"] = {"start": iso(start), "end": iso(parse_date(bf.end, zone)) if bf.end else iso(now_dt),
                                    "currentDate": iso(start), "paused": False, "inputs": bf.inputs,
                                    "labels": label_list(bf.labels)}  # fmt: skip
            self._save(entry, trig, data, nxt.timestamp())
            self.next_wakeup = min(self.next_wakeup, nxt.timestamp())
            state, next_ts = data, nxt.timestamp()
        # dates now due
        due: list[datetime] = []
        cursor = datetime.fromtimestamp(float(next_ts), UTC).astimezone(zone)
        policy = trig.recover_missed_schedules or "ALL"
        if first_look and policy != "ALL" and cursor.timestamp() < self._started_at:
            # dates missed while no scheduler ran: only the last one (LAST) or none (NONE)
            started = datetime.fromtimestamp(self._started_at, UTC)
            last_missed = trig.previous_before(started.astimezone(zone))
            log.info("%s.%s/%s: schedules missed since %s while stopped; recoverMissedSchedules=%s",
                     entry.namespace, entry.flow_id, trig.id, iso(cursor), policy)  # fmt: skip
            if policy == "LAST" and last_missed >= cursor:
                due.append(last_missed)
            cursor = trig.next_after(last_missed)
        while cursor.timestamp() <= now and len(due) < MAX_DATES_PER_TICK:
            due.append(cursor)
            cursor = trig.next_after(cursor)
        fired = False
        for d in due:
            if trig.late_maximum_delay is not None and now_dt - d > trig.late_maximum_delay:
                log.info("%s.%s/%s: date %s skipped, later than lateMaximumDelay", entry.namespace, entry.flow_id,
                         trig.id, iso(d))  # fmt: skip
                continue
            if self._fire_date(entry, trig, d):
                data["date"] = iso(d)
                fired = True
        if due or fired:
            data["nextExecutionDate"] = iso(cursor)
            self._save(entry, trig, data, cursor.timestamp())
        self.next_wakeup = min(self.next_wakeup, cursor.timestamp())
        if data.get("backfill"):
            self._backfill(entry, trig, data, now_dt, cursor.timestamp())

    def _fire_date(
        self, entry: _FlowEntry, trig: Any, when: datetime, *, backfill: dict[str, Any] | None = None
    ) -> bool:
        variables = {
            "date": iso(when),
            "next": iso(trig.next_after(when)),
            "previous": iso(trig.previous_before(when)),
        }
        conditions = trig.date_conditions()
        if conditions:
            self._conditions.render = lambda expr, scope: render_value(
                self.engine, entry.tenant, entry.flow, expr, scope
            )
            if not self._conditions.all(conditions, when=when, variables={"trigger": variables}):
                return False
        ex_id = stable_id(
            entry.tenant, entry.namespace, entry.flow_id, trig.id, iso(when), "backfill" if backfill else ""
        )
        ex = self._start(entry, trig, variables, execution_id=ex_id,
                         inputs=(backfill or {}).get("inputs"), labels=(backfill or {}).get("labels"))  # fmt: skip
        return ex is not None

    def _backfill(
        self, entry: _FlowEntry, trig: Any, data: dict[str, Any], now_dt: datetime, next_ts: float
    ) -> None:
        bf = dict(data["backfill"])
        if bf.get("paused"):
            return
        zone = ZoneInfo(trig.timezone)
        end = parse_date(bf.get("end"), zone) or now_dt
        end = min(end, now_dt)
        current = parse_date(bf.get("currentDate") or bf.get("start"), zone)
        if current is None:
            data.pop("backfill", None)
            self._save(entry, trig, data, next_ts)
            return
        cursor = trig.next_after(current.astimezone(zone) - timedelta(microseconds=1))
        count = 0
        while cursor <= end and count < MAX_DATES_PER_TICK:
            self._fire_date(entry, trig, cursor, backfill=bf)
            cursor = trig.next_after(cursor)
            count += 1
        until = parse_date(bf.get("end"), zone)
        if cursor > end and (until is None or until <= now_dt):
            data.pop("backfill", None)  # done
        else:
            bf["currentDate"] = iso(cursor)
            data["backfill"] = bf
        self._save(entry, trig, data, next_ts)

    # -- polling ----------------------------------------------------------------------------------------------
    def _poll(self, entry: _FlowEntry, trig: Any, state: dict[str, Any] | None, now: float) -> None:
        key = (entry.tenant, entry.namespace, entry.flow_id, trig.id)
        if trig.disabled or (state is not None and state.get("disabled")):
            return
        interval = max(duration(getattr(trig, "interval", None), timedelta(minutes=1)).total_seconds(), 0.05)  # type: ignore[union-attr]
        next_ts = state.get("nextDate") if state else None
        if next_ts is None:
            next_ts = now  # a new polling trigger is evaluated at once
        if next_ts > now:
            if state and state.get("pending") and key not in self._in_flight:
                self._start_pending(entry, trig, dict(state), next_ts)  # decided before a crash: start now
            self.next_wakeup = min(self.next_wakeup, next_ts)
            return
        if key in self._in_flight or self._pool is None:
            if self._pool is None:  # tick() called without start(): evaluate inline
                self._evaluate(entry, trig, dict(state or {}), next_ts, interval, now)
            return
        self._in_flight.add(key)
        self._pool.submit(self._evaluate, entry, trig, dict(state or {}), next_ts, interval, now)

    def _evaluate(self, entry: _FlowEntry, trig: Any, data: dict[str, Any], due: float, interval: float,
                  now: float) -> None:  # fmt: skip
        """One evaluation of a polling trigger.

        The trigger's own state (``ctx.state``, e.g. a cursor) and the executions it decided are saved
        together, as ``pending`` with ids derived from the due date, before any starts; then they start
        and ``pending`` is cleared. A crash in between replays ``pending`` with the same ids at the next
        look, and an id that exists is never created again: every decision fires exactly once.
        """
        key = (entry.tenant, entry.namespace, entry.flow_id, trig.id)
        try:
            self._start_pending(entry, trig, data, data.get("nextDate"))
            # the next evaluation keeps the cadence; after a long gap, it restarts from now
            nxt = due + interval
            if nxt <= now:
                nxt = now + interval
            data["type"] = trig.type
            data["date"] = iso(datetime.fromtimestamp(now, UTC))
            data["nextExecutionDate"] = iso(datetime.fromtimestamp(nxt, UTC))
            self._save(entry, trig, data, nxt)
            ctx = TriggerContext(self.engine, entry.tenant, entry.flow, trig, state=data.get("state"))
            try:
                result = trig.evaluate(ctx)
                if inspect.isgenerator(result):
                    self._drive(entry, trig, ctx, result, data, now)
                    result = None
            except Exception as exc:
                log.error(
                    "polling trigger %s of %s.%s failed to evaluate: %s",
                    trig.id,
                    entry.namespace,
                    entry.flow_id,
                    exc,
                )
                result, ctx.state = None, data.get("state") or {}  # a failed evaluation keeps the old state
            if result and trig.conditions:
                render = lambda expr, scope: render_value(self.engine, entry.tenant, entry.flow, expr, scope)  # noqa: E731
                if not Conditions(render).all(trig.conditions, when=datetime.fromtimestamp(now, UTC)):
                    result = None
            batch = [] if not result else [result] if isinstance(result, dict) else list(result)
            if ctx.state or "state" in data:
                data["state"] = ctx.state
            data["pending"] = [
                {"executionId": stable_id(entry.tenant, entry.namespace, entry.flow_id, trig.id, "poll", due, i),
                 "variables": dict(v.as_dict() if hasattr(v, "as_dict") else v)}
                for i, v in enumerate(batch)
            ]  # fmt: skip
            if batch or "state" in data:
                self._save(entry, trig, data, nxt)
            if not self._stop.is_set():
                self._start_pending(entry, trig, data, nxt)
            self.next_wakeup = min(self.next_wakeup, nxt)
            self._wake.set()
        finally:
            self._in_flight.discard(key)

    def _start_pending(
        self, entry: _FlowEntry, trig: Any, data: dict[str, Any], next_date: float | None
    ) -> None:
        """Start the executions a polling trigger decided (each once: ids that exist are skipped)."""
        pending = data.pop("pending", None)
        if not pending:
            return
        for item in pending:
            ex = self._start(entry, trig, dict(item["variables"]), execution_id=item["executionId"])
            if ex is not None:
                data["executionId"] = ex.id
        self._save(entry, trig, data, next_date)

    def _fire(
        self, entry: _FlowEntry, trig: Any, ctx: TriggerContext, variables: Any, now: float
    ) -> Execution | None:
        """Start one execution of a generator trigger's yielded variables (the files it stored go with it)."""
        if hasattr(variables, "as_dict"):
            variables = variables.as_dict()
        reserved = ctx.take_execution_id()
        ex = None
        if not self._stop.is_set():
            render = lambda expr, scope: render_value(self.engine, entry.tenant, entry.flow, expr, scope)  # noqa: E731
            if not trig.conditions or Conditions(render).all(
                trig.conditions, when=datetime.fromtimestamp(now, UTC)
            ):
                ex = self._start(entry, trig, dict(variables), execution_id=reserved)
        if ex is None:
            ctx.discard_files(reserved)  # nothing half-written is left behind
        return ex

    def _drive(self, entry: _FlowEntry, trig: Any, ctx: TriggerContext, gen: Any, data: dict[str, Any],
               now: float) -> None:  # fmt: skip
        """Run a generator ``evaluate``: each yielded mapping starts an execution that is sent back."""
        sent: Execution | None = None
        try:
            while True:
                variables = gen.send(sent)
                sent = None if variables is None else self._fire(entry, trig, ctx, variables, now)
                if sent is not None:
                    data["executionId"] = sent.id
        except StopIteration:
            pass
        finally:
            gen.close()

    # -- realtime triggers ------------------------------------------------------------------------------------
    def _sync_realtime(self, states: dict[tuple[str, str, str, str], dict[str, Any]]) -> None:
        """Keep one listening thread per enabled realtime trigger of the current revisions; stop the others."""
        wanted: dict[tuple[str, str, str, str, int], tuple[_FlowEntry, Any]] = {}
        if not self._stop.is_set():
            for entry in self._inventory.values():
                if entry.flow.disabled:
                    continue
                for trig in entry.realtime:
                    state = states.get((entry.tenant, entry.namespace, entry.flow_id, trig.id))
                    if trig.disabled or (state is not None and state.get("disabled")):
                        continue
                    wanted[(entry.tenant, entry.namespace, entry.flow_id, trig.id, entry.revision)] = (
                        entry,
                        trig,
                    )
        for key in [k for k in self._listeners if k not in wanted]:
            self._listeners.pop(key).stop()
        for key, (entry, trig) in wanted.items():
            if key not in self._listeners:
                self._listeners[key] = Listener(self.engine, entry, trig, self._fire).start()

    def _stop_listeners(self) -> None:
        listeners, self._listeners = self._listeners, {}
        for listener in listeners.values():
            listener.stop_event.set()
        for listener in listeners.values():
            listener.stop()

    # -- Flow triggers and stopAfter -------------------------------------------------------------------------
    def _on_execution_end(self, ex: Execution) -> None:
        """Called by the executor thread: hand over to the scheduler thread."""
        self._events.put(ex)
        self._wake.set()

    def _drain_events(self) -> None:
        while True:
            try:
                ex = self._events.get_nowait()
            except queue.Empty:
                return
            self._handle_end(ex)

    def _handle_end(self, ex: Execution) -> None:
        end = ex.state.end
        key = f"{ex.id}@{iso(end)}"  # a restarted execution that ends again counts again
        if key in self._recent:
            return
        self._recent[key] = end.timestamp() if end else time.time()
        if len(self._recent) > 10000:
            for key in sorted(self._recent, key=self._recent.__getitem__)[:5000]:
                del self._recent[key]
        try:
            self._stop_after(ex)
            self._flow_triggers(ex)
        except Exception:
            log.exception("flow triggers on the end of execution %s failed", ex.id)

    def _watch_store(self) -> None:
        """Without an executor in this process (a separate ``scheduler`` component), no execution-end
        callback ever comes: read the executions that ended since the last look from the store instead."""
        now = time.time()
        if getattr(self.engine, "_thread", None) is not None and getattr(self.engine, "leases", None) is None:
            self._watermark = now  # the executor runs here and calls back
            return
        if self._watermark is None:
            self._watermark = self._started_at or now
        if now - self._last_watch < self.watch_interval:
            return
        self._last_watch = now
        if not any(
            e.flow_triggers or any(t.stop_after for t in e.flow.triggers) for e in self._inventory.values()
        ):
            self._watermark = now
            return
        since = self._watermark - 1.0  # overlap: an end written late still counts once
        for data, end_date in self.store.ended_since(since):
            ex = Execution.from_dicts(data, [])
            if ex.state.terminal():
                self._handle_end(ex)
            self._watermark = max(self._watermark, end_date)

    def process_execution_end(self, ex: Execution) -> None:
        """Apply Flow triggers and stopAfter for one ended execution (what the loop does for each)."""
        self._reload()
        self._handle_end(ex)

    def _stop_after(self, ex: Execution) -> None:
        trig_info = ex.trigger or {}
        entry = self._inventory.get((ex.tenant, ex.namespace, ex.flow_id))
        if entry is None or not trig_info.get("id"):
            return
        for trig in entry.flow.triggers:
            if trig.id == trig_info["id"] and trig.stop_after and ex.state.current in trig.stop_after:
                state = self.store.get_trigger(ex.tenant, ex.namespace, ex.flow_id, trig.id) or {}
                data = {k: v for k, v in state.items() if k not in ("disabled", "nextDate")}
                self.store.put_trigger(ex.tenant, ex.namespace, ex.flow_id, trig.id, data, next_date=state.get("nextDate"),
                                       disabled=True)  # fmt: skip
                log.info("trigger %s of %s.%s disabled: execution %s ended %s (stopAfter)", trig.id, ex.namespace,
                         ex.flow_id, ex.id, ex.state.current)  # fmt: skip

    def _flow_triggers(self, ex: Execution) -> None:
        variables = {
            "executionId": ex.id, "namespace": ex.namespace, "flowId": ex.flow_id, "flowRevision": ex.flow_revision,
            "state": ex.state.current, "outputs": ex.outputs or {}, "executionLabels": ex.label_map(),
        }  # fmt: skip
        now_dt = datetime.now(UTC)
        for entry in list(self._inventory.values()):
            if entry.tenant != ex.tenant or not entry.flow_triggers or entry.flow.disabled:
                continue
            if entry.namespace == ex.namespace and entry.flow_id == ex.flow_id:
                continue  # a flow never triggers itself
            for trig in entry.flow_triggers:
                if trig.disabled or ex.state.current not in (trig.states or TERMINAL_DEFAULT):
                    continue

                def render(expr: str, scope: dict[str, Any], _e: _FlowEntry = entry) -> Any:
                    return render_value(self.engine, _e.tenant, _e.flow, expr, scope)

                self._conditions.render = render
                scope = {"trigger": variables}
                plain = [c for c in trig.conditions or [] if short_type(c.get("type")) != "MultipleCondition"]
                try:
                    if not self._conditions.all(plain, execution=ex, when=now_dt, variables=scope):
                        continue
                except Exception as exc:
                    log.warning(
                        "conditions of trigger %s of %s.%s failed: %s",
                        trig.id,
                        entry.namespace,
                        entry.flow_id,
                        exc,
                    )
                    continue
                state = self.store.get_trigger(entry.tenant, entry.namespace, entry.flow_id, trig.id)
                if state is not None and state.get("disabled"):
                    continue
                windows = self._windows(trig)
                if windows:
                    data = dict(state or {})
                    ok = all(self._window_met(data, name, entries, window, ex, render, scope, now_dt)
                             for name, entries, window, _reset in windows)  # fmt: skip
                    if ok:
                        for name, _entries, _window, reset in windows:
                            if reset:
                                data.setdefault("preconditions", {}).pop(name, None)
                    data["type"] = trig.type
                    if ok:
                        data["date"] = iso(now_dt)
                    self._save(entry, trig, data, None)
                    if not ok:
                        continue
                ex_id = stable_id(
                    entry.tenant, entry.namespace, entry.flow_id, trig.id, ex.id, iso(ex.state.end)
                )
                self._start(entry, trig, dict(variables), execution_id=ex_id)

    @staticmethod
    def _windows(trig: Any) -> list[tuple[str, list[tuple[str, Callable[..., bool]]], Window, bool]]:
        """Each stateful requirement group of a Flow trigger: its ``preconditions`` and any MultipleCondition."""
        out = []
        pre = trig.preconditions
        if pre is not None:
            entries = precondition_entries(pre)
            if entries:
                out.append(
                    (pre.id or "preconditions", entries, Window(pre.time_window), pre.reset_on_success)
                )
        for cond in trig.conditions or []:
            if short_type(cond.get("type")) != "MultipleCondition":
                continue
            subs = cond.get("conditions") or {}
            checker = Conditions()
            entries = [(name, (lambda ex, render, variables, c=c, k=checker: k.one(c, execution=ex, variables=variables)))
                       for name, c in subs.items()]  # fmt: skip
            spec = cond.get("timeWindow") or cond.get("timeSLA") or cond.get("sla") or {}
            if cond.get("window"):
                spec = {"window": cond["window"], "windowAdvance": cond.get("windowAdvance")}
            out.append(
                (cond.get("id") or "multiple", entries, Window(spec), cond.get("resetOnSuccess", True))
            )
        return out

    @staticmethod
    def _window_met(data: dict[str, Any], name: str, entries: list[tuple[str, Callable[..., bool]]], window: Window,
                    ex: Execution, render: Any, scope: dict[str, Any], now_dt: datetime) -> bool:  # fmt: skip
        """Record which requirements ``ex`` meets (in the current window) and say whether all are met."""
        group = data.setdefault("preconditions", {}).setdefault(name, {})
        bounds = window.bounds(now_dt)
        if bounds is not None:
            start, end = iso(bounds[0]), iso(bounds[1])
            if group.get("windowStart") != start:
                group.clear()
                group.update({"windowStart": start, "windowEnd": end})
        results: dict[str, Any] = group.setdefault("results", {})
        if bounds is None:  # sliding: forget what is older than the window
            horizon = (now_dt - window.window).timestamp()
            for k in [k for k, v in results.items() if v.get("at", 0) < horizon]:
                del results[k]
        if window.counts(now_dt):
            for entry_name, check in entries:
                try:
                    matched = check(ex, render, scope)
                except Exception as exc:
                    log.warning("precondition %s failed to evaluate: %s", entry_name, exc)
                    matched = False
                if matched:
                    results[entry_name] = {"at": now_dt.timestamp(), "executionId": ex.id}
        return all(entry_name in results for entry_name, _ in entries)


__all__ = ["Scheduler", "TriggerContext", "stable_id"]
