"""``roostctl killswitch`` and ``roostctl auditlogs``: the administrator's levers and records."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from rich.markup import escape

from roost.cli.ctl_base import CtlGroup, ctl
from roost.cli.ctl_client import NotFound, seg

KS = "/api/v1/kill-switches"
TYPES = ("KILL", "CANCEL", "IGNORE")


@click.group("killswitch", cls=CtlGroup, aliases=("killswitches", "ks"))
def killswitch() -> None:
    """List, create, update and delete kill switches (KILL, CANCEL or IGNORE the executions of a tenant,
    namespace, flow or execution list, from a start date to an optional end date)."""


def _when(value: str | None, name: str) -> str | None:
    """``now``, an ISO-8601 date-time, or a duration from now (PT30M, 2h, 45m)."""
    if value is None:
        return None
    text = value.strip()
    if text.lower() == "now":
        return datetime.now(UTC).isoformat().replace("+00:00", "Z")
    delta = _duration(text)
    if delta is not None:
        return (datetime.now(UTC) + delta).isoformat().replace("+00:00", "Z")
    try:
        dt = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected now, an ISO-8601 date-time or a duration (PT1H, 30m)",
                                 param_hint=name) from None  # fmt: skip
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).isoformat().replace("+00:00", "Z")


def _duration(text: str) -> timedelta | None:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if len(text) > 1 and text[-1].lower() in units and text[:-1].isdigit():
        return timedelta(seconds=int(text[:-1]) * units[text[-1].lower()])
    if text.upper().startswith("P"):
        from pydantic import TypeAdapter, ValidationError

        try:
            return TypeAdapter(timedelta).validate_python(text.upper())
        except ValidationError:
            return None
    return None


def _scope(sw: dict[str, Any]) -> str:
    if sw.get("executionIds"):
        ids = sw["executionIds"]
        return f"executions {', '.join(ids[:3])}" + (f" (+{len(ids) - 3})" if len(ids) > 3 else "")
    if sw.get("flowId"):
        return f"flow {sw.get('namespace')}.{sw['flowId']}"
    if sw.get("namespace"):
        return f"namespace {sw['namespace']}"
    return f"tenant {sw.get('tenantId')}"


def _show(switches: list[dict[str, Any]], footer: str | None = None) -> None:
    c = ctl()
    if c.out.json_mode:
        c.out.json(switches)
        return
    c.out.table(["ID", "NAME", "TYPE", "SCOPE", "STATUS", "START", "END", "REASON"],
                [(s["id"], s["name"], s["evaluationType"], _scope(s), s.get("status"), s.get("startDate"),
                  s.get("endDate") or "-", s.get("description") or "") for s in switches], footer=footer)  # fmt: skip


@killswitch.command("list", aliases=("ls",))
@click.option("--status", "statuses", multiple=True, type=click.Choice(["SCHEDULED", "ACTIVE", "DISABLED", "ARCHIVED"],
              case_sensitive=False), help="Only these (repeatable); archived ones (ended or deleted) are listed too by default.")  # fmt: skip
@click.option("--all-tenants", is_flag=True, help="Switches of every tenant, not only the context's.")
def ks_list(statuses: tuple[str, ...], all_tenants: bool) -> None:
    """List kill switches."""
    c = ctl()
    params: list[tuple[str, Any]] = [("status", s.upper()) for s in statuses]
    if not all_tenants:
        params.append(("tenantId", c.client.tenant))
    found = c.client.request("GET", KS + "/search", tenant_scoped=False, params=params).json()
    active = sum(1 for s in found if s.get("status") == "ACTIVE")
    _show(found, f"\n{len(found)} kill switch(es), {active} active")


def _body(name: str | None, kind: str | None, namespace: str | None, flow: str | None, executions: tuple[str, ...],
          start: str | None, end: str | None, reason: str | None, enabled: bool | None,
          base: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    body = dict(base or {})
    for k in ("status", "archived", "created", "createdBy", "updated", "updatedBy", "deleted", "id"):
        body.pop(k, None)
    if name is not None:
        body["name"] = name
    if kind is not None:
        body["evaluationType"] = kind.upper()
    if flow is not None:
        ns, dot, flow_id = flow.rpartition(".")
        if namespace is None and not dot:
            raise click.BadParameter(
                "give the flow as namespace.flowId, or --namespace with --flow", param_hint="--flow"
            )
        body.update(namespace=namespace or ns, flowId=flow_id if namespace is None else flow, executionIds=[])
    elif namespace is not None:
        body.update(namespace=namespace, flowId=None, executionIds=[])
    if executions:
        body.update(executionIds=list(executions), namespace=None, flowId=None)
    if start is not None:
        body["startDate"] = _when(start, "--start")
    if end is not None:
        body["endDate"] = None if end.lower() in ("none", "never") else _when(end, "--end")
    if reason is not None:
        body["description"] = reason
    if enabled is not None:
        body["enabled"] = enabled
    return body


def _options(fn: Any) -> Any:
    opts = [
        click.option("--namespace", "-n", help="Scope: this namespace and its children."),
        click.option("--flow", "-f", help="Scope: one flow (namespace.flowId, or flowId with --namespace)."),
        click.option("--execution", "-e", "executions", multiple=True, help="Scope: these executions (repeatable)."),
        click.option("--start", help="When it starts acting: now (default), an ISO-8601 date-time, or a delay (PT10M, 2h)."),
        click.option("--end", help="When it stops: an ISO-8601 date-time or a duration from now (PT1H, 30m); none: open-ended."),
        click.option("--reason", "-r", help="Why: shown in the banners and the audit log."),
        click.option("--enabled/--disabled", default=None, help="Enable or disable it."),
    ]  # fmt: skip
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


@killswitch.command("create")
@click.argument("name")
@click.option("--type", "kind", required=True, type=click.Choice(TYPES, case_sensitive=False),
              help="KILL: kill running and new executions. CANCEL: new ones cancelled, running task runs finish. "
                   "IGNORE: drop every message (last resort).")  # fmt: skip
@_options
def ks_create(name: str, kind: str, namespace: str | None, flow: str | None, executions: tuple[str, ...],
              start: str | None, end: str | None, reason: str | None, enabled: bool | None) -> None:  # fmt: skip
    """Create kill switch NAME on the context's tenant (or a namespace, flow or executions of it)."""
    c = ctl()
    body = _body(name, kind, namespace, flow, executions, start or "now", end, reason, enabled)
    body["tenantId"] = c.client.tenant
    created = c.client.request("POST", KS, tenant_scoped=False, json=body).json()
    if c.out.json_mode:
        c.out.json(created)
        return
    c.out.line(f"Kill switch '{created['name']}' ({created['evaluationType']}) created on {_scope(created)}: "
               f"{created.get('status')} (id {created['id']}).", markup=False)  # fmt: skip


