from __future__ import annotations

import pytest
from roost_jdbc.lineage import LineageError, TableName, statement_lineage


def names(items: list[TableName]) -> list[str]:
    return [".".join(p for p in (t.catalog, t.db, t.name) if p) for t in items]


@pytest.mark.parametrize(
    ("dialect", "sql", "inputs", "outputs"),
    [
        ("sqlite", "CREATE TABLE IF NOT EXISTS trips (VendorID INTEGER)", [], ["trips"]),
        (
            "postgres",
            "CREATE TABLE a (id int REFERENCES b(id), FOREIGN KEY (id) REFERENCES c(id))",
            [],
            ["a"],
        ),
        (
            "postgres",
            "CREATE TABLE Mart AS SELECT * FROM raw.orders o JOIN raw.customers c ON c.id = o.cid",
            ["raw.orders", "raw.customers"],
            ["mart"],
        ),
        ("postgres", 'CREATE VIEW v AS SELECT * FROM t1 LEFT JOIN "T2" USING (id)', ["t1", "T2"], ["v"]),
        (
            "postgres",
            "INSERT INTO tgt (a) SELECT a FROM src JOIN other ON other.id = src.id",
            ["src", "other"],
            ["tgt"],
        ),
        ("postgres", "WITH c AS (SELECT * FROM s.src) INSERT INTO tgt SELECT * FROM c", ["s.src"], ["tgt"]),
        ("postgres", "INSERT INTO t SELECT * FROM t WHERE false", [], ["t"]),
        (
            "postgres",
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v "
            "WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, s.v)",
            ["s"],
            ["t"],
        ),
        ("postgres", "UPDATE t SET v = s.v FROM s WHERE t.id = s.id", ["s"], ["t"]),
        ("postgres", "DELETE FROM t WHERE id IN (SELECT id FROM gone)", ["gone"], ["t"]),
        ("postgres", "SELECT * FROM a JOIN b ON a.id = b.id", ["a", "b"], []),
        ("postgres", "SELECT * FROM information_schema.tables", [], []),
        ("mysql", "UPDATE db1.t JOIN db2.s ON t.id = s.id SET t.v = s.v", ["db2.s"], ["db1.t"]),
        (
            "duckdb",
            "CREATE TABLE n AS SELECT * FROM read_csv_auto('in.csv') JOIN 'x/y.parquet' USING (id)",
            [],
            ["n"],
        ),
        (
            "postgres",
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r",
            [],
            [],
        ),
    ],
)
def test_statement_lineage(dialect, sql, inputs, outputs):
    lineage = statement_lineage(sql, dialect)
    assert names(lineage.inputs) == inputs
    assert names(lineage.outputs) == outputs


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        ("postgres", "INSERT INTO t OVERRIDING SYSTEM VALUE VALUES (1)"),  # sqlglot parse error
        ("sqlite", "REPLACE INTO t VALUES (1)"),  # sqlglot falls back to an opaque command
        ("postgres", "select from where"),
    ],
)
def test_unparsable_statements_raise(dialect, sql):
    with pytest.raises(LineageError):
        statement_lineage(sql, dialect)
