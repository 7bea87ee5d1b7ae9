"""``roostctl namespaces``, ``roostctl kv`` and ``roostctl assets``."""

from __future__ import annotations

import json
import re
from typing import Any

import click

from roost.cli.ctl_base import CtlGroup, ctl, parse_pairs
from roost.cli.ctl_client import CtlError, NotFound, filters, seg

# -- namespaces -------------------------------------------------------------------------------------------------


@click.group("namespaces", cls=CtlGroup, aliases=("namespace", "ns"))
def namespaces() -> None:
    """List namespaces."""


@namespaces.command("list", aliases=("ls",))
@click.option("--query", "-q", help="Only namespaces containing this text.")
@click.argument("prefix", required=False)
def namespaces_list(query: str | None, prefix: str | None) -> None:
    """List namespaces (those holding flows, files or KV pairs), optionally filtered."""
    c = ctl()
    names: list[str]
    try:
        params: list[tuple[str, Any]] = [("q", query)] if query else []
        found = list(c.client.paged("/namespaces/search", params, size=500))
        names = [str(n.get("id") if isinstance(n, dict) else n) for n in found]
    except NotFound:
        names = list(c.client.get("/flows/distinct-namespaces", params={"q": query} if query else None) or [])
    if query:
        names = [n for n in names if query.lower() in n.lower()]
    if prefix:
        names = [n for n in names if n == prefix or n.startswith(prefix + ".")]
    names = sorted(set(names))
    if c.out.json_mode:
        c.out.json(names)
        return
    c.out.table(["NAMESPACE"], [(n,) for n in names], footer=f"\nTotal namespaces: {len(names)}")


# -- kv -------------------------------------------------------------------------------------------------------------
@click.group("kv", cls=CtlGroup)
def kv() -> None:
    """Get, set, list and delete key-value pairs of a namespace."""


def _kv_rows(c: Any, entries: list[dict[str, Any]], title: str) -> None:
    if c.out.json_mode:
        c.out.json(entries)
        return
    c.out.table(["NAMESPACE", "KEY", "CREATED", "UPDATED", "EXPIRES"],
                [(e.get("namespace"), e.get("key"), e.get("creationDate"), e.get("updateDate"), e.get("expirationDate"))
                 for e in entries], footer=f"\n{title}")  # fmt: skip


@kv.command("list", aliases=("ls",))
@click.argument("namespace", required=False)
def kv_list(namespace: str | None) -> None:
    """List key-value entries: of every namespace, or of NAMESPACE."""
    c = ctl()
    params = filters(namespace=namespace) if namespace else []
    entries = list(c.client.paged("/kv", params, size=100))
    _kv_rows(c, entries, f"Found {len(entries)} key-value entries.")


@kv.command("list-inherited")
@click.argument("namespace")
def kv_list_inherited(namespace: str) -> None:
    """List the key-value entries NAMESPACE inherits from its parent namespaces."""
    c = ctl()
    entries = c.client.get(f"/namespaces/{seg(namespace)}/kv/inheritance") or []
    _kv_rows(c, entries, f"Found {len(entries)} inherited key-value entries.")


@kv.command("get")
@click.argument("namespace")
@click.argument("key")
def kv_get(namespace: str, key: str) -> None:
    """Print a value (strings as is, other types as JSON)."""
    c = ctl()
    body = c.client.get(f"/namespaces/{seg(namespace)}/kv/{seg(key)}")
    if c.out.json_mode:
        c.out.json(body)
        return
    value = body.get("value") if isinstance(body, dict) and "value" in body else body
    c.out.raw((value if isinstance(value, str) else json.dumps(value, default=str)) + "\n")


KV_TYPES = ("STRING", "NUMBER", "BOOLEAN", "DATETIME", "DATE", "DURATION", "JSON")


