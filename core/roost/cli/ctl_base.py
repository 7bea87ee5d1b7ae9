"""roostctl's command classes: global flags accepted before or after any sub-command, aliases, context."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

import click

from roost.cli.ctl_client import Client
from roost.cli.ctl_config import Settings, resolve
from roost.cli.ctl_render import Renderer

FLAGS_KEY = "roostctl.flags"

# (name, decls, help) of the flags every command takes, as kestractl's persistent flags.
GLOBAL_FLAGS: list[tuple[str, tuple[str, ...], dict[str, Any]]] = [
    ("host", ("--host",), {"help": "Server URL (ROOSTCTL_HOST).", "metavar": "URL"}),
    ("tenant", ("--tenant",), {"help": "Tenant (ROOSTCTL_TENANT; main by default).", "metavar": "TENANT"}),
    ("token", ("--token", "-t"), {"help": "API token (ROOSTCTL_TOKEN).", "metavar": "TOKEN"}),
    ("username", ("--username", "--user"), {"help": "Basic auth user (ROOSTCTL_USERNAME).", "metavar": "USER"}),
    ("password", ("--password",), {"help": "Basic auth password (ROOSTCTL_PASSWORD).", "metavar": "PASSWORD"}),
    ("output", ("--output", "-o"), {"help": "Output format (ROOSTCTL_OUTPUT).",
                                    "type": click.Choice(["table", "json"], case_sensitive=False)}),
    ("config", ("--config",), {"help": "Config file (ROOSTCTL_CONFIG; ~/.roostctl/config.yaml).", "metavar": "FILE"}),
    ("context", ("--context",), {"help": "Context of the config file to use instead of the default (ROOSTCTL_CONTEXT).",
                                 "metavar": "NAME"}),
    ("verbose", ("--verbose", "-v"), {"help": "Print each HTTP request on stderr (credentials masked).", "is_flag": True,
                                      "default": None}),
]  # fmt: skip


def _remember(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is not None:
            ctx.find_root().meta.setdefault(FLAGS_KEY, {})[name] = value
        return value

    return callback


def global_options() -> list[click.Option]:
    return [
        click.Option(
            [*decls, f"roostctl_{name}"],
            callback=_remember(name),
            expose_value=False,
            default=kw.pop("default", None),
            **{k: v for k, v in kw.items()},
        )  # fmt: skip
        for name, decls, kw in ((n, d, dict(k)) for n, d, k in GLOBAL_FLAGS)
    ]


class CtlCommand(click.Command):
    def __init__(self, *args: Any, aliases: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aliases = aliases
        self.params.extend(global_options())

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, [self._boolean_flag(a) for a in args])

    def _boolean_flag(self, arg: str) -> str:
        """kestractl's boolean flags take ``--flag=false``: turn it into click's ``--no-flag`` (or ``--flag``)."""
        name, sep, value = arg.partition("=")
        if not sep or not name.startswith("--"):
            return arg
        for param in self.params:
            if (
                isinstance(param, click.Option)
                and param.is_flag
                and name in param.opts
                and param.secondary_opts
            ):
                try:
                    on = click.BOOL.convert(value, param, None)
                except click.BadParameter:
                    return arg
                return name if on else param.secondary_opts[0]
        return arg


class CtlGroup(click.Group):
    command_class = CtlCommand
    group_class = type

    def __init__(self, *args: Any, aliases: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aliases = aliases
        self.params.extend(global_options())

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        super().add_command(cmd, name)
        self._alias_map = getattr(self, "_alias_map", {})
        for alias in getattr(cmd, "aliases", ()):
            self._alias_map[alias] = name or cmd.name

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None:
            target = getattr(self, "_alias_map", {}).get(cmd_name)
            if target:
                found = super().get_command(ctx, target)
        return found

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is None or cmd.hidden:
                continue
            aliases = getattr(cmd, "aliases", ())
            label = name + (f" ({', '.join(aliases)})" if aliases else "")
            rows.append((label, cmd.get_short_help_str(limit=formatter.width - 6 - len(label))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class Ctl:
    """What a command needs: resolved settings, a renderer, and an API client on first use."""

    def __init__(self, ctx: click.Context) -> None:
        self.flags: dict[str, Any] = dict(ctx.find_root().meta.get(FLAGS_KEY, {}))

    @cached_property
    def settings(self) -> Settings:
        return resolve(self.flags)

    @cached_property
    def out(self) -> Renderer:
        try:
            output = self.settings.output
        except Exception:
            output = str(self.flags.get("output") or "table")
        return Renderer(output)

    @cached_property
    def client(self) -> Client:
        notice = self.settings.default_host_notice()
        if notice:
            from rich.markup import escape

            self.out.note("roostctl: " + escape(notice))
        return Client(self.settings)


def ctl() -> Ctl:
    ctx = click.get_current_context()
    root = ctx.find_root()
    obj = root.meta.get("roostctl.ctl")
    if obj is None:
        obj = root.meta["roostctl.ctl"] = Ctl(ctx)
        root.call_on_close(lambda: obj.client.close() if "client" in obj.__dict__ else None)
    return obj


def parse_pairs(pairs: tuple[str, ...], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint=what)
        out[key] = value
    return out
