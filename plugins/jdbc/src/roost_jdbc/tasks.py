"""Kestra's JDBC ``Query`` and ``Queries`` tasks for SQLite, PostgreSQL, DuckDB and MySQL.

Every task runs its statements in one transaction (``Queries`` with ``transaction: false``
commits each statement on its own): a failing statement rolls back what the task did and
fails it with the database's own message. Results come back as ``row`` (FETCH_ONE),
``rows`` (FETCH) or a stored file (STORE: one JSON document per line, which is also valid
Amazon Ion text, under a ``.ion`` name as Kestra does). With ``assets.enableAuto`` each
statement is parsed with sqlglot and emits its own bundle: the tables it reads as inputs,
the tables or views it creates or writes as outputs (type ``io.kestra.plugin.ee.assets.Table``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ConfigDict, Field, PrivateAttr, model_serializer
from roost import Asset, AssetBundle, Dynamic, Output, RunContext, Task, TaskError

from roost_jdbc import urls
from roost_jdbc.convert import to_json, to_param
from roost_jdbc.drivers import ConnectError, Driver, DuckdbDriver, MysqlDriver, PostgresDriver, SqliteDriver
from roost_jdbc.lineage import LineageError, TableName, statement_lineage
from roost_jdbc.sqltext import bind_named, is_transaction_control, needs_autocommit, split_statements

TABLE = "io.kestra.plugin.ee.assets.Table"
FetchType = Literal["NONE", "FETCH_ONE", "FETCH", "STORE"]
SINGLE_STATEMENT = (
    "Query task supports only a single SQL statement. Use the Queries task to run multiple statements."
)


# -- outputs ---------------------------------------------------------------------------------------
class _Carrier(Output):
    model_config = ConfigDict(use_attribute_docstrings=True)
    _bundles: list[AssetBundle] = PrivateAttr(default_factory=list)


class QueryResult(_Carrier):
    """What one statement returned."""

    row: dict[str, Any] | None = None
    """The first row (fetchType FETCH_ONE; null when the statement returned no row)."""
    rows: list[dict[str, Any]] | None = None
    """All rows (fetchType FETCH)."""
    uri: str | None = None
    """Internal-storage URI of the rows, one JSON (Ion-compatible) document per line (fetchType STORE)."""
    size: int | None = None
    """Number of rows fetched or stored."""

    _fetch_one: bool = PrivateAttr(default=False)

    @model_serializer(mode="wrap")
    def _keep_null_row(self, handler: Any) -> Any:
        data = handler(self)
        if self._fetch_one and isinstance(data, dict):
            data.setdefault("row", None)  # Kestra always shows `row` for FETCH_ONE, null included
        return data


class QueryOutput(QueryResult):
    """Outputs of a Query task."""


class FileQueryOutput(QueryResult):
    """Outputs of a Query task on an embedded database file."""

    database_uri: str | None = None
    """Internal-storage URI of the database file after the run (with ``outputDbFile: true``)."""


class QueriesOutput(_Carrier):
    """Outputs of a Queries task."""

    outputs: list[QueryResult] = Field(default_factory=list)
    """One entry per statement that returned a result set, in order (as Kestra does)."""


class FileQueriesOutput(QueriesOutput):
    """Outputs of a Queries task on an embedded database file."""

    database_uri: str | None = None
    """Internal-storage URI of the database file after the run (with ``outputDbFile: true``)."""


# -- the common base -------------------------------------------------------------------------------
class _Jdbc(Task):
    """Common properties of the JDBC tasks."""

    driver_cls: ClassVar[type[Driver]] = Driver
    parse_url: ClassVar[Any] = None

    url: Dynamic[str] | None = None
    """The JDBC URL to connect to the database."""
    username: Dynamic[str] | None = None
    """The database user (overrides a user given in the URL)."""
    password: Dynamic[str] | None = None
    """The database user's password (overrides one given in the URL); use ``{{ secret('...') }}``."""
    sql: Dynamic[str]
    """The SQL to run: a single statement for Query, several separated by ``;`` for Queries."""
    fetch_type: Dynamic[FetchType] = "NONE"
    """What to do with rows: FETCH_ONE outputs the first row, FETCH all rows, STORE writes them to internal storage, NONE nothing."""
    fetch_size: Dynamic[int] = 10000
    """Number of rows read from the database per round trip."""
    parameters: Dynamic[dict[str, Any]] | None = None
    """Named parameters bound safely by the driver: ``:name`` in the SQL takes the value of key ``name``."""
    time_zone_id: Dynamic[str] | None = None
    """Time zone (IANA id such as ``Europe/Paris``) that timestamps with a time zone are converted to."""
    after_sql: Dynamic[str] | None = None
    """A single SQL statement run after the main SQL, in the same transaction (Kestra's afterSQL)."""
    fetch: bool = False
    """Deprecated: use ``fetchType: FETCH``."""
    fetch_one: bool = False
    """Deprecated: use ``fetchType: FETCH_ONE``."""
    store: bool = False
    """Deprecated: use ``fetchType: STORE``."""

    _driver: Driver | None = PrivateAttr(default=None)

    # -- database-specific hooks (overridden per database) -------------------------------------------
    def _make_driver(self, ctx: RunContext, target: urls.Target) -> Driver:
        return self.driver_cls(target, user=self.username, password=self.password)

    def _after(self, ctx: RunContext, driver: Driver) -> dict[str, Any]:
        """Extra outputs once the connection is closed (the database file)."""
        return {}

    # -- helpers ---------------------------------------------------------------------------------------
    def _fetch_type(self) -> str:
        if self.fetch:
            return "FETCH"
        if self.fetch_one:
            return "FETCH_ONE"
        if self.store:
            return "STORE"
        return self.fetch_type

    def _zone(self) -> ZoneInfo | None:
        if not self.time_zone_id:
            return None
        try:
            return ZoneInfo(self.time_zone_id)
        except (ZoneInfoNotFoundError, ValueError):
            raise TaskError(
                f"unknown timeZoneId '{self.time_zone_id}': expected an IANA time zone such as Europe/Paris"
            ) from None

    def _target(self, ctx: RunContext) -> urls.Target:
        if not self.url:
            raise TaskError(
                f"property 'url' is required for {self.type_id} (set it on the task or through pluginDefaults)"
            )
        try:
            target = type(self).parse_url(self.url)
        except urls.UrlError as exc:
            raise TaskError(str(exc)) from None
        if target.ignored:
            ctx.logger.debug("URL parameters with no meaning here, ignored: %s", ", ".join(target.ignored))
        return target

    def kill(self) -> None:
        if self._driver is not None:
            self._driver.cancel()

    def auto_assets(self, ctx: RunContext, output: Any) -> list[Any]:
        return list(getattr(output, "_bundles", None) or [])

    # -- the run ---------------------------------------------------------------------------------------
    def _execute(
        self, ctx: RunContext, *, single: bool, transactional: bool
    ) -> tuple[list[QueryResult], dict[str, Any], list[AssetBundle]]:
        fetch_type = self._fetch_type()
        zone = self._zone()
        fetch_size = self.fetch_size if self.fetch_size and self.fetch_size > 0 else 10000
        target = self._target(ctx)
        driver = self._make_driver(ctx, target)
        statements = split_statements(self.sql, driver.dialect)
        if not statements:
            raise TaskError("property 'sql' holds no SQL statement")
        if single and len(statements) > 1:
            raise TaskError(SINGLE_STATEMENT)
        after = split_statements(self.after_sql, driver.dialect) if self.after_sql else []
        if len(after) > 1:
            raise TaskError("afterSQL supports only a single SQL statement")
        if single and needs_autocommit(statements[0], driver.dialect):
            transactional = False
        if transactional:
            for stmt in (*statements, *after):
                if is_transaction_control(stmt, driver.dialect):
                    raise TaskError(
                        f"the task runs its statements in one transaction itself; remove '{_excerpt(stmt)}' "
                        "(or set transaction: false on a Queries task to manage transactions in SQL)"
                    )
        want_assets = bool(self.assets and self.assets.enable_auto)
        params = (
            {k: to_param(v, driver.system) for k, v in self.parameters.items()} if self.parameters else None
        )

        try:
            driver.connect()
        except ConnectError as exc:
            raise TaskError(str(exc)) from None
        self._driver = driver
        ctx.on_kill(driver.cancel)
        results: list[QueryResult] = []
        total = 0
        identity: tuple[str, str | None] | None = None
        try:
            if want_assets:
                try:
                    identity = driver.identity()
                except driver.db_errors() as exc:
                    ctx.logger.warning(
                        "auto assets: cannot read the current database name: %s", driver.error_message(exc)
                    )
            driver.set_autocommit(not transactional)
            if transactional:
                driver.begin()
            index = 0
            all_statements = [*statements, *after]
            try:
                for index, stmt in enumerate(all_statements, 1):
                    if ctx.killed():
                        raise TaskError("the execution was killed: statements not run were skipped")
                    ctx.logger.debug("Starting query: %s", stmt)
                    args: Any = None
                    if params is not None:
                        stmt, args = bind_named(stmt, params, driver.dialect, driver.paramstyle)
                    cur = driver.execute(stmt, args, stream=fetch_type == "STORE", fetch_size=fetch_size)
                    try:
                        if driver.has_result(cur, stmt) and index <= len(statements):
                            result = self._fetch(ctx, driver, cur, fetch_type, fetch_size, zone, index)
                            total += result.size or 0
                            results.append(result)
                    finally:
                        driver.close_cursor(cur)
                    if ctx.killed():  # a cancelled statement may still return (MySQL's SLEEP does)
                        raise TaskError("the query was cancelled because the execution was killed")
                if transactional:
                    driver.commit()
            except driver.db_errors() as exc:
                _rollback(ctx, driver, transactional)
                if ctx.killed():
                    raise TaskError("the query was cancelled because the execution was killed") from None
                raise TaskError(
                    self._failure(driver, exc, index, len(all_statements), transactional)
                ) from None
            except BaseException:
                _rollback(ctx, driver, transactional)
                raise
        finally:
            self._driver = None
            driver.close()
        extra = self._after(ctx, driver)
        ctx.metric(
            "fetch.size",
            total,
            fetch=str(fetch_type in ("FETCH", "FETCH_ONE")).lower(),
            store=str(fetch_type == "STORE").lower(),
        )
        bundles = self._bundles(ctx, driver, identity, [*statements, *after]) if want_assets else []
        return results, extra, bundles

    def _failure(
        self, driver: Driver, exc: BaseException, index: int, count: int, transactional: bool
    ) -> str:
        message = driver.error_message(exc)
        if count == 1:
            return f"{driver.display} error: {message}"
        rolled = "; the transaction was rolled back" if transactional else ""
        return f"statement {index} of {count} failed{rolled}: {message}"

    def _fetch(
        self,
        ctx: RunContext,
        driver: Driver,
        cur: Any,
        fetch_type: str,
        fetch_size: int,
        zone: ZoneInfo | None,
        index: int,
    ) -> QueryResult:
        if fetch_type == "NONE":
            return QueryResult()
        columns = driver.columns(cur)

        def convert(raw: Any) -> dict[str, Any]:
            return {col: to_json(value, zone) for col, value in zip(columns, raw, strict=False)}

        if fetch_type == "FETCH_ONE":
            raw = cur.fetchone()
            result = QueryResult(
                row=convert(raw) if raw is not None else None, size=1 if raw is not None else 0
            )
            result._fetch_one = True
            return result
        if fetch_type == "FETCH":
            rows: list[dict[str, Any]] = []
            while batch := cur.fetchmany(fetch_size):
                if ctx.killed():
                    raise TaskError("the execution was killed while rows were being fetched")
                rows.extend(convert(r) for r in batch)
            return QueryResult(rows=rows, size=len(rows))
        import json

        path = Path(ctx.working_dir) / f"{self.id}-result-{index}.ion"
        size = 0
        with path.open("w", encoding="utf-8") as fh:
            while batch := cur.fetchmany(fetch_size):
                if ctx.killed():
                    raise TaskError("the execution was killed while rows were being stored")
                for r in batch:
                    fh.write(json.dumps(convert(r), ensure_ascii=False, separators=(",", ":")))
                    fh.write("\n")
                size += len(batch)
        uri = ctx.put_file(path)
        return QueryResult(uri=uri, size=size)

    # -- assets ------------------------------------------------------------------------------------------
    def _bundles(
        self, ctx: RunContext, driver: Driver, identity: tuple[str, str | None] | None, statements: list[str]
    ) -> list[AssetBundle]:
        database, schema = identity or (self._fallback_database(driver), driver.default_schema)
        bundles: list[AssetBundle] = []
        for i, stmt in enumerate(statements, 1):
            try:
                lineage = statement_lineage(stmt, driver.dialect)
            except LineageError as exc:
                ctx.logger.warning(
                    "auto assets: statement %d could not be parsed by sqlglot (%s dialect), no asset recorded for it: %s",
                    i,
                    driver.dialect,
                    exc,
                )
                continue
            if not lineage.inputs and not lineage.outputs:
                continue
            bundle = AssetBundle(
                inputs=[self._asset(driver, t, database, schema) for t in lineage.inputs],
                outputs=[self._asset(driver, t, database, schema) for t in lineage.outputs],
            )
            ctx.logger.debug(
                "auto assets: statement %d reads %s, writes %s",
                i,
                [a.id for a in bundle.inputs] or "nothing",
                [a.id for a in bundle.outputs] or "nothing",
            )
            bundles.append(bundle)
        return bundles

    def _fallback_database(self, driver: Driver) -> str:
        return driver.target.database or "unknown"

    def _asset(self, driver: Driver, table: TableName, database: str, current_schema: str | None) -> Asset:
        system = driver.system
        if system == "mysql":
            db, schema = table.db or database, None
        elif system == "sqlite":
            db = database
            schema = table.db if table.db and table.db.lower() != "main" else None
        else:
            db = table.catalog or database
            schema = table.db or current_schema or driver.default_schema
        parts = [db]
        if schema and schema != driver.default_schema:
            parts.append(schema)
        parts.append(table.name)
        metadata: dict[str, Any] = {"system": system, "database": db}
        if schema:
            metadata["schema"] = schema
        metadata["name"] = table.name
        if driver.target.host:
            metadata["host"] = driver.target.host
            if driver.target.port:
                metadata["port"] = driver.target.port
        return Asset(id=".".join(parts), type=TABLE, metadata=metadata)