def kv_body(kind: str | None, value: str) -> str:
    """The request body for VALUE stored as KIND (kestractl's checks); without a type the server infers it."""
    if kind is None:
        return value
    kind, text = kind.upper(), value.strip()
    if kind == "STRING":
        return json.dumps(value)
    if kind in ("NUMBER", "JSON"):
        try:
            parsed = json.loads(text)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a valid {kind}", param_hint="VALUE") from None
        if kind == "NUMBER" and (isinstance(parsed, bool) or not isinstance(parsed, int | float)):
            raise click.BadParameter(f"{value!r} is not a valid NUMBER", param_hint="VALUE")
        return json.dumps(parsed, separators=(",", ":")) if kind == "JSON" else text
    if kind == "BOOLEAN":
        if text.lower() not in ("true", "false"):
            raise click.BadParameter(f"{value!r} is not a valid BOOLEAN (true or false)", param_hint="VALUE")
        return text.lower()
    checks = {"DATE": r"^\d{4}-\d{2}-\d{2}$", "DATETIME": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$",
              "DURATION": r"^P\S+$"}  # fmt: skip
    if kind in checks and not re.match(checks[kind], text):
        raise click.BadParameter(f"{value!r} is not a valid {kind}", param_hint="VALUE")
    return text


def _kv_args(args: tuple[str, ...], kind: str | None) -> tuple[str, str | None, str, str]:
    """NAMESPACE TYPE KEY VALUE (kestractl's form) or NAMESPACE KEY VALUE (with --type)."""
    if len(args) == 4:
        if args[1].upper() not in KV_TYPES:
            raise click.BadParameter(
                f"invalid type {args[1]!r}, allowed values: {', '.join(KV_TYPES)}", param_hint="TYPE"
            )
        if kind and kind.upper() != args[1].upper():
            raise click.UsageError(f"the type is given twice: {args[1]} and --type {kind}")
        return args[0], args[1].upper(), args[2], args[3]
    if len(args) == 3:
        return args[0], kind.upper() if kind else None, args[1], args[2]
    raise click.UsageError("expected NAMESPACE TYPE KEY VALUE (or NAMESPACE KEY VALUE with --type)")


def _kv_write(
    args: tuple[str, ...], kind: str | None, ttl: str | None, description: str | None, update: bool
) -> None:
    c = ctl()
    namespace, kind, key, value = _kv_args(args, kind)
    body = kv_body(kind, value)
    path = f"/namespaces/{seg(namespace)}/kv/{seg(key)}"
    if update and not c.client.exists(path):
        raise NotFound(f"key '{key}' not found in namespace '{namespace}'")
    headers = {"Content-Type": "text/plain"}
    if ttl:
        headers["ttl"] = ttl
    if description:
        headers["description"] = description
    c.client.request("PUT", path, content=body.encode(), headers=headers)
    operation = "update" if update else "set"
    c.out.result({"operation": operation, "namespace": namespace, "key": key, "type": kind, "status": operation},
                 f"Key '{key}' {'updated' if update else 'set'} in namespace '{namespace}'.")  # fmt: skip


def _kv_write_command(name: str, update: bool, aliases: tuple[str, ...] = ()) -> Any:
    @kv.command(name, aliases=aliases)
    @click.argument("args", nargs=-1, metavar="NAMESPACE [TYPE] KEY VALUE")
    @click.option("--type", "kind", type=click.Choice(KV_TYPES, case_sensitive=False),
                  help="Store VALUE as this type (the TYPE argument does the same).")  # fmt: skip
    @click.option("--ttl", help="Expire after this ISO-8601 duration (PT1H).")
    @click.option("--description", help="What the key is for.")
    def command(args: tuple[str, ...], kind: str | None, ttl: str | None, description: str | None) -> None:
        _kv_write(args, kind, ttl, description, update)

    command.__doc__ = (
        ("Update an existing key of NAMESPACE." if update else "Set KEY to VALUE in NAMESPACE.")
        + " TYPE is one of "
        + ", ".join(KV_TYPES)
        + " (kestractl's form); without it the server infers the type."
    )
    return command


kv_set = _kv_write_command("set", False, ("put",))
kv_update = _kv_write_command("update", True)


