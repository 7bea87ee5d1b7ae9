"""``roostctl``: the Roost API from the command line, with kestractl's verbs and flags.

Settings resolve from flags, then ``ROOSTCTL_*`` environment variables, then the
default context of ``~/.roostctl/config.yaml`` (``ROOSTCTL_CONFIG`` or
``--config`` to move it). Output is a table, or JSON with ``--output json``.
"""

from __future__ import annotations

import sys

import click

from roost.cli.ctl_base import CtlGroup, ctl
from roost.cli.ctl_client import AUTH, FAILED, NOT_FOUND, OK, UNREACHABLE, USAGE, CtlError
from roost.cli.ctl_config import ConfigError, ConfigFile

EXIT_CODES = f"""\b
Exit codes:
  {OK}  success
  {FAILED}  the operation failed (server refused it, invalid flows, failed files,
     an execution waited for did not end in SUCCESS)
  {USAGE}  usage error (arguments, flags, config file, unknown context)
  {AUTH}  authentication or authorization failed (HTTP 401/403)
  {NOT_FOUND}  not found (HTTP 404)
  {UNREACHABLE}  the server cannot be reached
"""


@click.group(cls=CtlGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
             epilog=EXIT_CODES)  # fmt: skip
def cli() -> None:
    """roostctl: manage flows, executions, namespaces, namespace files, KV pairs, logs, assets,
    kill switches and audit logs of a Roost (or Kestra) server through its API.

    \b
    Quick setup:
      roostctl config add default http://localhost:8080 main --username USER --password PASS --default
      roostctl flows deploy ./flows --namespace prod --override --fail-fast
      roostctl executions run prod nightly-refresh --wait --output json
      roostctl nsfiles upload prod ./assets --path resources --override
    """


@cli.command("version")
def version() -> None:
    """Print roostctl's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        v = dist_version("roost")
    except PackageNotFoundError:
        v = "dev"
    ctl().out.result({"version": v}, f"roostctl v{v}")


# -- config ------------------------------------------------------------------------------------------------------
@cli.group("config")
def config_group() -> None:
    """Manage contexts (server, tenant, credentials) in the config file."""


def _file() -> ConfigFile:
    from roost.cli.ctl_config import config_path

    return ConfigFile(config_path(ctl().flags.get("config")))


@config_group.command("add")
@click.argument("name")
@click.argument("host")
@click.argument("tenant", default="main")
@click.option("--default", "make_default", is_flag=True, help="Make it the default context.")
def config_add(name: str, host: str, tenant: str, make_default: bool) -> None:
    """Add (or replace) context NAME for HOST and TENANT, with --token, or --username and --password.

    The first context added becomes the default one.
    """
    c = ctl()
    token, username, password = c.flags.get("token"), c.flags.get("username"), c.flags.get("password")
    if token and username:
        raise click.UsageError("give either --token or --username/--password, not both")
    if password and not username:
        raise click.UsageError("--password needs --username")
    if "://" not in host:
        raise click.BadParameter(
            f"expected a URL such as http://localhost:8080, got {host!r}", param_hint="HOST"
        )
    file = _file()
    file.add(
        name,
        host.rstrip("/"),
        tenant,
        token=token,
        username=username,
        password=password,
        make_default=make_default,
    )
    file.save()
    default = " (default)" if file.default == name else ""
    c.out.result({"context": name, "host": host, "tenant": tenant, "default": file.default == name,
                  "path": str(file.path)}, f"Context '{name}' saved to {file.path}{default}.")  # fmt: skip


@config_group.command("show", aliases=("list", "ls"))
def config_show() -> None:
    """List the contexts (secrets masked); the default one is marked."""
    c = ctl()
    file = _file()
    rows = []
    for name, entry in sorted(file.contexts.items()):
        entry = entry or {}
        method = entry.get("auth_method") or (
            "token" if entry.get("token") else "basicAuth" if entry.get("username") else "none"
        )
        rows.append({"name": name, "host": entry.get("host"), "tenant": entry.get("tenant"), "auth_method": method,
                     "username": entry.get("username"), "default": name == file.default})  # fmt: skip
    if c.out.json_mode:
        c.out.json({"path": str(file.path), "default_context": file.default, "contexts": rows})
        return
    if not rows:
        c.out.line(
            f"No context in {file.path}. Add one with: roostctl config add NAME HOST TENANT --token TOKEN"
        )
        return
    c.out.table(["", "NAME", "HOST", "TENANT", "AUTH", "USER"],
                [("*" if r["default"] else "", r["name"], r["host"], r["tenant"], r["auth_method"], r["username"])
                 for r in rows], footer=f"\nConfig file: {file.path}")  # fmt: skip


@config_group.command("use")
@click.argument("name")
def config_use(name: str) -> None:
    """Make NAME the default context."""
    file = _file()
    file.use(name)
    file.save()
    ctl().out.result({"default_context": name}, f"Default context is now '{name}'.")


@config_group.command("remove", aliases=("rm", "delete"))
@click.argument("name")
def config_remove(name: str) -> None:
    """Remove context NAME."""
    file = _file()
    file.remove(name)
    file.save()
    ctl().out.result({"removed": name, "default_context": file.default}, f"Context '{name}' removed.")


@config_group.command("current")
def config_current() -> None:
    """Show the settings a command would use now, and where each comes from."""
    c = ctl()
    s = c.settings
    value = {"host": s.host, "tenant": s.tenant, "auth_method": s.auth_method, "username": s.username,
             "output": s.output, "context": s.context, "config": str(s.config), "sources": s.sources}  # fmt: skip
    if c.out.json_mode:
        c.out.json(value)
        return
    c.out.table(["SETTING", "VALUE", "FROM"], [
        ("host", s.host, s.sources.get("host")), ("tenant", s.tenant, s.sources.get("tenant")),
        ("auth", s.auth_method + (f" ({s.username})" if s.username else ""), s.sources.get("auth")),
        ("output", s.output, s.sources.get("output")), ("context", s.context, str(s.config)),
    ])  # fmt: skip


def _register() -> None:
    from roost.cli import ctl_admin, ctl_executions, ctl_flows, ctl_nsfiles, ctl_plugindefaults, ctl_resources

    for module in (ctl_flows, ctl_executions, ctl_nsfiles, ctl_resources, ctl_plugindefaults, ctl_admin):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def run(args: list[str] | None = None) -> int:
    """Run roostctl and return its exit code (see ``roostctl --help``)."""
    try:
        rv = cli.main(args=args, prog_name="roostctl", standalone_mode=False)
    except CtlError as exc:
        _report(exc.message)
        return exc.code
    except ConfigError as exc:
        _report(str(exc))
        return USAGE
    except click.exceptions.Abort:
        _report("aborted")
        return FAILED
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        _report("interrupted")
        return 130
    except BrokenPipeError:
        return OK
    return rv if isinstance(rv, int) else OK


def _report(message: str) -> None:
    from roost.cli.ctl_render import Renderer

    Renderer().error(message)


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