def _rollback(ctx: RunContext, driver: Driver, transactional: bool) -> None:
    if not transactional or driver.conn is None:
        return
    try:
        driver.rollback()
    except Exception as exc:  # the connection may be gone (kill); the server rolls back on its own then
        ctx.logger.warning("rollback failed: %s", exc)


def _excerpt(stmt: str, limit: int = 60) -> str:
    one = " ".join(stmt.split())
    return one if len(one) <= limit else one[: limit - 3] + "..."


class _Query(_Jdbc):
    Out: ClassVar[type[Output]] = QueryOutput

    def run(self, ctx: RunContext) -> Output:
        results, extra, bundles = self._execute(ctx, single=True, transactional=True)
        base = results[0] if results else QueryResult()
        out = self.Out(**base.model_dump(exclude_none=True), **extra)
        if isinstance(out, QueryResult):
            out._fetch_one = base._fetch_one
        out._bundles = bundles
        return out


class _Queries(_Jdbc):
    Out: ClassVar[type[Output]] = QueriesOutput

    transaction: Dynamic[bool] = True
    """Run all statements in one transaction, rolled back entirely when one fails; false commits each statement on its own."""

    def run(self, ctx: RunContext) -> Output:
        results, extra, bundles = self._execute(ctx, single=False, transactional=self.transaction)
        out = self.Out(outputs=results, **extra)
        out._bundles = bundles
        return out


