"""One small adapter per database over its Python DB-API driver.

Each adapter connects from a :class:`~roost_jdbc.urls.Target`, runs statements with
explicit transaction control, tells whether a statement produced a result set, cancels
the running statement from another thread (kill), and turns driver errors into the
database's own message.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from roost_jdbc.sqltext import Dialect, ParamStyle, has_keyword, leading_words
from roost_jdbc.urls import Target


class ConnectError(Exception):
    """The database could not be reached or refused the login."""


class Driver:
    system: str = ""
    display: str = ""
    dialect: Dialect = "sqlite"
    paramstyle: ParamStyle = "qmark"
    default_schema: str | None = None

    def __init__(
        self,
        target: Target,
        *,
        user: str | None = None,
        password: str | None = None,
        path: Path | None = None,
    ) -> None:
        self.target = target
        self.user = user if user is not None else target.user
        self.password = password if password is not None else target.password
        self.path = path
        self.conn: Any = None
        self._lock = threading.Lock()
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------
    def connect(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def cancel(self) -> None:
        """Stop the running statement (called from another thread when the execution is killed)."""

    # -- transactions ----------------------------------------------------------------------------
    def set_autocommit(self, on: bool) -> None:
        raise NotImplementedError

    def begin(self) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    # -- statements ------------------------------------------------------------------------------
    def execute(self, stmt: str, args: Any, *, stream: bool, fetch_size: int) -> Any:
        cur = self.conn.cursor()
        if args is None:
            cur.execute(stmt)
        else:
            cur.execute(stmt, args)
        return cur

    def has_result(self, cur: Any, stmt: str) -> bool:
        return cur.description is not None

    def columns(self, cur: Any) -> list[str]:
        return [str(d[0]) for d in cur.description]

    def close_cursor(self, cur: Any) -> None:
        try:
            cur.close()
        except Exception:
            pass

    def identity(self) -> tuple[str, str | None]:
        """(database, current schema) for asset metadata."""
        raise NotImplementedError

    # -- errors ----------------------------------------------------------------------------------
    def db_errors(self) -> tuple[type[BaseException], ...]:
        raise NotImplementedError

    def error_message(self, exc: BaseException) -> str:
        return str(exc).strip() or type(exc).__name__

    def where(self) -> str:
        """Where the database is, for error messages (never with credentials)."""
        return self.display


# ------------------------------------------------------------------------------------------------
class SqliteDriver(Driver):
    system = "sqlite"
    display = "SQLite"
    dialect = "sqlite"

    def connect(self) -> None:
        import sqlite3

        if self.target.uri:
            database, uri = self.target.path or ":memory:", True
        else:
            database, uri = (str(self.path) if self.path is not None else ":memory:"), False
        try:
            # isolation_level=None: no implicit transactions; the task issues BEGIN/COMMIT itself.
            self.conn = sqlite3.connect(
                database, uri=uri, isolation_level=None, check_same_thread=False, timeout=30
            )
        except sqlite3.Error as exc:
            raise ConnectError(f"cannot open SQLite database {database}: {exc}") from None

    def set_autocommit(self, on: bool) -> None:
        pass  # isolation_level=None is autocommit outside an explicit BEGIN

    def begin(self) -> None:
        self.conn.execute("BEGIN")

    def commit(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def cancel(self) -> None:
        with self._lock:
            if self.conn is not None and not self._closed:
                self.conn.interrupt()

    def identity(self) -> tuple[str, str | None]:
        if self.path is not None:
            return self.path.stem, None
        if self.target.uri and self.target.path:
            name = self.target.path[len("file:") :].split("?", 1)[0]
            if name and name != ":memory:":
                return Path(name).stem, None
        return "memory", None

    def db_errors(self) -> tuple[type[BaseException], ...]:
        import sqlite3

        return (sqlite3.Error,)


# ------------------------------------------------------------------------------------------------
class DuckdbDriver(Driver):
    system = "duckdb"
    display = "DuckDB"
    dialect = "duckdb"
    default_schema = "main"

    def __init__(self, *a: Any, working_dir: Path | None = None, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.working_dir = working_dir

    def connect(self) -> None:
        import duckdb

        if self.target.uri:
            database = self.target.path or ":memory:"
        else:
            database = str(self.path) if self.path is not None else ":memory:"
        config = {k: v for k, v in self.target.options.items()}
        try:
            self.conn = duckdb.connect(database, config=config)
            if self.working_dir is not None:
                # Relative file paths in queries (read_csv('data.csv')) resolve in the working folder.
                self.conn.execute("SET file_search_path = ?", [str(self.working_dir)])
        except duckdb.Error as exc:
            raise ConnectError(f"cannot open DuckDB database {database}: {exc}") from None

    def set_autocommit(self, on: bool) -> None:
        pass  # DuckDB autocommits outside an explicit BEGIN

    def begin(self) -> None:
        self.conn.begin()

    def execute(self, stmt: str, args: Any, *, stream: bool, fetch_size: int) -> Any:
        if args is None:
            self.conn.execute(stmt)
        else:
            self.conn.execute(stmt, args)
        return self.conn  # a DuckDB connection is its own cursor (cursor() opens another connection)

    def has_result(self, cur: Any, stmt: str) -> bool:
        if cur.description is None:
            return False
        import duckdb

        try:
            parsed = self.conn.extract_statements(stmt)
        except duckdb.Error:
            return True
        if len(parsed) != 1:
            return True
        expected = parsed[0].expected_result_type
        if expected == [duckdb.ExpectedResultType.QUERY_RESULT]:
            return True
        # INSERT/UPDATE/DELETE/CREATE answer with a "Count" row: a result set only with RETURNING.
        return duckdb.ExpectedResultType.CHANGED_ROWS in expected and has_keyword(stmt, "duckdb", "RETURNING")

    def close_cursor(self, cur: Any) -> None:
        pass

    def cancel(self) -> None:
        with self._lock:
            if self.conn is not None and not self._closed:
                self.conn.interrupt()

    def identity(self) -> tuple[str, str | None]:
        row = self.conn.execute("SELECT current_database(), current_schema()").fetchone()
        return str(row[0]), str(row[1])

    def db_errors(self) -> tuple[type[BaseException], ...]:
        import duckdb

        return (duckdb.Error,)


# ------------------------------------------------------------------------------------------------
class PostgresDriver(Driver):
    system = "postgresql"
    display = "PostgreSQL"
    dialect = "postgres"
    paramstyle = "pyformat"
    default_schema = "public"

    def __init__(self, *a: Any, extra: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.extra = extra or {}
        self._cursor_seq = 0

    def where(self) -> str:
        host = self.target.host or "localhost"
        port = f":{self.target.port}" if self.target.port else ""
        return f"PostgreSQL at {host}{port}"

    def connect(self) -> None:
        import psycopg

        kwargs: dict[str, Any] = {"connect_timeout": 30}
        if self.target.host:
            kwargs["host"] = self.target.host
        if self.target.port:
            kwargs["port"] = self.target.port
        if self.target.database:
            kwargs["dbname"] = self.target.database
        if self.user:
            kwargs["user"] = self.user
        if self.password:
            kwargs["password"] = self.password
        kwargs.update(self.target.options)
        kwargs.update(self.extra)
        try:
            self.conn = psycopg.connect(autocommit=True, **kwargs)
        except psycopg.Error as exc:
            raise ConnectError(f"cannot connect to {self.where()}: {self.error_message(exc)}") from None

    def set_autocommit(self, on: bool) -> None:
        self.conn.autocommit = on

    def begin(self) -> None:
        self.conn.autocommit = False  # psycopg opens the transaction at the next statement

    def execute(self, stmt: str, args: Any, *, stream: bool, fetch_size: int) -> Any:
        if stream and not self.conn.autocommit and self._declarable(stmt):
            # A server-side cursor streams big results in fetchSize batches instead of loading them whole.
            self._cursor_seq += 1
            cur = self.conn.cursor(name=f"roost_jdbc_{self._cursor_seq}")
            cur.itersize = max(1, fetch_size)
        else:
            cur = self.conn.cursor()
        cur.execute(stmt, args)
        return cur

    def _declarable(self, stmt: str) -> bool:
        words = leading_words(stmt, "postgres", 1)
        return (
            bool(words)
            and words[0] in ("SELECT", "VALUES", "TABLE")
            and not has_keyword(stmt, "postgres", "INTO")
        )

    def cancel(self) -> None:
        with self._lock:
            conn = None if self._closed else self.conn
        if conn is not None:
            try:
                conn.cancel_safe(timeout=5) if hasattr(conn, "cancel_safe") else conn.cancel()
            except Exception:
                pass

    def identity(self) -> tuple[str, str | None]:
        row = self.conn.execute("SELECT current_database(), current_schema()").fetchone()
        return str(row[0]), (str(row[1]) if row[1] is not None else "public")

    def db_errors(self) -> tuple[type[BaseException], ...]:
        import psycopg

        return (psycopg.Error,)

    def error_message(self, exc: BaseException) -> str:
        text = str(exc).strip() or type(exc).__name__
        sqlstate = getattr(exc, "sqlstate", None)
        return f"{text} (SQLSTATE {sqlstate})" if sqlstate else text


# ------------------------------------------------------------------------------------------------
class MysqlDriver(Driver):
    system = "mysql"
    display = "MySQL"
    dialect = "mysql"
    paramstyle = "pyformat"

    def where(self) -> str:
        return f"MySQL at {self.target.host}:{self.target.port}"

    def _kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "host": self.target.host or "localhost",
            "port": self.target.port or 3306,
            "charset": "utf8mb4",
            "connect_timeout": 30,
            "autocommit": True,
        }
        if self.target.database:
            kwargs["database"] = self.target.database
        if self.user:
            kwargs["user"] = self.user
        if self.password:
            kwargs["password"] = self.password
        kwargs.update(self.target.options)
        return kwargs

    def connect(self) -> None:
        import pymysql

        try:
            self.conn = pymysql.connect(**self._kwargs())
        except pymysql.err.MySQLError as exc:
            raise ConnectError(f"cannot connect to {self.where()}: {self.error_message(exc)}") from None

    def set_autocommit(self, on: bool) -> None:
        self.conn.autocommit(on)

    def begin(self) -> None:
        self.conn.autocommit(False)
        self.conn.begin()

    def execute(self, stmt: str, args: Any, *, stream: bool, fetch_size: int) -> Any:
        import pymysql.cursors

        cur = self.conn.cursor(pymysql.cursors.SSCursor if stream else pymysql.cursors.Cursor)
        cur.execute(stmt, args)
        return cur

    def cancel(self) -> None:
        import pymysql

        with self._lock:
            conn = None if self._closed else self.conn
        if conn is None:
            return
        try:
            thread_id = conn.thread_id()
            killer = pymysql.connect(**{**self._kwargs(), "connect_timeout": 5})
            try:
                with killer.cursor() as cur:
                    cur.execute(f"KILL QUERY {int(thread_id)}")
            finally:
                killer.close()
        except Exception:
            pass

    def identity(self) -> tuple[str, str | None]:
        with self.conn.cursor() as cur:
            cur.execute("SELECT DATABASE()")
            row = cur.fetchone()
        return (str(row[0]) if row and row[0] is not None else "unknown"), None

    def db_errors(self) -> tuple[type[BaseException], ...]:
        import pymysql

        return (pymysql.err.MySQLError,)

    def error_message(self, exc: BaseException) -> str:
        args = getattr(exc, "args", ())
        if len(args) >= 2 and isinstance(args[0], int):
            return f"({args[0]}) {args[1]}"
        return super().error_message(exc)
