"""Retry, timeout, pause/resume, restart, kill, subflows, concurrency, inputs."""

from __future__ import annotations

import os
import time

import pytest
from roost.engine.inputs import InputsInvalid
from support import flow


def wait_state(engine, execution_id, state, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ex = engine.get_execution(execution_id)
        if ex is not None and ex.state.current == state:
            return ex
        time.sleep(0.02)
    raise AssertionError(
        f"execution never reached {state}: {engine.get_execution(execution_id).state.current}"
    )


def test_retry_constant_counts_attempts(run_flow, tmp_path):
    marker = tmp_path / "count"
    ex = run_flow(
        flow(f"""
        tasks:
          - id: flaky
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - echo x >> {marker}
              - test $(wc -l < {marker}) -ge 3
            retry:
              type: constant
              interval: PT0.05S
              maxAttempts: 5
    """)
    )
    assert ex.state.current == "SUCCESS"
    tr = ex.task_runs[0]
    assert len(tr.attempts) == 3
    assert [a["state"]["current"] for a in tr.attempts] == ["FAILED", "FAILED", "SUCCESS"]


def test_retry_exhausted_and_warning_on_retry(run_flow):
    ex = run_flow(
        flow("""
        tasks:
          - id: always
            type: io.kestra.plugin.core.execution.Fail
            retry:
              type: exponential
              interval: PT0.01S
              maxInterval: PT0.05S
              maxAttempts: 3
    """)
    )
    assert ex.state.current == "FAILED"
    assert len(ex.task_runs[0].attempts) == 3


def test_warning_on_retry(run_flow, tmp_path):
    marker = tmp_path / "m"
    ex = run_flow(
        flow(f"""
        tasks:
          - id: once
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - "if [ -f {marker} ]; then exit 0; else touch {marker}; exit 1; fi"
            retry:
              type: constant
              interval: PT0.01S
              maxAttempts: 2
              warningOnRetry: true
    """)
    )
    assert ex.state.current == "WARNING"


def test_timeout_stops_the_task(run_flow):
    started = time.monotonic()
    ex = run_flow(
        flow("""
        tasks:
          - id: slow
            type: io.kestra.plugin.scripts.shell.Commands
            timeout: PT0.5S
            commands:
              - sleep 30
    """)
    )
    assert ex.state.current == "FAILED"
    assert time.monotonic() - started < 10
    assert "Timeout" in ex.task_runs[0].extra.get("error", "")


@pytest.mark.parametrize(("grace", "error"), [(0.0, "Timeout after 0.3 s"), (5.0, "gave up after 0.3 s")])
def test_timeout_grace_lets_a_task_enforce_its_own_timeout(tmp_path, grace, error):
    import roost
    from roost import Task, TaskError, hookimpl
    from roost.testing import registered

    class OwnDeadline(Task, type="io.test.OwnDeadline"):
        """Waits for something remote until its own timeout, then fails saying why."""

        timeout_grace = grace

        def run(self, ctx):
            ctx.sleep(self.timeout.total_seconds() + 0.3)  # its own check lags a little
            raise TaskError(
                f"gave up after {self.timeout.total_seconds():g} s: the remote job is still running"
            )

    class Plugin:
        @hookimpl
        def register_task_types(self, register):
            register(OwnDeadline)

    with registered(Plugin(), "own-deadline"):
        ex = roost.run(
            flow("tasks:\n  - id: t\n    type: io.test.OwnDeadline\n    timeout: PT0.3S\n"), home=tmp_path
        )
    assert ex.state.current == "FAILED"
    assert ex.task_runs[0].extra.get("error", "").startswith(error)


def test_pause_then_resume_with_inputs(roost_engine):
    f = roost_engine.deploy(
        flow("""
        tasks:
          - id: approve
            type: io.kestra.plugin.core.flow.Pause
            onResume:
              - id: reason
                type: STRING
          - id: after
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.approve.onResume.reason }}"
    """)
    )
    ex = roost_engine.create_execution(f)
    wait_state(roost_engine, ex.id, "PAUSED")
    roost_engine.resume(ex.id, {"reason": "looks good"})
    done = roost_engine.wait(ex.id, 20)
    assert done.state.current == "SUCCESS"
    assert done.outputs_tree["after"]["value"] == "looks good"


def test_pause_duration_behaviors(run_flow):
    ex = run_flow(
        flow("""
        tasks:
          - id: wait
            type: io.kestra.plugin.core.flow.Pause
            pauseDuration: PT0.2S
            behavior: WARN
    """)
    )
    assert ex.state.current == "WARNING"


def test_restart_failed_execution_same_id(roost_engine, tmp_path):
    marker = tmp_path / "fixed"
    f = roost_engine.deploy(
        flow(f"""
        tasks:
          - id: first
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ["echo ran >> {tmp_path}/first.log"]
          - id: second
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ["test -f {marker}"]
    """)
    )
    ex = roost_engine.run(f, timeout=20)
    assert ex.state.current == "FAILED"
    marker.touch()
    roost_engine.restart(ex.id)
    done = roost_engine.wait(ex.id, 20)
    assert done.id == ex.id and done.state.current == "SUCCESS"
    assert "RESTARTED" in [s for s, _ in done.state.histories]
    assert (tmp_path / "first.log").read_text().count("ran") == 1  # finished runs do not run again
    assert done.metadata["attemptNumber"] == 2


def test_kill_running_shell_task_process_is_gone(roost_engine, tmp_path):
    pidfile = tmp_path / "pid"
    f = roost_engine.deploy(
        flow(f"""
        tasks:
          - id: long
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - echo $$ > {pidfile}
              - sleep 60
    """)
    )
    ex = roost_engine.create_execution(f)
    deadline = time.monotonic() + 10
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    pid = int(pidfile.read_text())
    roost_engine.kill(ex.id)
    done = roost_engine.wait(ex.id, 20)
    assert done.state.current == "KILLED"
    assert "KILLING" in [s for s, _ in done.state.histories]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_subflow_outputs_wait_and_failure(roost_engine):
    roost_engine.deploy(
        flow(
            """
        inputs:
          - id: n
            type: INT
        tasks:
          - id: double
            type: io.kestra.plugin.core.debug.Return
            format: "{{ inputs.n * 2 }}"
        outputs:
          - id: result
            type: STRING
            value: "{{ outputs.double.value }}"
    """,
            id="child",
        )
    )
    parent = roost_engine.deploy(
        flow(
            """
        labels:
          owner: me
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: company.team
            flowId: child
            inheritLabels: true
            inputs:
              n: 21
          - id: use
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.call.outputs.result }}"
    """,
            id="parent",
        )
    )
    ex = roost_engine.run(parent, timeout=20)
    assert ex.state.current == "SUCCESS"
    assert ex.outputs_tree["use"]["value"] == "42"
    child_id = ex.outputs_tree["call"]["executionId"]
    child = roost_engine.get_execution(child_id)
    assert child.parent_id == ex.id
    labels = child.label_map()
    assert labels["owner"] == "me" and labels["system.correlationId"] == ex.id

    roost_engine.deploy(
        flow(
            """
        tasks:
          - id: boom
            type: io.kestra.plugin.core.execution.Fail
    """,
            id="failing",
        )
    )
    bad = roost_engine.deploy(
        flow(
            """
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: company.team
            flowId: failing
    """,
            id="caller",
        )
    )
    assert roost_engine.run(bad, timeout=20).state.current == "FAILED"


def test_subflow_kill_cascades(roost_engine):
    roost_engine.deploy(
        flow(
            """
        tasks:
          - id: sleep
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT60S
    """,
            id="sleeper",
        )
    )
    parent = roost_engine.deploy(
        flow(
            """
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: company.team
            flowId: sleeper
    """,
            id="parent_k",
        )
    )
    ex = roost_engine.create_execution(parent)
    deadline = time.monotonic() + 10
    child_id = None
    while child_id is None:
        assert time.monotonic() < deadline
        cur = roost_engine.get_execution(ex.id)
        child_id = next((tr.extra.get("subflow") for tr in cur.task_runs if tr.extra.get("subflow")), None)
        time.sleep(0.02)
    wait_state(roost_engine, child_id, "RUNNING")
    roost_engine.kill(ex.id)
    assert roost_engine.wait(ex.id, 20).state.current == "KILLED"
    assert roost_engine.wait(child_id, 20).state.current == "KILLED"


@pytest.mark.parametrize(
    "behavior,expected", [("CANCEL", "CANCELLED"), ("FAIL", "FAILED"), ("QUEUE", "QUEUED")]
)
def test_concurrency_behaviors(roost_engine, behavior, expected):
    f = roost_engine.deploy(
        flow(
            f"""
        concurrency:
          limit: 1
          behavior: {behavior}
        tasks:
          - id: sleep
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT0.6S
    """,
            id=f"conc_{behavior.lower()}",
        )
    )
    first = roost_engine.create_execution(f)
    wait_state(roost_engine, first.id, "RUNNING")
    second = roost_engine.create_execution(f)
    assert second.state.current == expected
    assert roost_engine.wait(first.id, 20).state.current == "SUCCESS"
    if behavior == "QUEUE":
        assert roost_engine.wait(second.id, 20).state.current == "SUCCESS"


def test_typed_inputs_every_error_reported_nothing_started(roost_engine):
    f = roost_engine.deploy(
        flow("""
        inputs:
          - id: count
            type: INT
            max: 10
          - id: when
            type: DATETIME
          - id: color
            type: ENUM
            values: [red, green]
          - id: mail
            type: EMAIL
          - id: tags
            type: ARRAY
            itemType: INT
          - id: optional
            type: STRING
            required: false
        tasks:
          - id: r
            type: io.kestra.plugin.core.debug.Return
            format: "{{ inputs.count + 1 }}"
    """)
    )
    with pytest.raises(InputsInvalid) as err:
        roost_engine.create_execution(
            f, {"count": "11", "when": "yesterday", "color": "blue", "mail": "x", "tags": '[1,"a"]'}
        )
    assert set(err.value.errors) == {"count", "when", "color", "mail", "tags"}
    assert "greater than the maximum 10" in err.value.errors["count"]
    assert "is not one of red, green" in err.value.errors["color"]
    found, total = roost_engine.store.search_executions("main", flow_id="test")
    assert total == 0
    ex = roost_engine.run(
        f,
        {"count": "3", "when": "2024-01-01T00:00:00Z", "color": "red", "mail": "a@b.io", "tags": "[1,2]"},
        timeout=20,
    )
    assert ex.inputs["count"] == 3 and ex.inputs["tags"] == [1, 2] and ex.inputs["optional"] is None
    assert ex.outputs_tree["r"]["value"] == "4"


def test_working_directory_shares_files_and_collects_outputs(run_flow):
    ex = run_flow(
        flow("""
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            inputFiles:
              data.txt: "hello"
            outputFiles:
              - "*.out"
            tasks:
              - id: write
                type: io.kestra.plugin.scripts.shell.Commands
                commands:
                  - cat data.txt > result.out
                  - echo ' world' >> result.out
              - id: read
                type: io.kestra.plugin.scripts.shell.Commands
                commands:
                  - 'echo "::{\\"outputs\\":{\\"content\\":\\"$(cat result.out | tr -d "\\n")\\"}}::"'
    """)
    )
    assert ex.state.current == "SUCCESS", ex.task_runs
    assert ex.outputs_tree["read"]["vars"]["content"] == "hello world"
    assert ex.outputs_tree["wd"]["outputFiles"]["result.out"].startswith(
        "kestra:///company/team/test/executions/"
    )


def test_kv_set_get_delete_and_kv_function(run_flow):
    ex = run_flow(
        flow("""
        tasks:
          - id: set
            type: io.kestra.plugin.core.kv.Set
            key: counter
            value: 41
            kvType: NUMBER
          - id: get
            type: io.kestra.plugin.core.kv.Get
            key: counter
          - id: expr
            type: io.kestra.plugin.core.debug.Return
            format: "{{ kv('counter') + 1 }}"
          - id: delete
            type: io.kestra.plugin.core.kv.Delete
            key: counter
          - id: missing
            type: io.kestra.plugin.core.kv.Get
            key: counter
    """)
    )
    assert ex.state.current == "SUCCESS"
    assert ex.outputs_tree["get"]["value"] == 41
    assert ex.outputs_tree["expr"]["value"] == "42"
    assert ex.outputs_tree["delete"]["deleted"] is True
    assert ex.outputs_tree["missing"] == {}


def test_python_script_outputs(run_flow):
    ex = run_flow(
        flow("""
        tasks:
          - id: py
            type: io.kestra.plugin.scripts.python.Script
            script: |
              import json, sys
              print("::" + json.dumps({"outputs": {"version": sys.version_info[0]}}) + "::")
    """)
    )
    assert ex.state.current == "SUCCESS"
    assert ex.outputs_tree["py"]["vars"] == {"version": 3}
    assert ex.outputs_tree["py"]["exitCode"] == 0


def test_docker_runner_without_engine_fails_clearly(run_flow, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    ex = run_flow(
        flow("""
        tasks:
          - id: in_docker
            type: io.kestra.plugin.scripts.shell.Commands
            taskRunner:
              type: io.kestra.plugin.scripts.runner.docker.Docker
            containerImage: ubuntu
            commands: ["echo hi"]
    """)
    )
    assert ex.state.current == "FAILED"
    assert "No Docker engine is reachable" in ex.task_runs[0].extra["error"]


def test_git_clone_local_repository(run_flow, tmp_path):
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "hello.txt").write_text("from git")
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "init"], check=True, env=env)
    ex = run_flow(
        flow(f"""
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            tasks:
              - id: clone
                type: io.kestra.plugin.git.Clone
                url: file://{repo}
                branch: main
              - id: read
                type: io.kestra.plugin.scripts.shell.Commands
                commands:
                  - test "$(cat hello.txt)" = "from git"
    """)
    )
    assert ex.state.current == "SUCCESS"