# -- SQLite ----------------------------------------------------------------------------------------
class _Sqlite(_Jdbc):
    driver_cls = SqliteDriver
    parse_url = staticmethod(urls.parse_sqlite)

    url: Dynamic[str] | None = "jdbc:sqlite:"
    """The JDBC URL: ``jdbc:sqlite:myfile.db`` (relative to the task's working folder), ``jdbc:sqlite:/abs/path.db``, or ``jdbc:sqlite:`` for an in-memory database."""
    sqlite_file: Dynamic[str] | None = None
    """A SQLite database file from internal storage (``kestra://...``), copied to the URL's path before the run."""
    output_db_file: Dynamic[bool] = False
    """Upload the database file to internal storage after the run, as output ``databaseUri``."""

    def _make_driver(self, ctx: RunContext, target: urls.Target) -> Driver:
        path = _db_path(ctx, target, bool(self.sqlite_file) or self.output_db_file, "database.db")
        if self.sqlite_file:
            _load_db_file(ctx, self.sqlite_file, path, "sqliteFile")
        return SqliteDriver(target, user=self.username, password=self.password, path=path)

    def _after(self, ctx: RunContext, driver: Driver) -> dict[str, Any]:
        return _upload_db_file(ctx, driver, self.output_db_file)


class _Duckdb(_Jdbc):
    driver_cls = DuckdbDriver
    parse_url = staticmethod(urls.parse_duckdb)

    url: Dynamic[str] | None = "jdbc:duckdb:"
    """The JDBC URL: ``jdbc:duckdb:`` (in memory), ``jdbc:duckdb:file.duckdb`` (relative to the working folder) or an absolute path."""
    database_uri: Dynamic[str] | None = None
    """A DuckDB database file from internal storage (``kestra://...``) to open."""
    output_db_file: Dynamic[bool] = False
    """Upload the database file to internal storage after the run, as output ``databaseUri``."""

    def _make_driver(self, ctx: RunContext, target: urls.Target) -> Driver:
        path = None
        if not target.uri:
            path = _db_path(ctx, target, bool(self.database_uri) or self.output_db_file, "database.duckdb")
        if self.database_uri:
            if path is None:
                raise TaskError("databaseUri cannot be combined with a MotherDuck URL")
            _load_db_file(ctx, self.database_uri, path, "databaseUri")
        return DuckdbDriver(
            target, user=self.username, password=self.password, path=path, working_dir=Path(ctx.working_dir)
        )

    def _after(self, ctx: RunContext, driver: Driver) -> dict[str, Any]:
        return _upload_db_file(ctx, driver, self.output_db_file)


