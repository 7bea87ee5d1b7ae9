"""JDBC URLs, as Kestra users write them, mapped onto the Python drivers' connection arguments.

* ``jdbc:sqlite:myfile.db`` (relative to the task's working folder), ``jdbc:sqlite:/abs.db``,
  ``jdbc:sqlite:`` or ``jdbc:sqlite::memory:`` (in memory), ``jdbc:sqlite:file:x.db?mode=ro`` (URI).
* ``jdbc:duckdb:`` (in memory), ``jdbc:duckdb:path.duckdb[?setting=value]``, ``jdbc:duckdb:md:db``.
* ``jdbc:postgresql://host[:port][,host2[:port2]]/database?user=..&password=..&sslmode=..``
  (``postgresql://`` libpq URIs are accepted too).
* ``jdbc:mysql://host[:port]/database?user=..&password=..`` (and ``jdbc:mariadb://``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit


class UrlError(ValueError):
    """The URL does not fit the task's database."""


@dataclass
class Target:
    """Where to connect, with credentials kept apart from anything that gets logged."""

    system: str
    """sqlite, duckdb, postgresql or mysql."""
    path: str | None = None
    """File of an embedded database (may be relative); None for in-memory."""
    uri: bool = False
    """SQLite ``file:`` URI (passed to sqlite3 with ``uri=True``)."""
    host: str | None = None
    port: int | None = None
    database: str | None = None
    user: str | None = None
    password: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """Driver keyword arguments mapped from URL parameters."""
    ignored: list[str] = field(default_factory=list)
    """URL parameters with no meaning for the Python driver."""

    @property
    def memory(self) -> bool:
        return self.path is None


_PASSWORD_IN_QUERY = re.compile(r"(?i)((?:password|motherduck_token|sslpassword|token)=)[^&;]*")
_PASSWORD_IN_USERINFO = re.compile(r"(//[^/:@]*:)[^@/]*@")


def redact(url: str) -> str:
    """The URL with passwords and tokens replaced by ``***`` (safe to log)."""
    return _PASSWORD_IN_USERINFO.sub(r"\1***@", _PASSWORD_IN_QUERY.sub(r"\1***", url))


def _strip_prefix(url: str, prefixes: tuple[str, ...], what: str) -> tuple[str, str]:
    for prefix in prefixes:
        if url.lower().startswith(prefix):
            return prefix, url[len(prefix) :]
    raise UrlError(f"'{redact(url)}' is not a {what} JDBC URL (expected it to start with {prefixes[0]})")


def parse_sqlite(url: str) -> Target:
    _, rest = _strip_prefix(url.strip(), ("jdbc:sqlite:",), "SQLite")
    if rest.startswith("file:"):
        return Target("sqlite", path=rest, uri=True)
    rest = rest.split("?", 1)[0]
    if rest in ("", ":memory:"):
        return Target("sqlite")
    return Target("sqlite", path=rest)


_DUCKDB_PASSTHROUGH = ("md:", "motherduck:")


def parse_duckdb(url: str) -> Target:
    _, rest = _strip_prefix(url.strip(), ("jdbc:duckdb:",), "DuckDB")
    if rest.lower().startswith(_DUCKDB_PASSTHROUGH):
        return Target("duckdb", path=rest, uri=True)  # MotherDuck and friends: DuckDB reads it whole
    path, _, query = rest.partition("?")
    options: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    if path in ("", ":memory:") or path.startswith(":memory:"):
        return Target("duckdb", options=options)
    return Target("duckdb", path=path, options=options)


def _split_hosts(netloc: str, default_port: int) -> tuple[list[str], list[int]]:
    hosts: list[str] = []
    ports: list[int] = []
    for item in filter(None, netloc.split(",")):
        if item.startswith("["):  # IPv6 literal
            host, _, port = item[1:].partition("]")
            port = port.lstrip(":")
        else:
            host, _, port = item.rpartition(":") if item.count(":") == 1 else (item, "", "")
        try:
            ports.append(int(port) if port else default_port)
        except ValueError:
            raise UrlError(f"invalid port {port!r} in the JDBC URL") from None
        hosts.append(unquote(host))
    return hosts, ports


