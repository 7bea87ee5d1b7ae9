"""Tables a statement reads and writes, from a real SQL parser (sqlglot).

Targets (outputs): the table or view of CREATE TABLE / CREATE VIEW, and the table that
INSERT, UPDATE, MERGE or DELETE writes. Sources (inputs): every other table the statement
names in FROM, JOIN, USING or a subquery, except CTE names, the targets themselves, table
functions (``read_csv(...)``), file paths (DuckDB's ``FROM 'data.csv'``) and foreign-key
references.
"""

from __future__ import annotations

from dataclasses import dataclass

from roost_jdbc.sqltext import Dialect

_SYSTEM_SCHEMAS = {"information_schema", "pg_catalog", "mysql", "performance_schema", "sys"}
_SYSTEM_TABLES = {"sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_sequence"}
_FILE_SUFFIXES = (
    ".csv",
    ".tsv",
    ".parquet",
    ".json",
    ".jsonl",
    ".ndjson",
    ".gz",
    ".zst",
    ".txt",
    ".xlsx",
    ".arrow",
)


class LineageError(Exception):
    """The statement could not be parsed; the message says why."""


@dataclass(frozen=True)
class TableName:
    """A table as written in the statement: up to three parts, identifiers normalized."""

    catalog: str | None
    db: str | None
    name: str


@dataclass
class StatementLineage:
    inputs: list[TableName]
    outputs: list[TableName]
    kind: str
    """The statement's kind as sqlglot sees it (Create, Insert, Select...)."""


def statement_lineage(sql: str, dialect: Dialect) -> StatementLineage:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except SqlglotError as exc:
        raise LineageError(_first_line(str(exc))) from None
    except Exception as exc:  # the parser is a dependency: never let it fail the task
        raise LineageError(f"{type(exc).__name__}: {_first_line(str(exc))}") from None
    if tree is None:
        return StatementLineage([], [], "Empty")
    if isinstance(tree, exp.Command):
        raise LineageError(f"unsupported syntax, read as an opaque '{tree.name}' command")

    targets: list[exp.Table] = []
    if isinstance(tree, exp.Create):
        kind = str(tree.args.get("kind") or "").upper()
        if kind in ("TABLE", "VIEW"):
            targets.append(_table_of(tree.this))
    elif isinstance(tree, exp.Insert | exp.Update | exp.Delete | exp.Merge):
        target = _table_of(tree.this)
        if target is not None:
            targets.append(target)
    targets = [t for t in targets if isinstance(t, exp.Table)]

    cte_names = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE) if cte.alias_or_name}
    target_ids = {id(t) for t in targets}
    outputs = _unique(_name(t, dialect) for t in targets)
    output_set = set(outputs)

    inputs: list[TableName] = []
    for table in tree.find_all(exp.Table):
        if id(table) in target_ids or not isinstance(table.this, exp.Identifier):
            continue  # the target itself, or a table function such as read_csv(...)
        if table.find_ancestor(exp.Reference, exp.ForeignKey) is not None:
            continue
        name = _name(table, dialect)
        if not name.db and not name.catalog and name.name.lower() in cte_names:
            continue
        if name in output_set or _is_system(name) or (dialect == "duckdb" and _looks_like_file(table)):
            continue
        inputs.append(name)
    return StatementLineage(_unique(inputs), outputs, type(tree).__name__)


def _table_of(node: object) -> object:
    from sqlglot import exp

    if isinstance(node, exp.Schema):
        node = node.this
    return node if isinstance(node, exp.Table) else None


def _name(table: object, dialect: Dialect) -> TableName:
    from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

    norm = normalize_identifiers(table.copy(), dialect=dialect)  # type: ignore[attr-defined]
    return TableName(norm.catalog or None, norm.db or None, norm.name)


def _is_system(name: TableName) -> bool:
    return (name.db or "").lower() in _SYSTEM_SCHEMAS or name.name.lower() in _SYSTEM_TABLES


def _looks_like_file(table: object) -> bool:
    ident = table.this  # type: ignore[attr-defined]
    text = ident.name
    return bool(ident.quoted) and (
        "/" in text or "\\" in text or "*" in text or "://" in text or text.lower().endswith(_FILE_SUFFIXES)
    )


def _unique(items: object) -> list[TableName]:
    seen: set[TableName] = set()
    out: list[TableName] = []
    for item in items:  # type: ignore[attr-defined]
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "parse error"
    return line[:300]
