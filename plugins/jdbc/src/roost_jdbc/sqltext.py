"""Lexical work on SQL text: statement splitting and named-parameter binding.

A small scanner cuts SQL into segments (code, string literal, quoted identifier,
comment, dollar-quoted body) following each dialect's quoting rules, so that a
``;`` or ``:name`` inside a literal or a comment is never taken for a statement
end or a parameter. SQLite trigger bodies (``BEGIN ...; END``) are kept whole
with SQLite's own ``complete_statement``.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Mapping
from typing import Any, Literal

Dialect = Literal["sqlite", "postgres", "duckdb", "mysql"]
SegmentKind = Literal["code", "string", "ident", "comment", "dollar"]

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def segments(sql: str, dialect: Dialect) -> Iterator[tuple[SegmentKind, str]]:
    """Cut ``sql`` into ``(kind, text)`` pieces; concatenating the texts gives ``sql`` back."""
    n = len(sql)
    i = 0
    code_start = 0

    def flush(end: int) -> Iterator[tuple[SegmentKind, str]]:
        if end > code_start:
            yield "code", sql[code_start:end]

    while i < n:
        c = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        end: int | None = None
        kind: SegmentKind | None = None
        if (c == "-" and nxt == "-") or (c == "#" and dialect == "mysql"):
            nl = sql.find("\n", i)
            end, kind = (n if nl < 0 else nl + 1), "comment"
        elif c == "/" and nxt == "*":
            end, kind = _block_comment_end(sql, i, nested=dialect in ("postgres", "duckdb")), "comment"
        elif c == "'":
            backslash = dialect == "mysql" or (dialect == "postgres" and _is_escape_string(sql, i))
            end, kind = _quoted_end(sql, i, "'", backslash), "string"
        elif c == '"':
            if dialect == "mysql":
                end, kind = _quoted_end(sql, i, '"', True), "string"
            else:
                end, kind = _quoted_end(sql, i, '"', False), "ident"
        elif c == "`" and dialect in ("mysql", "sqlite"):
            end, kind = _quoted_end(sql, i, "`", False), "ident"
        elif c == "[" and dialect == "sqlite":
            close = sql.find("]", i + 1)
            end, kind = (n if close < 0 else close + 1), "ident"
        elif (
            c == "$"
            and dialect in ("postgres", "duckdb")
            and not (i > 0 and (sql[i - 1].isalnum() or sql[i - 1] == "_"))
        ):
            m = _DOLLAR_TAG.match(sql, i)
            if m:
                tag = m.group(0)
                close = sql.find(tag, m.end())
                end, kind = (n if close < 0 else close + len(tag)), "dollar"
        if kind is None or end is None:
            i += 1
            continue
        yield from flush(i)
        yield kind, sql[i:end]
        i = end
        code_start = end
    yield from flush(n)


def _is_escape_string(sql: str, i: int) -> bool:
    """PostgreSQL ``E'...'`` strings honour backslash escapes."""
    if i == 0 or sql[i - 1] not in "eE":
        return False
    return i == 1 or not (sql[i - 2].isalnum() or sql[i - 2] == "_")


def _quoted_end(sql: str, i: int, quote: str, backslash: bool) -> int:
    j = i + 1
    n = len(sql)
    while j < n:
        ch = sql[j]
        if backslash and ch == "\\":
            j += 2
            continue
        if ch == quote:
            if j + 1 < n and sql[j + 1] == quote:  # doubled quote escapes itself
                j += 2
                continue
            return j + 1
        j += 1
    return n


def _block_comment_end(sql: str, i: int, nested: bool) -> int:
    depth = 0
    j = i
    n = len(sql)
    while j < n:
        if sql.startswith("/*", j):
            depth = depth + 1 if nested or depth == 0 else depth
            j += 2
        elif sql.startswith("*/", j):
            depth -= 1
            j += 2
            if depth <= 0:
                return j
        else:
            j += 1
    return n


def split_statements(sql: str, dialect: Dialect) -> list[str]:
    """The statements of ``sql``, without their terminating ``;`` and without empty ones."""
    pieces: list[str] = []
    current: list[str] = []
    for kind, text in segments(sql, dialect):
        if kind != "code" or ";" not in text:
            current.append(text)
            continue
        parts = text.split(";")
        for part in parts[:-1]:
            current.append(part + ";")
            pieces.append("".join(current))
            current = []
        current.append(parts[-1])
    if current:
        pieces.append("".join(current))
    if dialect == "sqlite":
        pieces = _merge_sqlite_blocks(pieces)
    out = []
    for piece in pieces:
        stmt = piece.strip()
        if stmt.endswith(";"):
            stmt = stmt[:-1].rstrip()
        if stmt and _has_code(stmt, dialect):
            out.append(stmt)
    return out


def _merge_sqlite_blocks(pieces: list[str]) -> list[str]:
    """Re-join pieces cut inside a trigger body, as SQLite's own tokenizer decides."""
    merged: list[str] = []
    acc = ""
    for piece in pieces:
        acc += piece
        if not acc.rstrip().endswith(";") or sqlite3.complete_statement(acc):
            merged.append(acc)
            acc = ""
    if acc:
        merged.append(acc)
    return merged