def _get(switch_id: str) -> dict[str, Any]:
    c = ctl()
    try:
        return c.client.request("GET", f"{KS}/{seg(switch_id)}", tenant_scoped=False).json()
    except NotFound:
        raise NotFound(f"kill switch '{switch_id}' not found") from None


@killswitch.command("get", aliases=("show",))
@click.argument("switch_id")
def ks_get(switch_id: str) -> None:
    """Show one kill switch."""
    c = ctl()
    sw = _get(switch_id)
    if c.out.json_mode:
        c.out.json(sw)
        return
    c.out.table(
        ["FIELD", "VALUE"], [(k, json.dumps(v) if isinstance(v, list | dict) else v) for k, v in sw.items()]
    )


@killswitch.command("update")
@click.argument("switch_id")
@click.option("--name", help="A new name.")
@click.option("--type", "kind", type=click.Choice(TYPES, case_sensitive=False), help="A new type.")
@_options
def ks_update(switch_id: str, name: str | None, kind: str | None, namespace: str | None, flow: str | None,
              executions: tuple[str, ...], start: str | None, end: str | None, reason: str | None,
              enabled: bool | None) -> None:  # fmt: skip
    """Change a kill switch (end it now with --end now; archived ones cannot change)."""
    c = ctl()
    current = _get(switch_id)
    body = _body(name, kind, namespace, flow, executions, start, end, reason, enabled, base=current)
    updated = c.client.request("PUT", f"{KS}/{seg(switch_id)}", tenant_scoped=False, json=body).json()
    c.out.result(updated, f"Kill switch '{escape(updated['name'])}' updated: {updated.get('status')}.")


