"""``roostctl namespaces``, ``roostctl kv`` and ``roostctl assets``."""

from __future__ import annotations

import json
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


@kv.command("list", aliases=("ls",))
@click.argument("namespace")
def kv_list(namespace: str) -> None:
    """List the keys of a namespace."""
    c = ctl()
    entries = c.client.get(f"/namespaces/{seg(namespace)}/kv") or []
    if c.out.json_mode:
        c.out.json(entries)
        return
    c.out.table(["KEY", "DESCRIPTION", "UPDATED", "EXPIRES"],
                [(e.get("key"), e.get("description"), e.get("updateDate"), e.get("expirationDate")) for e in entries])  # fmt: skip


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


@kv.command("set", aliases=("put",))
@click.argument("namespace")
@click.argument("key")
@click.argument("value")
@click.option(
    "--type",
    "kind",
    type=click.Choice(KV_TYPES, case_sensitive=False),
    help="Store VALUE as this type (by default the server infers it: JSON, number, boolean or string).",
)
@click.option("--ttl", help="Expire after this ISO-8601 duration (PT1H).")
@click.option("--description", help="What the key is for.")
def kv_set(
    namespace: str, key: str, value: str, kind: str | None, ttl: str | None, description: str | None
) -> None:
    """Set KEY to VALUE in NAMESPACE."""
    c = ctl()
    body = value
    if kind and kind.upper() == "STRING":
        body = json.dumps(value)
    elif kind and kind.upper() in ("NUMBER", "BOOLEAN", "JSON"):
        try:
            json.loads(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a valid {kind.upper()}", param_hint="VALUE") from None
    headers = {"Content-Type": "text/plain"}
    if ttl:
        headers["ttl"] = ttl
    if description:
        headers["description"] = description
    c.client.request(
        "PUT", f"/namespaces/{seg(namespace)}/kv/{seg(key)}", content=body.encode(), headers=headers
    )
    c.out.result(
        {"namespace": namespace, "key": key, "status": "set"}, f"Key '{key}' set in namespace '{namespace}'."
    )


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