@kv.command("delete-all")
@click.argument("namespace")
@click.argument("keys", nargs=-1, required=True)
def kv_delete_all(namespace: str, keys: tuple[str, ...]) -> None:
    """Delete several keys of NAMESPACE at once."""
    c = ctl()
    deleted = (
        c.client.request("DELETE", f"/namespaces/{seg(namespace)}/kv", json={"keys": list(keys)})
        .json()
        .get("keys")
        or []
    )
    c.out.result({"namespace": namespace, "deleted": deleted, "count": len(deleted)},
                 f"Deleted {len(deleted)} key(s) from namespace '{namespace}'.")  # fmt: skip


@kv.command("delete", aliases=("rm",))
@click.argument("namespace")
@click.argument("key")
def kv_delete(namespace: str, key: str) -> None:
    """Delete KEY from NAMESPACE."""
    c = ctl()
    resp = c.client.request("DELETE", f"/namespaces/{seg(namespace)}/kv/{seg(key)}")
    try:
        deleted = resp.json()
    except ValueError:
        deleted = True
    if deleted is False:
        raise NotFound(f"key '{key}' not found in namespace '{namespace}'")
    c.out.result(
        {"namespace": namespace, "key": key, "status": "deleted"},
        f"Key '{key}' deleted from namespace '{namespace}'.",
    )


# -- assets ---------------------------------------------------------------------------------------------------------
@click.group("assets", cls=CtlGroup, aliases=("asset",))
def assets() -> None:
    """List, get and delete assets."""


@assets.command("list", aliases=("ls", "search"))
@click.option("--namespace", "-n", help="Namespace (and its children).")
@click.option("--type", "types", multiple=True, help="Asset type (repeatable).")
@click.option("--query", "-q", help="Free-text filter on id and name.")
@click.option(
    "--metadata",
    "-m",
    "metadata",
    multiple=True,
    metavar="KEY=VALUE",
    help="Metadata that must match (repeatable).",
)
@click.option("--size", type=int, default=500, show_default=True, help="At most this many.")
def assets_list(namespace: str | None, types: tuple[str, ...], query: str | None, metadata: tuple[str, ...],
                size: int) -> None:  # fmt: skip
    """List assets."""
    c = ctl()
    params = filters(
        namespace=("PREFIX", namespace) if namespace else None, type=list(types) or None, q=query
    )
    conditions = [
        {"field": k, "type": "EQUAL_TO", "value": v} for k, v in parse_pairs(metadata, "--metadata").items()
    ]
    if conditions:
        params.append(("metadataQuery", json.dumps(conditions)))
    found = list(c.client.paged("/assets/search", params, size=min(size, 500), limit=size))
    if c.out.json_mode:
        c.out.json(found)
        return
    c.out.table(["ID", "NAMESPACE", "TYPE", "NAME", "UPDATED"],
                [(a.get("id"), a.get("namespace"), a.get("type"), a.get("displayName"), a.get("updated")) for a in found],
                footer=f"\n{len(found)} asset(s)")  # fmt: skip


@assets.command("get", aliases=("show", "describe"))
@click.argument("asset_id")
def assets_get(asset_id: str) -> None:
    """Show an asset with its metadata."""
    c = ctl()
    asset = c.client.get(f"/assets/{seg(asset_id)}")
    if c.out.json_mode:
        c.out.json(asset)
        return
    rows = [(k, json.dumps(v, default=str) if isinstance(v, (dict, list)) else v) for k, v in asset.items()
            if not str(k).startswith("_")]  # fmt: skip
    c.out.table(["FIELD", "VALUE"], rows)


@assets.command("delete", aliases=("rm",))
@click.argument("asset_id")
def assets_delete(asset_id: str) -> None:
    """Delete an asset (its history and lineage stay)."""
    c = ctl()
    try:
        c.client.request("DELETE", f"/assets/{seg(asset_id)}")
    except NotFound:
        raise NotFound(f"asset '{asset_id}' not found") from None
    c.out.result({"id": asset_id, "status": "deleted"}, f"Asset '{asset_id}' deleted.")


COMMANDS = [namespaces, kv, assets]
__all__ = ["COMMANDS", "CtlError"]
