"""``roostctl nsfiles``: list, get, upload and delete namespace files."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from roost.cli.ctl_base import CtlGroup, ctl
from roost.cli.ctl_client import Client, CtlError, NotFound, seg


@click.group("nsfiles", cls=CtlGroup, aliases=("nsfile", "files"))
def nsfiles() -> None:
    """List, get, upload and delete namespace files."""


def norm(path: str | None) -> str:
    """A namespace path without leading ./ or /, nor trailing /."""
    parts = [p for p in (path or "").replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise click.BadParameter(f"{path!r} leaves the namespace", param_hint="PATH")
    return "/".join(parts)


def api_path(path: str) -> str:
    return "/" + norm(path)


def _pick(positional: str | None, flag: str | None, what: str = "PATH", required: bool = True) -> str | None:
    if positional and flag and norm(positional) != norm(flag):
        raise click.UsageError(f"{what} given twice ({positional!r} and --path {flag!r})")
    value = positional or flag
    if value is None and required:
        raise click.UsageError(f"missing {what}: give it as an argument or with --path")
    return value


def _modified(attr: dict[str, Any]) -> str | None:
    ts = attr.get("lastModifiedTime") or attr.get("creationTime")
    if not ts:
        return None
    try:
        return (
            datetime.fromtimestamp(float(ts) / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        )
    except (TypeError, ValueError):
        return str(ts)


def stats(client: Client, namespace: str, path: str) -> dict[str, Any] | None:
    resp = client.request(
        "GET", f"/namespaces/{seg(namespace)}/files/stats", params={"path": api_path(path)}, ok404=True
    )
    return None if resp.status_code == 404 else resp.json()


def list_dir(client: Client, namespace: str, path: str, recursive: bool) -> list[dict[str, Any]]:
    entries = (
        client.get(f"/namespaces/{seg(namespace)}/files/directory", params={"path": api_path(path)}) or []
    )
    out = []
    for attr in entries:
        name = str(attr.get("fileName") or "").strip("/")
        if not name:
            continue
        full = f"{norm(path)}/{name}" if norm(path) else name
        kind = str(attr.get("type") or "File")
        out.append({"name": full, "type": kind, "size": attr.get("size"), "modified": _modified(attr)})
        if recursive and kind.lower() == "directory":
            out += list_dir(client, namespace, full, True)
    return out


def _render_listing(entries: list[dict[str, Any]]) -> None:
    c = ctl()
    entries = sorted(entries, key=lambda e: e["name"])
    if c.out.json_mode:
        c.out.json(entries)
        return
    c.out.table(["NAME", "TYPE", "SIZE", "MODIFIED"],
                [(e["name"] + ("/" if e["type"].lower() == "directory" else ""), e["type"], e["size"], e["modified"])
                 for e in entries])  # fmt: skip


@nsfiles.command("list", aliases=("ls",))
@click.argument("namespace")
@click.argument("dir_path", metavar="[PATH]", required=False)
@click.option("--path", "path_flag", help="Folder within the namespace (the root by default).")
@click.option("--recursive", "-r", is_flag=True, help="Also list sub-folders' files.")
def nsfiles_list(namespace: str, dir_path: str | None, path_flag: str | None, recursive: bool) -> None:
    """List the files and folders of a namespace folder."""
    path = _pick(dir_path, path_flag, required=False) or ""
    _render_listing(list_dir(ctl().client, namespace, path, recursive))


@nsfiles.command("get", aliases=("cat",))
@click.argument("namespace")
@click.argument("file_path", metavar="[PATH]", required=False)
@click.option("--path", "path_flag", help="File within the namespace.")
@click.option("--revision", type=int, help="A past revision of the file.")
@click.option(
    "--to", "dest", type=click.Path(dir_okay=False), help="Write to this local file instead of stdout."
)
def nsfiles_get(namespace: str, file_path: str | None, path_flag: str | None, revision: int | None,
                dest: str | None) -> None:  # fmt: skip
    """Print a namespace file's bytes (a folder is listed instead)."""
    c = ctl()
    path = norm(_pick(file_path, path_flag))
    if not path:
        _render_listing(list_dir(c.client, namespace, "", False))
        return
    attr = stats(c.client, namespace, path)
    if attr is None:
        raise NotFound(f"File '{api_path(path)}' was not found in namespace '{namespace}'")
    if str(attr.get("type", "")).lower() == "directory":
        _render_listing(list_dir(c.client, namespace, path, False))
        return
    params: dict[str, Any] = {"path": api_path(path)}
    if revision:
        params["revision"] = revision
    data = c.client.request("GET", f"/namespaces/{seg(namespace)}/files", params=params).content
    if dest:
        Path(dest).write_bytes(data)
        c.out.note(f"{len(data)} bytes written to {dest}")
    else:
        c.out.raw(data)