@killswitch.command("delete", aliases=("rm",))
@click.argument("switch_id")
def ks_delete(switch_id: str) -> None:
    """Delete a kill switch: it stops acting at once and stays listed, archived."""
    c = ctl()
    sw = _get(switch_id)
    c.client.request("DELETE", f"{KS}/{seg(switch_id)}", tenant_scoped=False)
    c.out.result(
        {"id": switch_id, "status": "deleted"}, f"Kill switch '{escape(sw['name'])}' deleted (archived)."
    )


@click.group("auditlogs", cls=CtlGroup, aliases=("auditlog", "audit"))
def auditlogs() -> None:
    """Read the audit log: who changed what, when, from where."""


@auditlogs.command("list", aliases=("ls", "search"))
@click.option("--namespace", "-n", help="This namespace and its children.")
@click.option("--flow", help="A flow id.")
@click.option("--execution", help="An execution id.")
@click.option("--actor", "user", help="Who acted: a username, token:NAME, or system.")
@click.option(
    "--resource",
    "resources",
    multiple=True,
    help="FLOW, EXECUTION, KV_STORE, NAMESPACE_FILE, KILL_SWITCH, USER... (repeatable).",
)
@click.option("--type", "kind", help="CREATE, UPDATE, DELETE, LOGIN, LOGIN_FAILURE...")
@click.option("--since", help="From this ISO-8601 date-time, or this long ago (PT1H, 30m, 2d).")
@click.option("--until", help="Until this ISO-8601 date-time.")
@click.option("--query", "-q", help="Free text in the details or the user.")
@click.option("--size", type=int, default=100, show_default=True, help="At most this many, newest first.")
@click.option(
    "--all-tenants", is_flag=True, help="Every tenant's entries, and logins (needs a role on every tenant)."
)
def audit_list(namespace: str | None, flow: str | None, execution: str | None, user: str | None,
               resources: tuple[str, ...], kind: str | None, since: str | None, until: str | None,
               query: str | None, size: int, all_tenants: bool) -> None:  # fmt: skip
    """List audit log entries."""
    c = ctl()
    since_iso = None
    if since is not None:
        delta = _duration(since)
        since_iso = (datetime.now(UTC) - delta).isoformat() if delta is not None else _when(since, "--since")
    params: list[tuple[str, Any]] = [(k, v) for k, v in (("namespace", namespace), ("flowId", flow), ("executionId", execution),
                                     ("userId", user), ("type", kind and kind.upper()), ("startDate", since_iso),
                                     ("endDate", _when(until, "--until")), ("q", query)) if v]  # fmt: skip
    params += [("resources", r.upper()) for r in resources]
    path = "/api/v1/auditlogs/search" if all_tenants else c.client.path("/auditlogs/search")
    found: list[dict[str, Any]] = []
    page = 1
    while len(found) < size:
        body = c.client.request("GET", path, tenant_scoped=False,
                                params=[*params, ("page", page), ("size", min(size, 500))]).json()  # fmt: skip
        results = body.get("results") or []
        found += results
        if not results or len(found) >= int(body.get("total") or 0):
            break
        page += 1
    entries = [r["auditLog"] for r in found[:size]]
    if c.out.json_mode:
        c.out.json(entries)
        return
    c.out.table(["DATE", "USER", "IP", "TYPE", "RESOURCE", "ID", "NAMESPACE"],
                [(e["date"], e["userId"], e.get("ipAddress") or "", e["type"], e["detail"].get("resourceType"),
                  e["detail"].get("id"), e["detail"].get("namespace") or "") for e in entries],
                footer=f"\n{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")  # fmt: skip


COMMANDS = [killswitch, auditlogs]
__all__ = ["COMMANDS"]
