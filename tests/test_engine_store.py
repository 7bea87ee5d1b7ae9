"""Ignore lists, namespace files with revisions, KV expiry, the Python API."""

from __future__ import annotations

import time

import pytest
import roost
from roost.engine.engine import Engine
from roost.store.db import SqlKV, SqlNamespaceFiles, Store
from roost.testing import registered
from support import flow

SLEEPY = flow(
    """
    tasks:
      - id: wait
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT0.3S
      - id: after
        type: io.kestra.plugin.core.log.Log
        message: done
""",
    id="sleepy",
)


def test_ignored_execution_messages_are_dropped(tmp_path):
    engine = Engine(Store.sqlite(tmp_path), tmp_path).start()
    try:
        f = engine.deploy(SLEEPY)
        ignored = engine.create_execution(f)
        engine.ignore_executions.add(ignored.id)  # as the Kill Switch's IGNORE mode does
        other = engine.create_execution(f)
        assert engine.wait(other.id, 20).state.current == "SUCCESS"
        time.sleep(0.5)
        stored = engine.get_execution(ignored.id)
        assert not stored.state.terminal()
    finally:
        engine.stop()


def test_ignored_flow_messages_are_dropped(tmp_path):
    engine = Engine(Store.sqlite(tmp_path), tmp_path, ignore_flows={"company.team|sleepy"}).start()
    try:
        f = engine.deploy(SLEEPY)
        ex = engine.create_execution(f)
        with pytest.raises(TimeoutError):
            engine.wait(ex.id, 1.0)
        assert engine.get_execution(ex.id).task_runs == []
    finally:
        engine.stop()


def test_namespace_files_revisions_and_paths(tmp_path):
    files = SqlNamespaceFiles(Store.sqlite(tmp_path))
    assert files.write("company.team", "scripts/run.sh", b"echo 1") == 1
    assert files.write("company.team", "/scripts//run.sh", b"echo 2") == 2
    assert files.read("company.team", "scripts/run.sh") == b"echo 2"
    assert files.read("company.team", "scripts/run.sh", revision=1) == b"echo 1"
    assert files.revisions("company.team", "scripts/run.sh") == [1, 2]
    assert files.list("company.team") == ["scripts/run.sh"]
    assert files.list("other") == []
    with pytest.raises(ValueError, match="leaves its namespace"):
        files.write("company.team", "../other/secret", b"x")
    assert files.delete("company.team", "scripts") == 1
    assert files.read("company.team", "scripts/run.sh") is None
    assert files.read("company.team", "scripts/run.sh", revision=2) == b"echo 2"  # history stays


def test_kv_ttl_and_tenants(tmp_path):
    store = Store.sqlite(tmp_path)
    main, other = SqlKV(store, "main"), SqlKV(store, "other")
    main.put("ns", "k", {"a": 1})
    main.put("ns", "short", 1, ttl=0.05)
    assert main.get("ns", "k") == {"a": 1}
    assert other.keys("ns") == []
    time.sleep(0.1)
    assert main.keys("ns") == ["k"]


def test_python_api_runs_a_flow(tmp_path):
    ex = roost.run(
        flow("""
        inputs:
          - id: n
            type: INT
        tasks:
          - id: r
            type: io.kestra.plugin.core.debug.Return
            format: "{{ inputs.n * 3 }}"
    """),
        {"n": "4"},
        home=tmp_path,
    )
    assert ex.state.current == "SUCCESS" and ex.outputs_tree["r"]["value"] == "12"


def test_throwaway_plugin_registration(tmp_path):
    from roost import Task, hookimpl

    class Shout(Task, type="io.test.Shout"):
        """Upper-cases a word."""

        word: str
        """The word."""

        def run(self, ctx):
            return {"loud": self.word.upper()}

    class Plugin:
        @hookimpl
        def register_task_types(self, register):
            register(Shout)

    with registered(Plugin(), "shout"):
        ex = roost.run(flow("tasks:\n  - id: s\n    type: io.test.Shout\n    word: hi\n"), home=tmp_path)
    assert ex.outputs_tree["s"] == {"loud": "HI"}


def test_namespace_folders_live_in_a_migrated_table_and_older_databases_keep_theirs(tmp_path):
    # Before migration 6 the server created ``namespace_directories`` itself at start-up: such a database
    # migrates without losing its folders, and a new one gets the table from the migration.
    import sqlalchemy as sa
    from roost.store.db import MIGRATIONS, schema_version

    old = sa.create_engine(f"sqlite:///{tmp_path / 'roost.db'}")
    with old.begin() as conn:
        schema_version.create(conn)
        for version, fn in MIGRATIONS:
            if version <= 5:
                fn(conn)
                conn.execute(schema_version.insert().values(version=version, applied=time.time()))
        legacy = sa.Table("namespace_directories", sa.MetaData(), sa.Column("tenant", sa.String(64), primary_key=True),
                          sa.Column("namespace", sa.String(150), primary_key=True),
                          sa.Column("path", sa.String(1024), primary_key=True),
                          sa.Column("created", sa.Float, nullable=False))  # fmt: skip
        legacy.create(conn)
        conn.execute(
            legacy.insert().values(tenant="main", namespace="company.team", path="docs", created=1.0)
        )
    old.dispose()

    store = Store.sqlite(tmp_path)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() == max(
            v for v, _ in MIGRATIONS
        )
    dirs = store.namespace_dirs
    assert dirs.paths("main", "company.team") == ["docs"]
    dirs.add("main", "company.team", "docs/a")
    dirs.add("main", "company.team", "docs/a")  # twice: still one folder
    dirs.add("main", "company.data", "raw")
    dirs.rename("main", "company.team", [("docs", "manuals"), ("docs/a", "manuals/a")])
    assert sorted(dirs.paths("main", "company.team")) == ["manuals", "manuals/a"]
    assert dirs.namespaces("main") == {"company.team", "company.data"} and dirs.namespaces("other") == set()
    assert dirs.delete_tree("main", "company.team", "manuals") == 2
    assert dirs.delete_tree("main", "company.team", "man") == 0  # a prefix is not a folder
    assert dirs.paths("main", "company.team") == []

    fresh = Store.sqlite(tmp_path / "fresh")
    fresh.namespace_dirs.add("main", "n", "d")
    assert fresh.namespace_dirs.paths("main", "n") == ["d"]
