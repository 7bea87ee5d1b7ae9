"""``roost``: validate and run flows locally, list plugins, start the server components."""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path
from typing import Any

import click

from roost.cli.output import console, echo_json, fail


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="roost", prog_name="roost")
def cli() -> None:
    """Roost: a Kestra-compatible workflow orchestrator."""


# -- flow ------------------------------------------------------------------------------------------------
@cli.group()
def flow() -> None:
    """Validate and run flows."""


def _flow_files(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files += sorted(x for x in p.rglob("*") if x.suffix in (".yml", ".yaml") and x.is_file())
        elif p.is_file():
            files.append(p)
        else:
            fail(f"no such file or folder: {raw}")
    return files


@flow.command("validate")
@click.argument("paths", nargs=-1, required=True)
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table", help="Report format.")
def flow_validate(paths: tuple[str, ...], output: str) -> None:
    """Validate flow files (or every YAML file under folders); exit 1 on any violation.

    Deprecated properties and old type ids are warnings, not violations: the flow stays valid."""
    from roost.flow.build import FlowInvalid, flow_notices, parse_flow
    from roost.flow.yaml import YamlError, decode_source, load_documents
    from roost.plugin_defaults import defaults_for

    results: list[dict[str, Any]] = []
    for path in _flow_files(paths):
        try:
            source = decode_source(path.read_bytes())
        except YamlError as exc:  # one bad file is one violation; the others are still checked
            results.append({"file": str(path), "valid": False, "violations": [exc.violation.as_dict()]})
            continue
        except OSError as exc:
            results.append({"file": str(path), "valid": False,
                            "violations": [{"path": "", "message": f"cannot read the file: {exc.strerror}",
                                            "line": None, "column": None}]})  # fmt: skip
            continue
        try:
            docs = load_documents(source)
            data = getattr(docs[0], "data", None) if docs else None
            ns = data.get("namespace") if isinstance(data, dict) else None
            flow_obj = parse_flow(
                source, defaults=defaults_for(ns) if isinstance(ns, str) else [], ref=str(path)
            )
            results.append(
                {
                    "file": str(path),
                    "flow": f"{flow_obj.namespace}.{flow_obj.id}",
                    "valid": True,
                    "violations": [],
                    "warnings": [n.as_dict() for n in flow_notices(flow_obj)],
                }
            )
        except FlowInvalid as exc:
            results.append(
                {"file": str(path), "valid": False, "violations": [v.as_dict() for v in exc.violations]}
            )
    if output == "json":
        echo_json(results)
    else:
        for r in results:
            if r["valid"]:
                console().print(f"[green]✓[/green] {r['file']} [dim]({r['flow']})[/dim]")
                for w in r["warnings"]:
                    where = f"line {w['line']}: " if w.get("line") else ""
                    console().print(
                        f"    [yellow]warning[/yellow] {where}[bold]{w['path'] or '<root>'}[/bold]: {w['message']}",
                        highlight=False,
                    )
            else:
                console().print(f"[red]✗[/red] {r['file']}")
                for v in r["violations"]:
                    where = f"line {v['line']}: " if v.get("line") else ""
                    console().print(
                        f"    {where}[bold]{v['path'] or '<root>'}[/bold]: {v['message']}", highlight=False
                    )
    if not all(r["valid"] for r in results):
        sys.exit(1)


def _parse_inputs(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            fail(f"--input expects key=value, got {pair!r}")
        out[key] = value
    return out


@flow.command("run")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--flows",
    "flow_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Folders of flows that subflows may call.",
)
@click.option("--input", "-i", "inputs", multiple=True, help="An input as key=value (repeatable).")
@click.option("--label", "-l", "labels", multiple=True, help="A label as key=value (repeatable).")
@click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    help="Print the final execution as JSON.",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    envvar="ROOST_HOME",
    default=".roost",
    show_default=True,
    help="Folder of the embedded database and storage.",
)
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    envvar="ROOST_CONFIG",
    help="A server configuration whose storage, secret and credentials sections this run uses.",
)
def flow_run(file: str, flow_dirs: tuple[str, ...], inputs: tuple[str, ...], labels: tuple[str, ...], output: str,
             home: str, timeout: float | None, config_path: str | None) -> None:  # fmt: skip
    """Run a flow on embedded storage; exit 0 on SUCCESS or WARNING, 1 otherwise."""
    # Start-up builds long-lived objects only (modules, models, the store's tables): collecting
    # cycles among them is wasted work, so the collector waits until the engine is open.
    gc.disable()
    from roost.cli.live import LiveRun
    from roost.engine.inputs import InputsInvalid
    from roost.engine.local import open_engine
    from roost.flow.build import FlowInvalid
    from roost.secret_backends import SecretConfigError
    from roost.store.db import store_unavailable
    from roost.store.storage import StorageConfigError

    config_errors: tuple[type[Exception], ...] = (StorageConfigError, SecretConfigError)
    if config_path:  # the server's configuration module only when a configuration is given
        from roost.server.config import ConfigError, load_config

        config_errors += (ConfigError,)
    try:
        config = load_config(config_path) if config_path else None
        settings = (
            {"credentials": config.credentials, "storage": config.storage, "secrets": config.secret}
            if config
            else {}
        )
        engine = open_engine(home, **settings)
    except config_errors as exc:
        fail(str(exc))
    except Exception as exc:
        if not store_unavailable(exc):
            raise
        reason = str(getattr(exc, "orig", None) or exc)
        if "locked" in reason:  # a `roost server local` holds its embedded store alone
            reason += " (is a `roost server local` using it? give this run another --home)"
        fail(f"cannot open the store in {home}: {reason}")
    try:
        try:
            for folder in flow_dirs:
                for path in sorted(Path(folder).rglob("*.y*ml")):
                    engine.deploy(path.read_text())
            flow_obj = engine.deploy(Path(file).read_text())
        except FlowInvalid as exc:
            fail(str(exc))
        live = LiveRun(engine)
        gc.freeze()  # what start-up built lives until exit: later collections need not scan it
        gc.enable()
        engine.start()
        try:
            ex = engine.create_execution(
                flow_obj, _parse_inputs(inputs), dict(kv.split("=", 1) for kv in labels)
            )
        except InputsInvalid as exc:
            fail(str(exc))
        except ValueError as exc:
            fail(str(exc))
        with live.follow(ex.id):
            try:
                final = engine.wait(ex.id, timeout)
            except KeyboardInterrupt:
                engine.kill(ex.id)
                final = engine.wait(ex.id, 30)
            except TimeoutError as exc:
                engine.kill(ex.id)
                fail(str(exc))
    finally:
        engine.stop()
    if output == "json":
        echo_json(final.to_dict())
    else:
        live.summary(final)
    sys.exit(0 if final.state.current in ("SUCCESS", "WARNING") else 1)


