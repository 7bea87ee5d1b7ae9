from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from roost_jdbc import urls
from roost_jdbc.convert import iso_duration, to_json


def test_sqlite_urls():
    assert urls.parse_sqlite("jdbc:sqlite:myfile.db").path == "myfile.db"
    assert urls.parse_sqlite("jdbc:sqlite:/data/x.db").path == "/data/x.db"
    assert urls.parse_sqlite("jdbc:sqlite:").memory
    assert urls.parse_sqlite("jdbc:sqlite::memory:").memory
    uri = urls.parse_sqlite("jdbc:sqlite:file:x.db?mode=ro")
    assert uri.uri and uri.path == "file:x.db?mode=ro"
    with pytest.raises(urls.UrlError, match="not a SQLite JDBC URL"):
        urls.parse_sqlite("jdbc:postgresql://h/db")


def test_duckdb_urls():
    assert urls.parse_duckdb("jdbc:duckdb:").memory
    t = urls.parse_duckdb("jdbc:duckdb:/tmp/x.duckdb?access_mode=READ_ONLY")
    assert t.path == "/tmp/x.duckdb" and t.options == {"access_mode": "READ_ONLY"}
    md = urls.parse_duckdb("jdbc:duckdb:md:my_db?motherduck_token=abc")
    assert md.uri and md.path == "md:my_db?motherduck_token=abc"


def test_postgres_url_mapping():
    t = urls.parse_postgres(
        "jdbc:postgresql://db.local:6543/shop?user=u1&password=p%40ss&sslmode=require&ApplicationName=roost"
        "&currentSchema=sales&connectTimeout=7&loggerLevel=OFF"
    )
    assert (t.host, t.port, t.database, t.user, t.password) == ("db.local", 6543, "shop", "u1", "p@ss")
    assert t.options == {
        "sslmode": "require",
        "application_name": "roost",
        "options": "-c search_path=sales",
        "connect_timeout": "7",
    }
    assert t.ignored == ["loggerLevel"]
    d = urls.parse_postgres("jdbc:postgresql://127.0.0.1/")
    assert (d.host, d.port, d.database) == ("127.0.0.1", 5432, None)
    multi = urls.parse_postgres("jdbc:postgresql://h1:5432,h2:5433/db?targetServerType=primary")
    assert multi.host == "h1,h2" and multi.options["port"] == "5432,5433"
    assert multi.options["target_session_attrs"] == "read-write"
    libpq = urls.parse_postgres("postgresql://bob:pw@localhost:5555/app")
    assert (libpq.user, libpq.password, libpq.port, libpq.database) == ("bob", "pw", 5555, "app")


def test_mysql_url_mapping():
    t = urls.parse_mysql(
        "jdbc:mysql://127.0.0.1:3307/app?user=me&password=x&connectTimeout=5000&useSSL=false"
    )
    assert (t.host, t.port, t.database, t.user, t.password) == ("127.0.0.1", 3307, "app", "me", "x")
    assert t.options == {"connect_timeout": 5}
    assert urls.parse_mysql("jdbc:mariadb://db/").port == 3306


def test_redact_hides_passwords():
    assert (
        urls.redact("jdbc:postgresql://h/db?user=a&password=hunter2&x=1")
        == "jdbc:postgresql://h/db?user=a&password=***&x=1"
    )
    assert "hunter2" not in urls.redact("postgresql://bob:hunter2@h/db")
    assert "zq9x" not in urls.redact("jdbc:duckdb:md:db?motherduck_token=zq9x")


def test_to_json_values():
    tokyo = ZoneInfo("Asia/Tokyo")
    assert to_json(Decimal("1.10")) == 1.1
    assert to_json(Decimal("12345678901234567890.123456789")) == "12345678901234567890.123456789"
    assert to_json(Decimal("42")) == 42
    assert to_json(datetime(2024, 1, 1, 12, tzinfo=UTC), tokyo) == "2024-01-01T21:00:00+09:00"
    assert to_json(datetime(2024, 1, 1, 12), tokyo) == "2024-01-01T12:00:00"
    assert to_json(date(2024, 2, 29)) == "2024-02-29"
    assert to_json(time(7, 5)) == "07:05:00"
    assert to_json(b"\x00\xff") == "AP8="
    assert to_json(memoryview(b"ab")) == "YWI="
    assert to_json(UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert to_json(float("nan")) == "NaN"
    assert to_json({"a": [Decimal("0.5"), None]}) == {"a": [0.5, None]}
    assert iso_duration(timedelta(hours=1, minutes=30)) == "PT1H30M"
    assert iso_duration(timedelta(days=2, seconds=3)) == "P2DT3S"
    assert iso_duration(timedelta(seconds=-1.5)) == "-PT1.5S"
    assert iso_duration(timedelta(0)) == "PT0S"