def _local_files(root: Path) -> list[tuple[Path, str]]:
    """(file, path relative to root) of every file under root; hidden files and folders skipped."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if not f.startswith("."):
                full = Path(dirpath) / f
                out.append((full, full.relative_to(root).as_posix()))
    return sorted(out, key=lambda x: x[1])


@nsfiles.command("upload", aliases=("put",))
@click.argument("namespace")
@click.argument("local_path", type=click.Path(exists=True))
@click.argument("destination", metavar="[DEST]", required=False)
@click.option("--path", "path_flag", metavar="DEST", help="Destination within the namespace (same as DEST).")
@click.option("--override", is_flag=True, help="Replace files that already exist (otherwise they fail).")
@click.option("--fail-fast", is_flag=True, help="Stop at the first error.")
@click.option("--no-root", is_flag=True, help="Upload a folder's content into DEST, not the folder itself.")
@click.option("--allow-missing-namespace", is_flag=True, hidden=True,
              help="Accepted for kestractl compatibility: namespaces exist implicitly in Roost.")  # fmt: skip
def nsfiles_upload(namespace: str, local_path: str, destination: str | None, path_flag: str | None, override: bool,
                   fail_fast: bool, no_root: bool, allow_missing_namespace: bool) -> None:  # fmt: skip
    """Upload a file, or a folder recursively, to DEST in NAMESPACE.

    \b
    A file goes to DEST itself (DEST/<name> when DEST ends with /).
    A folder goes to DEST/<folder name>/... (--no-root: DEST/...); hidden files are skipped.
    Existing files fail unless --override. Exit code 1 when any file failed.
    """
    c = ctl()
    dest_raw = _pick(destination, path_flag, "DEST")
    assert dest_raw is not None
    local = Path(local_path)
    if local.is_dir():
        files = _local_files(local)
        if not files:
            raise CtlError(f"no files found in directory '{local_path}'")
        root = norm(dest_raw) if no_root else norm(f"{dest_raw}/{local.resolve().name if local.name else ''}")
        items = [(f, f"{root}/{rel}" if root else rel) for f, rel in files]
    else:
        target = norm(dest_raw)
        if dest_raw.endswith("/") or not target:
            target = f"{target}/{local.name}" if target else local.name
        items = [(local, target)]
    results = []
    with c.out.progress("Uploading files", len(items)) as progress:
        for src, dst in items:
            progress.update(f"Uploading {src.name}")
            result = {"source": str(src), "destination": api_path(dst), "size": src.stat().st_size, "success": False,
                      "error": None}  # fmt: skip
            try:
                if not override and stats(c.client, namespace, dst) is not None:
                    result["error"] = f"file '{api_path(dst)}' already exists; use --override to replace it"
                else:
                    with src.open("rb") as fh:
                        c.client.request("POST", f"/namespaces/{seg(namespace)}/files", params={"path": api_path(dst)},
                                         files={"fileContent": (src.name, fh, "application/octet-stream")})  # fmt: skip
                    result["success"] = True
            except CtlError as exc:
                if exc.code in (3, 5):
                    raise
                result["error"] = exc.message
            results.append(result)
            progress.advance()
            if not result["success"] and fail_fast:
                break
    failed = sum(1 for r in results if not r["success"])
    summary = {"total": len(items), "success": len(results) - failed, "failed": failed, "results": results}
    if c.out.json_mode:
        c.out.json(summary)
    else:
        c.out.table(["SOURCE", "DESTINATION", "SIZE", "STATUS", "ERROR"],
                    [(r["source"], r["destination"], r["size"], "[green]OK[/]" if r["success"] else "[red]FAILED[/]",
                      r["error"]) for r in results],
                    footer=f"\n{summary['success']} uploaded, {failed} failed"
                           + (f", {len(items) - len(results)} not attempted (--fail-fast)" if len(results) < len(items) else ""))  # fmt: skip
    if failed:
        raise click.exceptions.Exit(1)


@nsfiles.command("delete", aliases=("rm",))
@click.argument("namespace")
@click.argument("file_path", metavar="[PATH]", required=False)
@click.option("--path", "path_flag", help="File or folder within the namespace.")
@click.option("--recursive", "-r", is_flag=True, help="Delete a folder and everything under it.")
@click.option("--force", is_flag=True, help="Succeed even when the path does not exist.")
def nsfiles_delete(
    namespace: str, file_path: str | None, path_flag: str | None, recursive: bool, force: bool
) -> None:
    """Delete a namespace file, or a folder with --recursive."""
    c = ctl()
    path = norm(_pick(file_path, path_flag))
    if not path:
        raise click.UsageError("refusing to delete the namespace root; name a file or folder")
    attr = stats(c.client, namespace, path)
    if attr is None:
        if force:
            c.out.result(
                {"total": 0, "success": 0, "failed": 0, "results": []},
                f"Nothing to delete at '{api_path(path)}'.",
            )
            return
        raise NotFound(f"File '{api_path(path)}' was not found in namespace '{namespace}'")
    is_dir = str(attr.get("type", "")).lower() == "directory"
    if is_dir and not recursive:
        raise CtlError(f"'{api_path(path)}' is a directory; use --recursive to delete it")
    targets = (
        [
            {"path": api_path(e["name"]), "type": e["type"].lower()}
            for e in list_dir(c.client, namespace, path, True)
        ]
        if is_dir
        else []
    )
    targets.append({"path": api_path(path), "type": "directory" if is_dir else "file"})
    c.client.request("DELETE", f"/namespaces/{seg(namespace)}/files", params={"path": api_path(path)})
    results = [{**t, "success": True} for t in targets]
    summary = {"total": len(results), "success": len(results), "failed": 0, "results": results}
    if c.out.json_mode:
        c.out.json(summary)
    else:
        c.out.line(
            f"Deleted '{api_path(path)}'"
            + (f" ({len(results) - 1} entries under it)" if is_dir else "")
            + "."
        )


COMMANDS = [nsfiles]