# -- plugins -------------------------------------------------------------------------------------------
@cli.group()
def plugins() -> None:
    """Installed plugins, their types and schemas."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins_list(as_json: bool) -> None:
    """Name, version, hooks and types of every installed plugin."""
    from roost.plugins import get_plugins

    pl = get_plugins()
    pl.load_types()  # fills each plugin's list of types
    rows = [{"name": i.name, "version": i.version, "distribution": i.distribution, "module": i.module,
             "hooks": i.hooks, "types": sorted(i.types)} for i in pl.info.values()]  # fmt: skip
    broken = [{"name": b.name, "error": b.error} for b in pl.broken]
    if as_json:
        echo_json({"plugins": rows, "broken": broken})
        return
    out = console()
    if out.is_terminal and out.width >= 120:
        from rich.table import Table

        table = Table(title="Roost plugins")
        for col in ("name", "version", "hooks", "types"):
            table.add_column(col, overflow="fold", no_wrap=col in ("hooks", "types"))
        for r in rows:
            table.add_row(
                str(r["name"]), str(r["version"]), "\n".join(r["hooks"] or ()), "\n".join(r["types"] or ())
            )
        out.print(table)
    else:  # a pipe or a narrow terminal: a table would squeeze its columns to a letter each
        for r in rows:
            dist = f" ({r['distribution']})" if r["distribution"] else ""
            click.echo(f"{r['name']} {r['version']}{dist}")
            click.echo(f"  hooks: {', '.join(r['hooks'] or ()) or '-'}")
            types = list(r["types"] or ())
            click.echo(f"  types ({len(types)}):")
            for tid in types:
                click.echo(f"    {tid}")
    for b in broken:
        console().print(f"[red]broken plugin {b['name']}[/red]: {b['error']}")


@plugins.command("schema")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
def plugins_schema(output: str | None) -> None:
    """The flow JSON schema for editors (every task slot a oneOf over the installed types)."""
    from roost.flow.schema import flow_schema

    text = json.dumps(flow_schema(), indent=2)
    if output:
        Path(output).write_text(text)
    else:
        click.echo(text)


@plugins.command("new")
@click.argument("name")
@click.option("--dir", "target", type=click.Path(file_okay=False), default="plugins", show_default=True)
def plugins_new(name: str, target: str) -> None:
    """Start a new plugin package with one task and a passing test."""
    from roost.cli.scaffold import new_plugin

    path = new_plugin(name, Path(target))
    console().print(f"created [bold]{path}[/bold]: pip install -e {path} && pytest {path}/tests")


def main() -> None:
    from roost.cli.server import server
    from roost.plugins import get_plugins

    cli.add_command(server)
    try:
        get_plugins().add_commands(cli)
    except Exception as exc:  # a plugin's broken command must not take the CLI down
        print(f"roost: plugin commands skipped: {exc}", file=sys.stderr)
    try:
        cli(prog_name="roost")
    finally:
        # At exit the interpreter's last collection walks every live object (modules, models,
        # schemas): ~0.1 s of a short command. Frozen objects are skipped; exit frees them anyway.
        gc.freeze()


if __name__ == "__main__":
    main()