def test_foreach_item_starts_one_subflow_per_batch(roost_engine):
    roost_engine.deploy(
        flow(
            """
        inputs:
          - id: batch
            type: STRING
        tasks:
          - id: count
            type: io.kestra.plugin.core.debug.Return
            format: "{{ read(inputs.batch) | trim | split('\\n') | length }}"
        outputs:
          - id: lines
            type: STRING
            value: "{{ outputs.count.value }}"
    """,
            id="batch_worker",
        )
    )
    parent = roost_engine.deploy(
        flow(
            """
        inputs:
          - id: file
            type: FILE
        tasks:
          - id: each_item
            type: io.kestra.plugin.core.flow.ForEachItem
            items: "{{ inputs.file }}"
            batch:
              rows: 2
            namespace: company.team
            flowId: batch_worker
            inputs:
              batch: "{{ taskrun.items }}"
    """,
            id="splitter",
        )
    )
    ex = roost_engine.run(parent, {"file": b"a\nb\nc\nd\ne\n"}, timeout=30)
    assert ex.state.current == "SUCCESS", [
        (t.task_id, t.state.current, t.extra.get("error")) for t in ex.task_runs
    ]
    assert ex.outputs_tree["each_item"] == {"numberOfBatches": 3, "iterations": {"SUCCESS": 3}}
    children = [
        roost_engine.get_execution(t.outputs["executionId"])
        for t in ex.task_runs
        if t.task_id == "each_item_items"
    ]
    assert sorted(c.outputs["lines"] for c in children) == ["1", "2", "2"]


def test_pause_a_running_execution_then_resume(roost_engine):
    f = roost_engine.deploy(
        flow(
            """
        tasks:
          - id: first
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT0.5S
          - id: second
            type: io.kestra.plugin.core.log.Log
            message: after the pause
    """,
            id="pausable",
        )
    )
    ex = roost_engine.create_execution(f)
    wait_state(roost_engine, ex.id, "RUNNING")
    roost_engine.pause(ex.id)
    wait_state(roost_engine, ex.id, "PAUSED")
    time.sleep(1.0)  # the sleep in flight ends; nothing new starts
    paused = roost_engine.get_execution(ex.id)
    assert paused.state.current == "PAUSED"
    assert [(t.task_id, t.state.current) for t in paused.task_runs] == [("first", "SUCCESS")]
    roost_engine.resume(ex.id)
    done = roost_engine.wait(ex.id, 20)
    assert done.state.current == "SUCCESS"
    assert [t.task_id for t in done.task_runs] == ["first", "second"]