def _db_path(ctx: RunContext, target: urls.Target, need_file: bool, default_name: str) -> Path | None:
    if target.uri:
        return None
    if target.memory:
        return Path(ctx.working_dir) / default_name if need_file else None
    path = Path(os.path.expanduser(target.path or ""))
    return path if path.is_absolute() else Path(ctx.working_dir) / path


def _load_db_file(ctx: RunContext, uri: str, path: Path | None, prop: str) -> None:
    if path is None:
        raise TaskError(f"{prop} needs a file URL (jdbc:...:name.db), not a URI-style one")
    if not uri.startswith("kestra://"):
        raise TaskError(f"{prop} must be an internal-storage URI (kestra://...), got '{uri}'")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with ctx.open_read(uri) as src, path.open("wb") as dst:  # streamed: a database file can be big
            shutil.copyfileobj(src, dst, 1 << 20)
    except Exception as exc:
        raise TaskError(f"cannot read {prop} '{uri}': {exc}") from None


def _upload_db_file(ctx: RunContext, driver: Driver, wanted: bool) -> dict[str, Any]:
    if not wanted:
        return {}
    if driver.path is None or not driver.path.exists():
        raise TaskError("outputDbFile needs a database file; this URL opens no local file")
    return {"database_uri": ctx.put_file(driver.path)}


