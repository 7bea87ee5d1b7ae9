"""An engine process killed with SIGKILL mid-execution: the next start completes the execution,
and no task run whose result was recorded runs again (the one in flight runs again: at-least-once)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

FLOW = """
id: crashy
namespace: company.team
tasks:
  - id: t1
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo t1 >> {log}"]
  - id: t2
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo t2 >> {log}
      - "if [ ! -f {marker} ]; then touch {marker}; sleep 60; fi"
  - id: t3
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo t3 >> {log}"]
"""

START = textwrap.dedent("""
    import sys, time
    from roost.engine.local import open_engine
    engine = open_engine(sys.argv[1])
    flow = engine.deploy(open(sys.argv[2]).read())
    engine.start()
    ex = engine.create_execution(flow)
    print(ex.id, flush=True)
    time.sleep(120)
""")

RESUME = textwrap.dedent("""
    import json, sys
    from roost.engine.local import open_engine
    engine = open_engine(sys.argv[1])
    engine.start()
    ex = engine.wait(sys.argv[2], timeout=60)
    print(json.dumps({"state": ex.state.current, "runs": {t.task_id: len(t.attempts) for t in ex.task_runs}}))
    engine.stop()
""")


def test_sigkill_mid_flow_then_resume(tmp_path):
    log, marker, home = tmp_path / "log", tmp_path / "marker", tmp_path / "home"
    flow_file = tmp_path / "flow.yaml"
    flow_file.write_text(FLOW.format(log=log, marker=marker))
    env = {**os.environ, "ROOST_LOAD_PLUGINS": ""}
    proc = subprocess.Popen(
        [sys.executable, "-c", START, str(home), str(flow_file)], stdout=subprocess.PIPE, text=True, env=env
    )
    execution_id = proc.stdout.readline().strip()
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, "t2 never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the orphaned `sleep 60` of the killed engine would hold nothing we need; the engine is gone
    out = subprocess.run([sys.executable, "-c", RESUME, str(home), execution_id], capture_output=True, text=True,
                         env=env, timeout=90)  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["state"] == "SUCCESS"
    lines = log.read_text().split()
    assert lines.count("t1") == 1  # finished and recorded before the crash: never again
    assert lines.count("t2") == 2  # in flight at the crash: run again
    assert lines.count("t3") == 1
