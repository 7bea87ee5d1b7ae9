"""The plugin system: hooks documented, entry-point discovery, selection, broken plugins, type clashes."""

from __future__ import annotations

import inspect
import sys
import textwrap
from pathlib import Path

import pytest
from roost import hookimpl, hookspecs
from roost.plugins import PluginError, Plugins


def test_every_hook_is_documented():
    hooks = [(n, f) for n, f in vars(hookspecs).items() if callable(f) and hasattr(f, "roost_spec")]
    assert len(hooks) >= 11
    for name, fn in hooks:
        doc = inspect.getdoc(fn)
        assert doc and len(doc) > 20, f"hook {name} needs a docstring"


def test_core_is_a_plugin_like_any_other():
    plugins = Plugins(load_entry_points=False)
    assert "core" in plugins.info
    assert "io.kestra.plugin.core.log.Log" in plugins.types
    assert plugins.type_owner("io.kestra.plugin.core.flow.ForEach") == "core"
    assert "io.kestra.plugin.core.runner.Process" in plugins.task_runners


def _fake_distribution(tmp_path: Path, name: str, module_source: str, module: str) -> Path:
    """A distribution on sys.path (dist-info + module), found by importlib.metadata like an installed one."""
    site = tmp_path / "site"
    (site / f"{name.replace('-', '_')}-1.0.dist-info").mkdir(parents=True)
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[roost]\n{name.removeprefix('roost-plugin-')} = {module}\n")
    (site / f"{module}.py").write_text(textwrap.dedent(module_source))
    return site


GOOD = """
    from roost import Task, hookimpl

    class Ping(Task, type="io.test.Ping"):
        '''Answer pong.'''
        def run(self, ctx):
            return {"answer": "pong"}

    @hookimpl
    def register_task_types(register):
        register(Ping)
"""


@pytest.fixture
def on_path(monkeypatch):
    def add(site: Path) -> None:
        monkeypatch.syspath_prepend(str(site))

    yield add
    for mod in ("fake_good", "fake_broken", "fake_clash"):
        sys.modules.pop(mod, None)


def test_entry_point_discovery_and_selection(tmp_path, on_path, monkeypatch):
    on_path(_fake_distribution(tmp_path, "roost-plugin-good", GOOD, "fake_good"))
    monkeypatch.delenv("ROOST_LOAD_PLUGINS", raising=False)
    plugins = Plugins()
    assert plugins.info["good"].version == "1.0"
    assert plugins.info["good"].distribution == "roost-plugin-good"
    assert "io.test.Ping" in plugins.types
    assert plugins.info["good"].types == ["io.test.Ping"]
    assert "register_task_types" in plugins.info["good"].hooks

    monkeypatch.setenv("ROOST_DISABLE_PLUGINS", "good")
    assert "good" not in Plugins().info
    monkeypatch.delenv("ROOST_DISABLE_PLUGINS")
    monkeypatch.setenv("ROOST_LOAD_PLUGINS", "nothing-else")
    assert "good" not in Plugins().info


def test_broken_plugin_is_reported_and_skipped(tmp_path, on_path, monkeypatch, capsys):
    on_path(
        _fake_distribution(
            tmp_path, "roost-plugin-broken", "raise ImportError('no such SDK: vendor_sdk')\n", "fake_broken"
        )
    )
    on_path(_fake_distribution(tmp_path / "g", "roost-plugin-good", GOOD, "fake_good"))
    monkeypatch.delenv("ROOST_LOAD_PLUGINS", raising=False)
    plugins = Plugins()
    assert [b.name for b in plugins.broken] == ["broken"]
    assert "no such SDK: vendor_sdk" in plugins.broken[0].error
    assert "io.test.Ping" in plugins.types  # the others still load
    assert "plugin 'broken' skipped" in capsys.readouterr().err


def test_plugin_whose_types_fail_to_import_is_skipped():
    class Bad:
        @hookimpl
        def register_task_types(self, register):
            raise ModuleNotFoundError("No module named 'heavy_sdk'")

    plugins = Plugins(load_entry_points=False)
    plugins.register_module(Bad(), name="bad")
    assert "io.kestra.plugin.core.log.Log" in plugins.types
    assert plugins.broken[0].name == "bad" and "heavy_sdk" in plugins.broken[0].error


def test_types_load_one_plugin_at_a_time_through_pluggy():
    # Every hook call goes through the plugin manager (no getattr on the plugin): pluggy's monitoring sees
    # each plugin's type hooks, one plugin per call, and only when one of its types is needed.
    from roost import Task

    class Shout(Task, type="io.test.pluggy.Shout"):
        """A task of a plugin loaded on demand."""

    class Mine:
        @hookimpl
        def register_task_types(self, register):
            register(Shout)

    plugins = Plugins(load_entry_points=False)
    plugins.register_module(Mine(), name="mine")
    calls: list[tuple[str, list[str]]] = []
    plugins.pm.add_hookcall_monitoring(
        lambda hook, impls, kwargs: calls.append((hook, [i.plugin_name for i in impls])), lambda *a: None
    )
    assert plugins.resolve("io.kestra.plugin.core.log.Log") is not None
    assert calls and {names for _hook, names_list in calls for names in names_list} == {"core"}
    calls.clear()
    assert plugins.resolve("io.test.pluggy.Shout") is Shout  # not in the catalogue: every plugin is asked
    assert ("register_task_types", ["mine"]) in calls
    assert all(len(names) <= 1 for _hook, names in calls)


