"""``roostctl plugindefaults``: read, write, export and list revisions of plugin defaults."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from roost.cli.ctl_base import CtlGroup, ctl
from roost.cli.ctl_client import Client, seg

INSTANCE_HELP = "The instance's defaults (every namespace) instead of a namespace's."


@click.group("plugindefaults", cls=CtlGroup, aliases=("plugin-defaults", "pd"))
def plugindefaults() -> None:
    """Plugin defaults of a namespace (or the instance): versioned YAML, each change a revision."""


def _scope(namespace: str | None, instance: bool) -> tuple[str, bool]:
    """The API path of a scope's defaults, and whether it is tenant-scoped."""
    if instance == bool(namespace):
        raise click.UsageError("give a NAMESPACE or --instance (one of them)")
    if instance:
        return "/api/v1/instance/plugindefaults", False
    return f"/namespaces/{seg(namespace or '')}/plugindefaults", True


def _get(client: Client, path: str, scoped: bool) -> Any:
    return client.request("GET", path, tenant_scoped=scoped).json()


@plugindefaults.command("get")
@click.argument("namespace", required=False)
@click.option("--instance", is_flag=True, help=INSTANCE_HELP)
@click.option("--revision", type=int, help="An older revision instead of the latest.")
def get(namespace: str | None, instance: bool, revision: int | None) -> None:
    """Print the latest defaults document (YAML), or with --output json the document and its revision."""
    c = ctl()
    path, scoped = _scope(namespace, instance)
    doc = _get(c.client, f"{path}/revisions/{revision}" if revision else path, scoped)
    if c.out.json_mode:
        c.out.json(doc)
    else:
        c.out.raw(doc.get("source") or "")


@plugindefaults.command("set")
@click.argument("namespace", required=False)
@click.argument("file", required=False, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--instance", is_flag=True, help=INSTANCE_HELP)
def set_(namespace: str | None, file: str | None, instance: bool) -> None:
    """Replace the defaults with FILE (YAML, `-` for stdin): validated, then stored as a new revision.

    \b
    roostctl plugindefaults set company.team defaults.yaml
    roostctl plugindefaults set --instance - < instance.yaml
    """
    if file is None:  # `set --instance FILE`: the one argument is the file
        namespace, file = (None, namespace) if instance else (namespace, None)
    if file is None:
        raise click.UsageError("missing FILE (a YAML file, or - for stdin)")
    c = ctl()
    path, scoped = _scope(namespace, instance)
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {file}: {exc}", param_hint="FILE") from None
    doc = c.client.request("PUT", path, tenant_scoped=scoped, content=text.encode(),
                           headers={"content-type": "application/x-yaml"}).json()  # fmt: skip
    where = "the instance" if instance else f"namespace {namespace}"
    c.out.result(doc, f"Plugin defaults of {where}: revision {doc.get('revision')} "
                      f"({len(doc.get('pluginDefaults') or [])} defaults).")  # fmt: skip


@plugindefaults.command("export")
@click.argument("namespace", required=False)
@click.option("--instance", is_flag=True, help=INSTANCE_HELP)
@click.option("--to", "to", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
def export(namespace: str | None, instance: bool, to: str | None) -> None:
    """Export the latest defaults as a YAML file for a Git repository (the plugin-defaults/ folder)."""
    c = ctl()
    if instance:
        text = (_get(c.client, "/api/v1/instance/plugindefaults", False).get("source") or "").encode()
    else:
        text = c.client.request("POST", f"/namespaces/{seg(namespace or '')}/plugindefaults/export").content
    if to:
        Path(to).write_bytes(text)
        c.out.result({"file": to, "bytes": len(text)}, f"Wrote {to}.")
    else:
        c.out.raw(text)


@plugindefaults.command("revisions")
@click.argument("namespace", required=False)
@click.option("--instance", is_flag=True, help=INSTANCE_HELP)
def revisions(namespace: str | None, instance: bool) -> None:
    """List the revisions, newest first."""
    c = ctl()
    path, scoped = _scope(namespace, instance)
    revs = _get(c.client, path + "/revisions", scoped)
    if c.out.json_mode:
        c.out.json(revs)
        return
    c.out.table(["REVISION", "CREATED", "ORIGIN", "AUTHOR"],
                [(r["revision"], r["created"], r["origin"], r.get("author") or "") for r in revs])  # fmt: skip


COMMANDS = [plugindefaults]
