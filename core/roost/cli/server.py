"""``roost server ...``: the server components (see :mod:`roost.server.runner`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


@click.group("server")
def server() -> None:
    """Run the server: everything at once (local, standalone) or one component per process."""


def _common(http: bool, store: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        opts = [
            click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), envvar="ROOST_CONFIG",
                         help="YAML configuration (auth users, API tokens, public URL)."),
            click.option("--data-dir", type=click.Path(file_okay=False), envvar="ROOST_HOME", default=".roost", show_default=True,
                         help="Folder of internal storage (and of the embedded database without --db-url)."),
            click.option("--workers", type=int, default=8, show_default=True, help="Worker threads running task runs."),
            click.option("--ignore-executions", "ignore_executions", default="", metavar="ID,...",
                         help="Drop every message of these executions (troubleshooting; a kill switch IGNORE does it "
                              "from the API)."),
            click.option("--ignore-flows", "ignore_flows", default="", metavar="NS.FLOW,...",
                         help="Drop every message of these flows' executions: namespace.flowId, namespace|flowId "
                              "or tenant|namespace|flowId."),
        ]  # fmt: skip
        if store == "optional":
            opts.append(click.option("--db-url", envvar="ROOST_DB_URL", default=None,
                                     help="SQLite file or PostgreSQL URL (default: the data folder's SQLite)."))  # fmt: skip
        elif store == "required":
            opts.append(click.option("--db-url", envvar="ROOST_DB_URL", required=True,
                                     help="The shared store: a SQLite file or a PostgreSQL URL."))  # fmt: skip
        if http:
            opts += [
                click.option(
                    "--host",
                    default=None,
                    help="Address to listen on (default 127.0.0.1; 0.0.0.0 for every interface).",
                ),
                click.option("--port", type=int, default=None, help="Port (default 8080)."),
            ]
        for opt in reversed(opts):
            fn = opt(fn)
        return fn

    return deco


def ignored_flows(text: str) -> set[str]:
    """``--ignore-flows`` entries as the engine keys them (``tenant|namespace|flowId`` or ``namespace|flowId``);
    ``namespace.flowId`` splits at the last dot, as a flow id holds no dot in practice."""
    out = set()
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        if "|" in item:
            parts = item.split("|")
            if len(parts) not in (2, 3) or not all(parts):
                raise click.BadParameter(f"{item!r}: expected namespace.flowId, namespace|flowId or tenant|namespace|flowId",
                                         param_hint="--ignore-flows")  # fmt: skip
            out.add(item)
            continue
        namespace, dot, flow_id = item.rpartition(".")
        if not dot or not namespace or not flow_id:
            raise click.BadParameter(
                f"{item!r}: expected namespace.flowId (company.team.nightly)", param_hint="--ignore-flows"
            )
        out.add(f"{namespace}|{flow_id}")
    return out


def _executor_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--local-workers/--no-local-workers", default=True, envvar="ROOST_LOCAL_WORKERS", show_default=True,
                     help="Run task runs in this process's thread pool, or hand them to `roost server worker` processes."),
        click.option("--lease-timeout", type=click.FloatRange(min=1), default=30.0, envvar="ROOST_LEASE_TIMEOUT",
                     show_default=True, help="Seconds before another executor takes over the executions of a dead one."),
        click.option("--worker-timeout", type=click.FloatRange(min=1), default=15.0, envvar="ROOST_WORKER_TIMEOUT",
                     show_default=True, help="Seconds without heartbeat before a worker process is dead and its task runs resubmitted."),
    ]  # fmt: skip
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _run(component: str, *, config_path: str | None, data_dir: str, workers: int, db_url: str | None = None,
         host: str | None = None, port: int | None = None, ignore_executions: str = "",
         ignore_flows: str = "", **options: Any) -> None:  # fmt: skip
    import logging

    from roost.server.config import ConfigError, load_config
    from roost.server.runner import configure_logging, serve
    from roost.store.db import StoreError

    configure_logging(logging.INFO)
    ignore = {"executions": {i.strip() for i in ignore_executions.split(",") if i.strip()},
              "flows": ignored_flows(ignore_flows)}  # fmt: skip
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if host:
        config.host = host
    if port is not None:
        config.port = port

    def ready() -> None:
        where = db_url or str(Path(data_dir).resolve() / "roost.db")
        if component in ("local", "standalone", "webserver"):
            auth = "basic auth / API tokens" if config.auth.enabled else "no auth"
            click.echo(
                f"roost {component}: listening on http://{config.host}:{config.port} ({auth}; store {where})",
                err=True,
            )
        else:
            click.echo(f"roost {component}: running (store {where})", err=True)

    try:
        serve(component, data_dir=Path(data_dir), db_url=db_url, config=config, workers=workers, ready=ready,
              ignore_executions=ignore["executions"], ignore_flows=ignore["flows"], **options)  # fmt: skip
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(str(exc)) from None


@server.command("local")
@_common(http=True, store="none")
def local(**kw: Any) -> None:
    """Everything in one process on embedded SQLite in --data-dir; port 8080; no auth unless configured."""
    _run("local", **kw)


@server.command("standalone")
@_common(http=True, store="optional")
@_executor_options
def standalone(**kw: Any) -> None:
    """Everything in one process over --db-url; also serves messages other processes leave in the store."""
    _run("standalone", **kw)


@server.command("webserver")
@_common(http=True, store="required")
def webserver(**kw: Any) -> None:
    """The API only; executions are handed to the executor process through the store."""
    _run("webserver", **kw)


@server.command("executor")
@_common(http=False, store="required")
@_executor_options
def executor(**kw: Any) -> None:
    """The executor loop; task runs execute in its worker pool, or with --no-local-workers in `worker` processes.

    Run as many executors as you like over one PostgreSQL store: each works on the executions it leases."""
    _run("executor", **kw)


@server.command("worker")
@_common(http=False, store="required")
@click.option("--worker-group", envvar="ROOST_WORKER_GROUP", default=None,
              help="Take only task runs of this worker group (default: those of no group).")  # fmt: skip
def worker(**kw: Any) -> None:
    """Run task runs that executors started with --no-local-workers dispatch (--workers threads)."""
    _run("worker", **kw)


@server.command("scheduler")
@_common(http=False, store="required")
def scheduler(**kw: Any) -> None:
    """Fire Schedule, Flow and polling triggers; the executions they start go to the executor through the store."""
    _run("scheduler", **kw)


@server.command("hash-password")
@click.option(
    "--password", prompt=True, hide_input=True, confirmation_prompt=True, help="The password (prompted)."
)
def hash_password_cmd(password: str) -> None:
    """Print the passwordHash of a basic-auth user for the configuration file."""
    from roost.server.config import hash_password

    click.echo(hash_password(password))


@server.command("new-token")
@click.option("--name", default="token", show_default=True, help="A name for the token.")
def new_token_cmd(name: str) -> None:
    """Make an API token: print it once, and the configuration entry that stores only its hash."""
    from roost.server.config import hash_token, new_token

    token = new_token()
    click.echo(f"token (shown once): {token}")
    click.echo(f'configuration:\n  apiTokens:\n    - name: {name}\n      tokenHash: "{hash_token(token)}"')