def test_two_plugins_claiming_one_type_is_an_error_naming_both():
    from roost import Task

    class Clash(Task, type="io.kestra.plugin.core.log.Log"):
        """Claims the core Log type."""

    class Clasher:
        @hookimpl
        def register_task_types(self, register):
            register(Clash)

    plugins = Plugins(load_entry_points=False)
    plugins.register_module(Clasher(), name="clasher")
    with pytest.raises(PluginError) as err:
        plugins.load_types()
    assert "'core'" in str(err.value) and "'clasher'" in str(err.value)


def test_expression_functions_from_plugins():
    from roost.expr import ExpressionEngine

    class Funcs:
        @hookimpl
        def register_expression_functions(self, register):
            register("double", lambda ctx, x: x * 2)

    plugins = Plugins(load_entry_points=False)
    plugins.register_module(Funcs(), name="funcs")
    functions = plugins.named("register_expression_functions")
    engine = ExpressionEngine(functions=functions)
    assert engine.render("{{ double(21) }}", {}) == 42


def test_builtin_catalogue_matches_the_classes():
    """Every built-in class is in the lazy catalogue under its own id and aliases (LazyType.load checks them)."""
    from roost.builtin import (
        assets,
        execution,
        flow,
        http,
        kv,
        log,
        log_shipper,
        scripts,
        state,
        storage,
        triggers,
        vcs,
    )

    declared = {*log.TASKS, *flow.TASKS, *http.TASKS, *kv.TASKS, *scripts.TASKS, *vcs.TASKS, *assets.TASKS,
                *execution.TASKS, *state.TASKS, *storage.TASKS, *assets.TRIGGERS, *triggers.TRIGGERS,
                *http.TRIGGERS, *log_shipper.TASKS, *log_shipper.LOG_EXPORTERS}  # fmt: skip
    plugins = Plugins(load_entry_points=False)
    loaded = {cls for tid, cls in plugins.types.items() if plugins.type_owner(tid) == "core"}
    assert loaded == declared
    from roost.scripts import Docker, Process

    assert {plugins.resolve_runner(t.type_id) for t in (Process, Docker)} == {Process, Docker}


def test_resolving_a_type_imports_only_its_module():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from roost.plugins import Plugins\n"
        "p = Plugins(load_entry_points=False)\n"
        "assert p.resolve('io.kestra.plugin.core.log.Log') is not None\n"
        "assert 'roost.scripts' not in sys.modules\n"
        "assert p.resolve_runner('io.kestra.plugin.core.runner.Process').__module__ == 'roost.scripts'\n"
        "print(sorted(m for m in sys.modules if m.startswith('roost.builtin.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['roost.builtin.catalogue', 'roost.builtin.log', 'roost.builtin.plugin']"


def test_a_plugin_writes_a_flowable_task_with_the_public_contract_only(tmp_path):
    # Everything below comes from ``roost``: the flowable contract (FlowView, Child, state constants, worst,
    # effective) is public, so a third-party plugin can do what builtin/flow.py does.
    import roost
    from roost import (
        FAILED,
        RUNNING,
        SUCCESS,
        Child,
        FlowableTask,
        FlowView,
        Task,
        effective,
        hookimpl,
        worst,
    )
    from roost.testing import registered

    class Twice(FlowableTask, type="io.test.Twice"):
        """Runs its task twice, one after the other, each run logging a line; fails if either failed."""

        tasks: list[Task]

        def step(self, view: FlowView) -> tuple[str, list[Child]]:
            runs = view.runs()
            if any(r.state.current not in roost.TERMINAL for r in runs):
                return RUNNING, []
            if len(runs) < 2:
                view.log("INFO", f"round {len(runs) + 1}")
                return RUNNING, [Child(self.tasks[0], "tasks", len(runs), str(len(runs)), str(len(runs)))]
            view.outputs["rounds"] = len(runs)
            return worst([effective(r, view.task(r)) for r in runs]), []

    class Plugin:
        @hookimpl
        def register_task_types(self, register):
            register(Twice)

    source = """
id: twice
namespace: company.team
tasks:
  - id: twice
    type: io.test.Twice
    tasks:
      - id: hello
        type: io.kestra.plugin.core.log.Log
        message: "{{ taskrun.value }}"
"""
    with registered(Plugin(), "twice"):
        ex = roost.run(source, home=tmp_path)
        failing = roost.run(source.replace("core.log.Log\n        message", "core.execution.Fail\n        errorMessage"),
                            home=tmp_path)  # fmt: skip
    assert ex.state.current == SUCCESS
    assert [(tr.task_id, tr.value) for tr in ex.task_runs] == [
        ("twice", None),
        ("hello", "0"),
        ("hello", "1"),
    ]
    assert ex.task_runs[0].outputs == {"rounds": 2}
    assert failing.state.current == FAILED
