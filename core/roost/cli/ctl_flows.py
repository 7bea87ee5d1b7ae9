"""``roostctl flows``: list, get, deploy, validate, delete, enable and disable flows."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import click

from roost.cli.ctl_base import CtlGroup, ctl
from roost.cli.ctl_client import CtlError, NotFound, seg

VALIDATE_BATCH = 100


@click.group("flows", cls=CtlGroup, aliases=("flow",))
def flows() -> None:
    """List, get, deploy (a file or a folder), validate and delete flows."""


# -- files -----------------------------------------------------------------------------------------------------
def collect_flow_files(root: Path, recursive: bool = True) -> list[Path]:
    """The .yml/.yaml files of a folder, sorted; hidden files and folders are skipped."""
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        files += [Path(dirpath) / f for f in filenames
                  if not f.startswith(".") and f.lower().endswith((".yml", ".yaml"))]  # fmt: skip
    return sorted(files)


def flow_files(path: str, recursive: bool) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        files = collect_flow_files(p, recursive)
        if not files:
            raise CtlError(f"no .yaml or .yml files found in directory '{path}'")
        return files
    if p.is_file():
        return [p]
    raise click.BadParameter(f"no such file or directory: {path}", param_hint="PATH")


def flow_identity(text: str) -> tuple[str, str]:
    """(namespace, id) of a flow's YAML; ValueError when they are missing."""
    from ruamel.yaml import YAML

    try:
        docs = [d for d in YAML(typ="safe").load_all(text) if d is not None]
    except Exception as exc:
        raise ValueError(f"invalid YAML: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    if not docs or not isinstance(docs[0], dict):
        raise ValueError("not a flow: expected a YAML mapping with id and namespace")
    doc = docs[0]
    missing = [k for k in ("id", "namespace") if not isinstance(doc.get(k), str) or not doc.get(k)]
    if missing:
        raise ValueError(f"missing required field(s): {', '.join(missing)}")
    return doc["namespace"], doc["id"]


_NS_LINE = re.compile(r"^namespace:[ \t]*[^\n#]*?(?=[ \t]*(#.*)?$)", re.MULTILINE)


def _roundtrip(text: str) -> tuple[Any, Any]:
    from ruamel.yaml import YAML
    from ruamel.yaml.util import load_yaml_guess_indent

    _data, indent, offset = load_yaml_guess_indent(text)
    indent, offset = indent or 2, offset or 0
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    # guessed: ``indent`` is where a sequence item's content starts, ``offset`` where its dash is
    yaml.indent(mapping=max(indent - offset, 2) if offset else indent, sequence=indent, offset=offset)
    return yaml, yaml.load(text)


def set_namespace(text: str, namespace: str) -> str:
    """The flow's YAML with its top-level namespace replaced (the rest of the text untouched)."""
    if _NS_LINE.search(text):
        return _NS_LINE.sub(f"namespace: {namespace}", text, count=1)
    yaml, data = _roundtrip(text)
    data["namespace"] = namespace
    buf = io.StringIO()
    yaml.dump(data, buf)
    return buf.getvalue()


def disable_triggers(text: str) -> str:
    """The flow's YAML with ``disabled: true`` on every trigger."""
    yaml, data = _roundtrip(text)
    triggers = data.get("triggers") if isinstance(data, dict) else None
    if not triggers:
        return text
    for trig in triggers:
        if isinstance(trig, dict):
            trig["disabled"] = True
    buf = io.StringIO()
    yaml.dump(data, buf)
    return buf.getvalue()


# -- list / get ------------------------------------------------------------------------------------------------
@flows.command("list", aliases=("ls",))
@click.argument("namespace", required=False)
@click.option("--prefix", is_flag=True, help="Also list the flows of child namespaces.")
def flows_list(namespace: str | None, prefix: bool) -> None:
    """List the flows of NAMESPACE, or of every namespace."""
    c = ctl()
    if namespace and not prefix:
        found = c.client.get(f"/flows/{seg(namespace)}")
    else:
        from roost.cli.ctl_client import filters

        params = filters(namespace=("PREFIX", namespace) if namespace else None)
        found = list(c.client.paged("/flows/search", params, size=500))
    rows = [{"id": f.get("id"), "namespace": f.get("namespace"), "description": f.get("description"),
             "revision": f.get("revision"), "disabled": bool(f.get("disabled"))} for f in found]  # fmt: skip
    rows.sort(key=lambda r: (r["namespace"] or "", r["id"] or ""))
    if c.out.json_mode:
        c.out.json(rows)
        return
    c.out.table(["ID", "NAMESPACE", "DESCRIPTION", "REVISION", "DISABLED"],
                [(r["id"], r["namespace"], (r["description"] or "").strip().splitlines()[0] if r["description"] else "",
                  r["revision"], "yes" if r["disabled"] else "") for r in rows],
                footer=f"\n{len(rows)} flow(s)")  # fmt: skip


@flows.command("get", aliases=("show", "describe"))
@click.argument("namespace")
@click.argument("flow_id")
@click.option("--revision", type=int, help="A past revision.")
def flows_get(namespace: str, flow_id: str, revision: int | None) -> None:
    """Print the YAML source of a flow (with --output json: its id, namespace, revision and source)."""
    c = ctl()
    params: dict[str, Any] = {"source": "true"}
    if revision:
        params["revision"] = revision
    flow = c.client.get(f"/flows/{seg(namespace)}/{seg(flow_id)}", params=params)
    if c.out.json_mode:
        c.out.json({"id": flow.get("id"), "namespace": flow.get("namespace"), "revision": flow.get("revision"),
                    "disabled": flow.get("disabled", False), "source": flow.get("source")})  # fmt: skip
        return
    source = flow.get("source") or ""
    c.out.raw(source if source.endswith("\n") else source + "\n")


@flows.command("delete", aliases=("rm",))
@click.argument("namespace")
@click.argument("flow_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def flows_delete(namespace: str, flow_id: str, yes: bool) -> None:
    """Delete a flow (its revisions stay in the history)."""
    c = ctl()
    if not yes and not click.confirm(f"Delete flow '{flow_id}' of namespace '{namespace}'?", err=True):
        c.out.result({"namespace": namespace, "flowId": flow_id, "status": "cancelled"}, "Cancelled.")
        return
    c.client.request("DELETE", f"/flows/{seg(namespace)}/{seg(flow_id)}")
    c.out.result({"namespace": namespace, "flowId": flow_id, "status": "deleted"},
                 f"Flow '{flow_id}' deleted from namespace '{namespace}'.")  # fmt: skip


def _toggle(namespace: str, flow_ids: tuple[str, ...], enable: bool) -> None:
    c = ctl()
    body = [{"namespace": namespace, "id": fid} for fid in flow_ids]
    resp = c.client.request("POST", f"/flows/{'enable' if enable else 'disable'}/by-ids", json=body).json()
    count = resp.get("count", len(flow_ids)) if isinstance(resp, dict) else len(flow_ids)
    action = "enabled" if enable else "disabled"
    c.out.result({"namespace": namespace, "count": count, "status": action},
                 f"{count} flow(s) {action} in namespace '{namespace}'.")  # fmt: skip


@flows.command("enable")
@click.argument("namespace")
@click.argument("flow_ids", nargs=-1, required=True)
def flows_enable(namespace: str, flow_ids: tuple[str, ...]) -> None:
    """Enable flows of NAMESPACE."""
    _toggle(namespace, flow_ids, True)


@flows.command("disable")
@click.argument("namespace")
@click.argument("flow_ids", nargs=-1, required=True)
def flows_disable(namespace: str, flow_ids: tuple[str, ...]) -> None:
    """Disable flows of NAMESPACE: their triggers start nothing until enabled again."""
    _toggle(namespace, flow_ids, False)


# -- deploy ------------------------------------------------------------------------------------------------------
def _recursive_option(f: Any) -> Any:
    f = click.option("--no-recursive", "no_recursive", is_flag=True, help="Only the top-level folder.")(f)
    return click.option("--recursive", type=click.BOOL, default=True, is_flag=False, flag_value=True, show_default=True,
                        metavar="[BOOL]", help="Recurse into sub-folders (--recursive=false: only the top level).")(f)  # fmt: skip


def deploy_one(client: Any, path: Path, *, namespace: str | None, prefix: str | None, disable: bool,
               override: bool) -> dict[str, Any]:  # fmt: skip
    result: dict[str, Any] = {"file_path": str(path), "flow_id": None, "namespace": None, "revision": None,
                              "success": False, "error": None}  # fmt: skip
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        result["error"] = f"failed to read file: {exc}"
        return result
    try:
        ns, flow_id = flow_identity(text)
    except ValueError as exc:
        result["error"] = str(exc)
        return result
    result["flow_id"] = flow_id
    try:
        if namespace:
            text, ns = set_namespace(text, namespace), namespace
        elif prefix:
            ns = f"{prefix}.{ns}"
            text = set_namespace(text, ns)
        if disable:
            text = disable_triggers(text)
    except Exception as exc:
        result["error"] = f"failed to rewrite the flow: {exc}"
        return result
    result["namespace"] = ns
    headers = {"Content-Type": "application/x-yaml"}
    flow_path = f"/flows/{seg(ns)}/{seg(flow_id)}"
    try:
        exists = client.exists(flow_path, params={"source": "false"})
        if exists and not override:
            result["error"] = f"flow '{flow_id}' already exists in namespace '{ns}'; use --override to update"
            return result
        if exists:
            body = client.request("PUT", flow_path, content=text.encode(), headers=headers).json()
        else:
            body = client.request("POST", "/flows", content=text.encode(), headers=headers).json()
    except CtlError as exc:
        if exc.code in (3, 5):  # authentication or connection: no point going on
            raise
        result["error"] = _violation_text(exc)
        return result
    result["revision"] = body.get("revision") if isinstance(body, dict) else None
    result["success"] = True
    return result


def _violation_text(exc: CtlError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    violations = body.get("violations") or []
    if violations and isinstance(violations, list):
        parts = []
        for v in violations:
            if isinstance(v, dict):
                where = f"line {v['line']}: " if v.get("line") else ""
                parts.append(f"{where}{v.get('path') or '<root>'}: {v.get('message')}")
        if parts:
            return "; ".join(parts)
    return exc.message


@flows.command("deploy", aliases=("create", "apply"))
@click.argument("path", type=click.Path())
@click.option("--override", is_flag=True, help="Update flows that already exist (otherwise they fail).")
@click.option("--namespace", help="Deploy every flow to this namespace.")
@click.option(
    "--namespace-prefix", help="Prepend this prefix to each flow's own namespace (e.g. staging.pr42)."
)
@click.option(
    "--disable-triggers", is_flag=True, help="Set 'disabled: true' on every trigger of the deployed flows."
)
@click.option("--fail-fast", is_flag=True, help="Stop at the first error.")
@_recursive_option
def flows_deploy(path: str, override: bool, namespace: str | None, namespace_prefix: str | None, disable_triggers: bool,
                 fail_fast: bool, recursive: bool, no_recursive: bool) -> None:  # fmt: skip
    """Deploy a flow file, or every .yml/.yaml file of a folder (recursively, hidden files skipped).

    Existing flows fail unless --override is given; with several files every one is tried unless --fail-fast.
    Exit code 1 when any flow failed.
    """
    if namespace and namespace_prefix:
        raise click.UsageError("--namespace and --namespace-prefix are mutually exclusive")
    if namespace_prefix is not None:
        namespace_prefix = namespace_prefix.strip().strip(".")
        if not namespace_prefix or ".." in namespace_prefix or re.search(r"\s", namespace_prefix):
            raise click.BadParameter(
                "must be a dot-separated namespace such as 'staging.pr42'", param_hint="--namespace-prefix"
            )
    c = ctl()
    files = flow_files(path, recursive and not no_recursive)
    results = []
    with c.out.progress("Deploying flows", len(files)) as progress:
        for file in files:
            progress.update(f"Deploying {file.name}")
            result = deploy_one(c.client, file, namespace=namespace, prefix=namespace_prefix, disable=disable_triggers,
                                override=override)  # fmt: skip
            results.append(result)
            progress.advance()
            if not result["success"] and fail_fast:
                break
    failed = sum(1 for r in results if not r["success"])
    skipped = len(files) - len(results)
    if c.out.json_mode:
        c.out.json(results[0] if len(files) == 1 else results)
    else:
        c.out.table(["FILE", "FLOW ID", "NAMESPACE", "STATUS", "REVISION", "ERROR"],
                    [(r["file_path"], r["flow_id"], r["namespace"], "[green]OK[/]" if r["success"] else "[red]FAILED[/]",
                      r["revision"], r["error"]) for r in results],
                    footer=f"\n{len(results) - failed} deployed, {failed} failed"
                           + (f", {skipped} not attempted (--fail-fast)" if skipped else ""))  # fmt: skip
    if failed:
        raise click.exceptions.Exit(1)


# -- validate -----------------------------------------------------------------------------------------------------
def _strip_markers(text: str) -> str:
    lines = text.split("\n")
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    if start < len(lines) and lines[start].rstrip() == "---":
        start += 1
    end = len(lines)
    while end > start and lines[end - 1].rstrip() in ("", "---", "..."):
        end -= 1
    return "\n".join(lines[start:end])


@flows.command("validate", aliases=("check",))
@click.argument("path", type=click.Path())
@_recursive_option
def flows_validate(path: str, recursive: bool, no_recursive: bool) -> None:
    """Validate a flow file, or every .yml/.yaml file of a folder, against the server's plugins.

    Exit code 1 when any flow has a violation; warnings and deprecations are reported but do not fail.
    """
    c = ctl()
    files = flow_files(path, recursive and not no_recursive)
    results: list[dict[str, Any]] = []
    sources = []
    for file in files:
        result: dict[str, Any] = {"file_path": str(file), "flow_id": None, "namespace": None, "constraints": [],
                                  "warnings": [], "infos": [], "deprecation_paths": [], "outdated": False,
                                  "success": True}  # fmt: skip
        try:
            sources.append(_strip_markers(file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise CtlError(f"failed to read file '{file}': {exc}") from None
        results.append(result)
    with c.out.progress("Validating flows", (len(files) + VALIDATE_BATCH - 1) // VALIDATE_BATCH) as progress:
        for start in range(0, len(sources), VALIDATE_BATCH):
            batch = sources[start : start + VALIDATE_BATCH]
            names = [f"{start + i}-{files[start + i].name}" for i in range(len(batch))]
            parts = [
                ("fileUpload", (name, text.encode(), "application/x-yaml"))
                for name, text in zip(names, batch, strict=True)
            ]
            answer = c.client.request("POST", "/flows/validate", files=parts).json()
            for v in answer or []:
                index = names.index(v["filename"]) if v.get("filename") in names else int(v.get("index", -1))
                if not 0 <= index < len(batch):
                    raise CtlError(f"cannot map validation results back to files: the server reported document {index} "
                                   f"of a {len(batch)}-document request (does a file hold several YAML documents?)")  # fmt: skip
                _merge_violation(results[start + index], v)
            progress.advance()
    failed = sum(1 for r in results if not r["success"])
    if c.out.json_mode:
        c.out.json(results)
    else:
        c.out.table(["FILE", "FLOW", "STATUS", "CONSTRAINTS", "WARNINGS", "DEPRECATIONS"],
                    [(r["file_path"], f"{r['namespace']}.{r['flow_id']}" if r["flow_id"] else None,
                      "[green]OK[/]" if r["success"] else "[red]FAILED[/]", "\n".join(r["constraints"]),
                      "\n".join(r["warnings"]), "\n".join(r["deprecation_paths"])) for r in results],
                    footer=f"\n{len(results) - failed} valid flow(s), {failed} failed")  # fmt: skip
    if failed:
        raise click.exceptions.Exit(1)


def _merge_violation(target: dict[str, Any], v: dict[str, Any]) -> None:
    if v.get("flow"):
        target["flow_id"] = v["flow"]
    if v.get("namespace"):
        target["namespace"] = v["namespace"]
    detailed = v.get("violations")
    if isinstance(detailed, list) and detailed:
        for item in detailed:
            if isinstance(item, dict):
                where = f"line {item['line']}: " if item.get("line") else ""
                text = f"{where}{item.get('path') or '<root>'}: {item.get('message')}"
                if text not in target["constraints"]:
                    target["constraints"].append(text)
    elif v.get("constraints") and str(v["constraints"]).strip():
        for line in str(v["constraints"]).strip().splitlines():
            if line.strip() and line.strip() not in target["constraints"]:
                target["constraints"].append(line.strip())
    for key, dest in (
        ("warnings", "warnings"),
        ("infos", "infos"),
        ("deprecationPaths", "deprecation_paths"),
    ):
        for item in v.get(key) or []:
            if item and item not in target[dest]:
                target[dest].append(item)
    target["outdated"] = target["outdated"] or bool(v.get("outdated"))
    target["success"] = not target["constraints"]


COMMANDS = [flows]
__all__ = [
    "COMMANDS",
    "NotFound",
    "collect_flow_files",
    "deploy_one",
    "disable_triggers",
    "flows",
    "set_namespace",
]