def _network_url(
    url: str, prefixes: tuple[str, ...], what: str
) -> tuple[str, list[str], list[int], str, dict[str, str]]:
    prefix, rest = _strip_prefix(url.strip(), prefixes, what)
    if not rest.startswith("//"):
        # jdbc:postgresql:database (local host, default port)
        db, _, query = rest.partition("?")
        return "", [], [], unquote(db.lstrip("/")), dict(parse_qsl(query, keep_blank_values=True))
    parts = urlsplit("x:" + rest)
    netloc = parts.netloc
    userinfo = ""
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    if userinfo:
        user, _, password = userinfo.partition(":")
        params.setdefault("user", unquote(user))
        if password:
            params.setdefault("password", unquote(password))
    return netloc, *_split_hosts(netloc, 0), unquote(parts.path.lstrip("/")), params  # type: ignore[return-value]


_PG_PARAMS = {
    "sslmode": "sslmode",
    "sslrootcert": "sslrootcert",
    "sslcert": "sslcert",
    "sslkey": "sslkey",
    "sslpassword": "sslpassword",
    "applicationname": "application_name",
    "application_name": "application_name",
    "connecttimeout": "connect_timeout",
    "connect_timeout": "connect_timeout",
    "logintimeout": "connect_timeout",
    "options": "options",
    "target_session_attrs": "target_session_attrs",
    "targetservertype": "target_session_attrs",
}


def parse_postgres(url: str) -> Target:
    _, hosts, ports, database, params = _network_url(
        url, ("jdbc:postgresql:", "postgresql:", "postgres:"), "PostgreSQL"
    )
    target = Target("postgresql", database=database or None)
    if hosts:
        target.host = ",".join(hosts)
        target.port = ports[0] if len(set(ports)) == 1 and ports[0] else None
        if len(hosts) > 1:
            target.options["port"] = ",".join(str(p or 5432) for p in ports)
    target.port = target.port or (5432 if hosts else None)
    for key, value in params.items():
        low = key.lower()
        if low == "user":
            target.user = value
        elif low == "password":
            target.password = value
        elif low == "ssl":
            if value.lower() == "true":
                target.options.setdefault("sslmode", "require")
        elif low == "currentschema":
            target.options["options"] = f"{target.options.get('options', '')} -c search_path={value}".strip()
        elif low in _PG_PARAMS:
            mapped = _PG_PARAMS[low]
            if mapped == "target_session_attrs":
                value = {"master": "read-write", "primary": "read-write", "secondary": "standby"}.get(
                    value.lower(), value
                )
            if mapped == "options" and "options" in target.options:
                value = f"{value} {target.options['options']}"
            target.options[mapped] = value
        else:
            target.ignored.append(key)
    return target


def parse_mysql(url: str) -> Target:
    _, hosts, ports, database, params = _network_url(url, ("jdbc:mysql:", "jdbc:mariadb:", "mysql:"), "MySQL")
    if len(hosts) > 1:
        raise UrlError("several MySQL hosts in one URL are not supported: give one host")
    target = Target(
        "mysql",
        host=hosts[0] if hosts else "localhost",
        port=(ports[0] if ports else 0) or 3306,
        database=database or None,
    )
    for key, value in params.items():
        low = key.lower()
        if low == "user":
            target.user = value
        elif low == "password":
            target.password = value
        elif low == "connecttimeout":  # milliseconds in Connector/J
            try:
                target.options["connect_timeout"] = max(1, int(value) // 1000)
            except ValueError:
                raise UrlError(f"connectTimeout must be a number of milliseconds, not {value!r}") from None
        elif low in ("characterencoding", "charset"):
            target.options["charset"] = {"utf-8": "utf8mb4", "utf8": "utf8mb4"}.get(value.lower(), value)
        elif low == "sslmode":
            mode = value.upper()
            if mode in ("REQUIRED", "PREFERRED"):
                target.options["ssl"] = {"check_hostname": False}
            elif mode == "VERIFY_CA":
                target.options["ssl_verify_cert"] = True
            elif mode == "VERIFY_IDENTITY":
                target.options["ssl_verify_cert"] = True
                target.options["ssl_verify_identity"] = True
            elif mode == "DISABLED":
                target.options["ssl_disabled"] = True
        elif low == "usessl":
            if value.lower() == "true":
                target.options.setdefault("ssl", {"check_hostname": False})
        else:
            target.ignored.append(key)
    return target