def _has_code(stmt: str, dialect: Dialect) -> bool:
    return any(kind != "comment" and text.strip() for kind, text in segments(stmt, dialect))


def code_only(stmt: str, dialect: Dialect) -> str:
    """The statement with comments removed and literals blanked (for keyword checks)."""
    parts = []
    for kind, text in segments(stmt, dialect):
        if kind == "code":
            parts.append(text)
        elif kind == "comment":
            parts.append(" ")
        else:
            parts.append(" '' ")
    return "".join(parts)


def leading_words(stmt: str, dialect: Dialect, count: int = 4) -> list[str]:
    return [w.upper() for w in re.findall(r"[A-Za-z_]+", code_only(stmt, dialect))[:count]]


def has_keyword(stmt: str, dialect: Dialect, keyword: str) -> bool:
    return re.search(rf"\b{keyword}\b", code_only(stmt, dialect), re.IGNORECASE) is not None


ParamStyle = Literal["qmark", "pyformat"]


def bind_named(
    stmt: str, params: Mapping[str, Any], dialect: Dialect, style: ParamStyle
) -> tuple[str, list[Any] | dict[str, Any]]:
    """Replace Kestra's ``:name`` placeholders by the driver's, outside literals and comments.

    Only names present in ``params`` are replaced (``::type`` casts and other colons are left
    alone). ``qmark`` gives ``?`` with a positional list; ``pyformat`` gives ``%(name)s`` with a
    mapping, and doubles every other ``%`` as the driver requires.
    """
    positional: list[Any] = []
    used: dict[str, Any] = {}
    out: list[str] = []

    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in params:
            return m.group(0)
        if style == "qmark":
            positional.append(params[name])
            return "?"
        used[name] = params[name]
        return f"%({name})s"

    for kind, text in segments(stmt, dialect):
        if style == "pyformat":
            text = text.replace("%", "%%")
        if kind == "code":
            text = _PARAM.sub(repl, text)
        out.append(text)
    return "".join(out), (positional if style == "qmark" else used)


# Statements PostgreSQL and SQLite refuse inside a transaction block.
_NO_TRANSACTION: dict[str, tuple[tuple[str, ...], ...]] = {
    "postgres": (
        ("VACUUM",),
        ("CREATE", "DATABASE"),
        ("DROP", "DATABASE"),
        ("ALTER", "SYSTEM"),
        ("CREATE", "TABLESPACE"),
        ("DROP", "TABLESPACE"),
        ("CREATE", "INDEX", "CONCURRENTLY"),
        ("CREATE", "UNIQUE", "INDEX", "CONCURRENTLY"),
        ("DROP", "INDEX", "CONCURRENTLY"),
        ("REINDEX",),
    ),
    "sqlite": (("VACUUM",),),
}

_TRANSACTION_CONTROL = {"BEGIN", "COMMIT", "ROLLBACK", "END", "ABORT"}


def needs_autocommit(stmt: str, dialect: Dialect) -> bool:
    """True for statements the database refuses to run inside a transaction block."""
    words = leading_words(stmt, dialect)
    for prefix in _NO_TRANSACTION.get(dialect, ()):
        if tuple(words[: len(prefix)]) == prefix:
            return prefix != ("REINDEX",) or "CONCURRENTLY" in words
    return False


def is_transaction_control(stmt: str, dialect: Dialect) -> bool:
    """True for statements that open or end a transaction (savepoints are fine inside one)."""
    words = leading_words(stmt, dialect, 3)
    if not words:
        return False
    if words[0] == "ROLLBACK" and "TO" in words[1:]:
        return False  # ROLLBACK TO SAVEPOINT stays inside the transaction
    if words[0] == "START":
        return words[1:2] == ["TRANSACTION"]
    return words[0] in _TRANSACTION_CONTROL