class _Postgres(_Jdbc):
    driver_cls = PostgresDriver
    parse_url = staticmethod(urls.parse_postgres)

    url: Dynamic[str] | None = None
    """The JDBC URL, such as ``jdbc:postgresql://127.0.0.1:5432/mydb`` (required; often set through pluginDefaults)."""
    ssl: Dynamic[bool] | None = None
    """Use TLS (same as ``sslMode: REQUIRE`` when sslMode is not set)."""
    ssl_mode: Dynamic[Literal["DISABLE", "ALLOW", "PREFER", "REQUIRE", "VERIFY_CA", "VERIFY_FULL"]] | None = (
        None
    )
    """TLS mode of the connection."""
    ssl_root_cert: Dynamic[str] | None = None
    """PEM content of the certificate authority that signed the server's certificate."""
    ssl_cert: Dynamic[str] | None = None
    """PEM content of the client certificate."""
    ssl_key: Dynamic[str] | None = None
    """PEM content of the client certificate's key."""
    ssl_key_password: Dynamic[str] | None = None
    """Password of the client key."""

    def _make_driver(self, ctx: RunContext, target: urls.Target) -> Driver:
        extra: dict[str, Any] = {}
        if self.ssl_mode:
            extra["sslmode"] = self.ssl_mode.lower().replace("_", "-")
        elif self.ssl:
            extra["sslmode"] = "require"
        for prop, key in (("ssl_root_cert", "sslrootcert"), ("ssl_cert", "sslcert"), ("ssl_key", "sslkey")):
            content = getattr(self, prop)
            if content:
                file = Path(ctx.working_dir) / f".{key}.pem"
                file.write_text(content)
                file.chmod(0o600)
                extra[key] = str(file)
        if self.ssl_key_password:
            extra["sslpassword"] = self.ssl_key_password
        return PostgresDriver(target, user=self.username, password=self.password, extra=extra)


