from __future__ import annotations

import pytest
from roost_jdbc.sqltext import bind_named, is_transaction_control, needs_autocommit, split_statements


@pytest.mark.parametrize(
    ("dialect", "sql", "expected"),
    [
        ("postgres", "select 1; select 2;", ["select 1", "select 2"]),
        ("postgres", "select 'a;b'; select \"x;y\" from t", ["select 'a;b'", 'select "x;y" from t']),
        ("postgres", "select 1 -- a ; comment\n; select 2", ["select 1 -- a ; comment", "select 2"]),
        (
            "postgres",
            "select /* ; /* nested ; */ still ; */ 1; select 2",
            ["select /* ; /* nested ; */ still ; */ 1", "select 2"],
        ),
        (
            "postgres",
            "create function f() returns int as $$ select 1; $$ language sql; select f()",
            ["create function f() returns int as $$ select 1; $$ language sql", "select f()"],
        ),
        (
            "postgres",
            "do $body$ begin perform 1; end $body$; select 1",
            ["do $body$ begin perform 1; end $body$", "select 1"],
        ),
        ("postgres", "select E'it\\'s;'; select 2", ["select E'it\\'s;'", "select 2"]),
        ("postgres", "select 'it''s;'; select 2", ["select 'it''s;'", "select 2"]),
        (
            "mysql",
            "select 'it\\'s;'; select `a;b` from t # c;\n; select 2",
            ["select 'it\\'s;'", "select `a;b` from t # c;", "select 2"],
        ),
        (
            "sqlite",
            "create trigger tr after insert on t begin insert into log values (new.id); update c set n = n + 1; end; select 1",
            [
                "create trigger tr after insert on t begin insert into log values (new.id); update c set n = n + 1; end",
                "select 1",
            ],
        ),
        ("sqlite", "select [a;b] from t; select 2", ["select [a;b] from t", "select 2"]),
        ("duckdb", "  ;; -- only a comment\n ; select 1 ;  ", ["select 1"]),
        ("postgres", "", []),
    ],
)
def test_split_statements(dialect, sql, expected):
    assert split_statements(sql, dialect) == expected


def test_bind_qmark_skips_literals_comments_and_casts():
    sql, args = bind_named(
        "select :a, ':a', \":a\", x::int, :b -- :a\n from t where c = :a and d = :missing",
        {"a": 1, "b": "two"},
        "postgres",
        "qmark",
    )
    assert sql == "select ?, ':a', \":a\", x::int, ? -- :a\n from t where c = ? and d = :missing"
    assert args == [1, "two", 1]


def test_bind_pyformat_escapes_percent():
    sql, args = bind_named(
        "select * from t where a like '50%' and b = :b and c % 2 = 0", {"b": 5}, "mysql", "pyformat"
    )
    assert sql == "select * from t where a like '50%%' and b = %(b)s and c %% 2 = 0"
    assert args == {"b": 5}


def test_needs_autocommit_and_transaction_control():
    assert needs_autocommit("VACUUM ANALYZE t", "postgres")
    assert needs_autocommit("/* x */ create index concurrently i on t(a)", "postgres")
    assert not needs_autocommit("create index i on t(a)", "postgres")
    assert not needs_autocommit("reindex table t", "postgres")
    assert needs_autocommit("vacuum", "sqlite")
    assert is_transaction_control("BEGIN", "postgres")
    assert is_transaction_control("commit", "sqlite")
    assert is_transaction_control("start transaction", "mysql")
    assert not is_transaction_control("select 'begin'", "postgres")
    assert not is_transaction_control("start_date_check()", "postgres")
    assert not is_transaction_control("SAVEPOINT a", "postgres")
    assert not is_transaction_control("ROLLBACK TO SAVEPOINT a", "postgres")
