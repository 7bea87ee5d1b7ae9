"""roostctl settings: contexts in ``~/.roostctl/config.yaml``, ``ROOSTCTL_*`` variables and flags.

The file has kestractl's shape::

    contexts:
      default:
        host: http://localhost:8080
        tenant: main
        auth_method: basicAuth      # or token
        username: admin
        password: secret
    default_context: default

Each setting resolves from the highest layer that gives it: command-line flags,
then the environment (``ROOSTCTL_HOST``, ``ROOSTCTL_TENANT``, ``ROOSTCTL_TOKEN``,
``ROOSTCTL_USERNAME``, ``ROOSTCTL_PASSWORD``, ``ROOSTCTL_OUTPUT``,
``ROOSTCTL_CONTEXT``, ``ROOSTCTL_CONFIG``), then kestractl's ``KESTRACTL_*``
variables of the same names (so a kestractl setup works as is), then the context
of the config file, then defaults. Credentials are resolved as one unit: the
highest layer that names a token or a username supplies the whole of the
authentication.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

DEFAULT_HOST = "http://localhost:8080"
DEFAULT_TENANT = "main"
ENV_PREFIX = "ROOSTCTL_"
FALLBACK_ENV_PREFIX = "KESTRACTL_"  # kestractl's variables, read when the ROOSTCTL_ ones are not set


class ConfigError(Exception):
    """A config file that cannot be read or a context that does not exist (exit code 2)."""


def config_path(flag: str | None = None, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    raw = flag or env.get(ENV_PREFIX + "CONFIG") or env.get(FALLBACK_ENV_PREFIX + "CONFIG")
    if raw:
        return Path(raw).expanduser()
    return Path.home() / ".roostctl" / "config.yaml"


class ConfigFile:
    """The contexts file: read, change, write back (mode 0600: it holds credentials)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"contexts": {}, "default_context": None}
        if path.exists():
            try:
                loaded = YAML(typ="safe").load(path.read_text()) or {}
            except Exception as exc:
                raise ConfigError(f"cannot read config file {path}: {exc}") from None
            if not isinstance(loaded, dict):
                raise ConfigError(
                    f"config file {path} must be a mapping with 'contexts' and 'default_context'"
                )
            self.data["contexts"] = dict(loaded.get("contexts") or {})
            self.data["default_context"] = loaded.get("default_context")

    @property
    def contexts(self) -> dict[str, dict[str, Any]]:
        return self.data["contexts"]

    @property
    def default(self) -> str | None:
        return self.data.get("default_context")

    def context(self, name: str | None = None) -> dict[str, Any]:
        name = name or self.default
        if not name:
            return {}
        if name not in self.contexts:
            known = ", ".join(sorted(self.contexts)) or "none"
            raise ConfigError(f"no context named {name!r} in {self.path} (known: {known})")
        return dict(self.contexts[name] or {})

    def add(self, name: str, host: str, tenant: str, *, token: str | None = None, username: str | None = None,
            password: str | None = None, make_default: bool = False) -> None:  # fmt: skip
        entry: dict[str, Any] = {"host": host, "tenant": tenant}
        if token:
            entry.update(auth_method="token", token=token)
        elif username:
            entry.update(auth_method="basicAuth", username=username, password=password or "")
        self.contexts[name] = entry
        if make_default or not self.default or self.default not in self.contexts:
            self.data["default_context"] = name

    def use(self, name: str) -> None:
        self.context(name)
        self.data["default_context"] = name

    def remove(self, name: str) -> None:
        self.context(name)
        del self.contexts[name]
        if self.default == name:
            self.data["default_context"] = next(iter(sorted(self.contexts)), None)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        yaml = YAML()
        yaml.default_flow_style = False
        yaml.dump({"contexts": self.contexts, "default_context": self.default}, buf)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(buf.getvalue())
        os.replace(tmp, self.path)


@dataclass
class Settings:
    host: str = DEFAULT_HOST
    tenant: str = DEFAULT_TENANT
    token: str | None = None
    username: str | None = None
    password: str | None = None
    output: str = "table"
    verbose: bool = False
    context: str | None = None
    config: Path = field(default_factory=lambda: config_path())
    sources: dict[str, str] = field(default_factory=dict)
    configured: bool = True  # a config file exists

    def default_host_notice(self) -> str | None:
        """What to tell a user who configured nothing: the server roostctl talks to anyway."""
        if self.sources.get("host") != "default":
            return None
        where = f"no context in {self.config}" if self.configured else f"no config file ({self.config})"
        return (f"no server configured ({where}, no --host, ROOSTCTL_HOST or KESTRACTL_HOST): "
                f"using {self.host}")  # fmt: skip

    @property
    def auth_method(self) -> str:
        if self.token:
            return "token"
        if self.username:
            return "basicAuth"
        return "none"


def resolve(flags: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags (None when not given), the environment and the config file."""
    env = os.environ if env is None else env
    path = config_path(flags.get("config"), env)
    context_name = (
        flags.get("context")
        or env.get(ENV_PREFIX + "CONTEXT")
        or env.get(FALLBACK_ENV_PREFIX + "CONTEXT")
        or None
    )
    file = ConfigFile(path)
    ctx = file.context(context_name)
    keys = ("host", "tenant", "token", "username", "password", "output")
    environ = {k: env.get(ENV_PREFIX + k.upper()) or None for k in keys}
    kestractl = {k: env.get(FALLBACK_ENV_PREFIX + k.upper()) or None for k in keys}
    layers = ((flags, "flag"), (environ, "env"), (kestractl, "env"), (ctx, "config"))
    settings = Settings(config=path, context=context_name or file.default, verbose=bool(flags.get("verbose")))
    settings.configured = path.exists()
    for key, default in (("host", DEFAULT_HOST), ("tenant", DEFAULT_TENANT), ("output", "table")):
        for layer, source in layers:
            if layer.get(key):
                setattr(settings, key, str(layer[key]))
                settings.sources[key] = source
                break
        else:
            setattr(settings, key, default)
            settings.sources[key] = "default"
    for layer, source in layers:
        if layer.get("token") or layer.get("username"):
            settings.token = layer.get("token") or None
            settings.username = None if settings.token else layer.get("username")
            settings.password = None if settings.token else (layer.get("password") or "")
            settings.sources["auth"] = source
            break
    else:
        settings.sources["auth"] = "none"
    settings.host = settings.host.rstrip("/")
    if "://" not in settings.host:
        settings.host = "http://" + settings.host
    settings.output = settings.output.lower()
    if settings.output not in ("table", "json"):
        raise ConfigError(f"output must be table or json, got {settings.output!r}")
    return settings