class _Mysql(_Jdbc):
    driver_cls = MysqlDriver
    parse_url = staticmethod(urls.parse_mysql)

    url: Dynamic[str] | None = None
    """The JDBC URL, such as ``jdbc:mysql://127.0.0.1:3306/mydb`` (required; often set through pluginDefaults)."""


# -- the task types --------------------------------------------------------------------------------
class SqliteQuery(_Sqlite, _Query, type="io.kestra.plugin.jdbc.sqlite.Query"):
    """Run one SQL statement on a SQLite database.

    The database is a file in the task's working folder (``jdbc:sqlite:myfile.db``), an absolute
    path, or in memory; ``sqliteFile`` loads an existing file from internal storage and
    ``outputDbFile`` uploads the file after the run (output ``databaseUri``).
    """

    Out: ClassVar[type[Output]] = FileQueryOutput


class SqliteQueries(_Sqlite, _Queries, type="io.kestra.plugin.jdbc.sqlite.Queries"):
    """Run several SQL statements on a SQLite database, in one transaction by default."""

    Out: ClassVar[type[Output]] = FileQueriesOutput


class PostgresQuery(_Postgres, _Query, type="io.kestra.plugin.jdbc.postgresql.Query"):
    """Run one SQL statement on a PostgreSQL server."""


class PostgresQueries(_Postgres, _Queries, type="io.kestra.plugin.jdbc.postgresql.Queries"):
    """Run several SQL statements on a PostgreSQL server, in one transaction by default."""


class DuckdbQuery(_Duckdb, _Query, type="io.kestra.plugin.jdbc.duckdb.Query"):
    """Run one SQL statement on a DuckDB database (in memory or a file).

    Relative file paths in the SQL (``read_csv('data.csv')``) resolve in the task's working folder.
    """

    Out: ClassVar[type[Output]] = FileQueryOutput


class DuckdbQueries(_Duckdb, _Queries, type="io.kestra.plugin.jdbc.duckdb.Queries"):
    """Run several SQL statements on a DuckDB database, in one transaction by default."""

    Out: ClassVar[type[Output]] = FileQueriesOutput


class MysqlQuery(_Mysql, _Query, type="io.kestra.plugin.jdbc.mysql.Query"):
    """Run one SQL statement on a MySQL or MariaDB server (PyMySQL driver)."""


class MysqlQueries(_Mysql, _Queries, type="io.kestra.plugin.jdbc.mysql.Queries"):
    """Run several SQL statements on a MySQL or MariaDB server, in one transaction by default.

    MySQL commits DDL (CREATE, ALTER, DROP...) implicitly: only data changes are rolled back.
    """


TASKS = (
    SqliteQuery,
    SqliteQueries,
    PostgresQuery,
    PostgresQueries,
    DuckdbQuery,
    DuckdbQueries,
    MysqlQuery,
    MysqlQueries,
)
