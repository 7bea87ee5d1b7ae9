"""CreateProgram, CallJob and SubmitJob over real SSH (openssh-server) to a real compiler (GnuCOBOL)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import SshHost
from roost import TaskError
from roost.engine.context import Runtime
from roost.testing import run_task
from roost.testing.suite import TypeSuite
from roost_cobol import tasks
from roost_cobol.host import IbmiProfile
from roost_cobol.tasks import CallJob, CreateProgram, SubmitJob

ECHO_ARGS = """       IDENTIFICATION DIVISION.
       PROGRAM-ID. ECHOARGS.
       DATA DIVISION.
       WORKING-STORAGE SECTION.
       01 ARG-COUNT PIC 9(4).
       01 IDX       PIC 9(4).
       01 ARG-VAL   PIC X(200).
       PROCEDURE DIVISION.
           ACCEPT ARG-COUNT FROM ARGUMENT-NUMBER
           DISPLAY "ARGS " ARG-COUNT
           PERFORM VARYING IDX FROM 1 BY 1 UNTIL IDX > ARG-COUNT
               ACCEPT ARG-VAL FROM ARGUMENT-VALUE
               DISPLAY "[" FUNCTION TRIM(ARG-VAL TRAILING) "]"
           END-PERFORM
           IF ARG-COUNT > 0
               MOVE 0 TO RETURN-CODE
           END-IF
           STOP RUN.
"""

FAILS = """       IDENTIFICATION DIVISION.
       PROGRAM-ID. FAILS.
       PROCEDURE DIVISION.
           DISPLAY "ABOUT TO FAIL"
           MOVE 12 TO RETURN-CODE
           STOP RUN.
"""

SLEEPS = """       IDENTIFICATION DIVISION.
       PROGRAM-ID. SLEEPS.
       PROCEDURE DIVISION.
           DISPLAY "STARTED"
           CALL "C$SLEEP" USING 60
           DISPLAY "NEVER"
           STOP RUN.
"""

BROKEN = """       IDENTIFICATION DIVISION.
       PROGRAM-ID. BROKEN.
       PROCEDURE DIVISION.
           DISPLAY "OK"
           MOVE X TO Y
           STOP RUN.
"""


def compile_program(host: SshHost, program: str, source: str, **extra: Any) -> Any:
    return run_task(
        CreateProgram, library="TESTLIB", program=program, sourceInline=source, **host.props(**extra)
    )


def test_compile_then_call_with_hostile_parameters_passed_verbatim(ssh_host: SshHost) -> None:
    built = compile_program(ssh_host, "ECHOARGS", ECHO_ARGS)
    assert built.outputs["programPath"] == f"{ssh_host.root}/TESTLIB/ECHOARGS"
    assert (ssh_host.root / "TESTLIB" / "ECHOARGS").is_file()
    marker = ssh_host.root / "pwned"
    hostile = ["2026-01-31", f"x; touch {marker}", f"$(touch {marker})", f"`touch {marker}`", "a'b\"c", "--help",
               "  spaced  ", "*"]  # fmt: skip
    called = run_task(CallJob, library="TESTLIB", program="ECHOARGS", parameters=hostile, **ssh_host.props())
    assert not marker.exists()  # no parameter ran a command
    out = called.context.read_file(called.outputs["stdoutUri"]).decode().splitlines()
    assert out[0] == "ARGS 0008"
    assert out[1:] == [f"[{p.rstrip()}]" for p in hostile]
    assert called.outputs["returnCode"] == 0 and called.outputs["jobUser"] == ssh_host.user
    assert called.outputs["jobNumber"].isdigit()
    assert "[2026-01-31]" in called.messages


def test_source_from_a_namespace_file_and_a_compile_error_names_the_line(ssh_host: SshHost) -> None:
    runtime = Runtime.in_memory()
    runtime.namespace_files.write("company.team", "cobol/BROKEN.cbl", BROKEN.encode())
    with pytest.raises(TaskError) as err:
        run_task(CreateProgram, runtime=runtime, library="TESTLIB", program="BROKEN",
                 sourceUri="nsfile:///cobol/BROKEN.cbl", **ssh_host.props())  # fmt: skip
    text = str(err.value)
    assert "compiling TESTLIB/BROKEN failed" in text and "line 5:" in text and "'X'" in text
    assert err.value.outputs["compileMessages"][0]["line"] == 5
    with pytest.raises(TaskError, match="compileOptions"):
        compile_program(ssh_host, "BROKEN", BROKEN, compileOptions="-x; rm -rf /")


def test_a_failing_program_fails_the_task_with_its_return_code(ssh_host: SshHost) -> None:
    compile_program(ssh_host, "FAILS", FAILS)
    result = run_task(CallJob, library="TESTLIB", program="FAILS", raise_on_failure=False, **ssh_host.props())
    assert result.state == "FAILED"
    assert "return code 12" in str(result.error)
    with pytest.raises(TaskError, match="not found on the host"):
        run_task(CallJob, library="TESTLIB", program="MISSING", **ssh_host.props())


def test_kill_ends_the_remote_program(ssh_host: SshHost) -> None:
    compile_program(ssh_host, "SLEEPS", SLEEPS)
    task = CallJob(id="call", type=CallJob.type_id, library="TESTLIB", program="SLEEPS", **ssh_host.props())
    from roost.engine.context import TaskRunContext

    ctx = TaskRunContext(Runtime.in_memory(), {}, namespace="company.team", task_id="call")
    threading.Timer(2.0, ctx.fire_kill).start()
    started = time.monotonic()
    from roost.engine.context import Killed

    with pytest.raises(Killed):
        task.run(ctx)
    assert time.monotonic() - started < 20
    time.sleep(4)  # TERM, then KILL after the grace period
    import subprocess

    alive = subprocess.run(["pgrep", "-f", f"{ssh_host.root}/TESTLIB"], capture_output=True, text=True).stdout
    alive += subprocess.run(["pgrep", "-x", "SLEEPS"], capture_output=True, text=True).stdout
    assert alive.strip() == ""


def test_program_timeout_ends_the_program(ssh_host: SshHost) -> None:
    compile_program(ssh_host, "SLEEPS", SLEEPS)
    with pytest.raises(TaskError, match="programTimeout"):
        run_task(CallJob, library="TESTLIB", program="SLEEPS", programTimeout=2, **ssh_host.props())


def test_submit_returns_at_once_or_follows_the_job_with_its_spool(ssh_host: SshHost) -> None:
    compile_program(ssh_host, "ECHOARGS", ECHO_ARGS)
    compile_program(ssh_host, "FAILS", FAILS)
    quick = run_task(SubmitJob, library="TESTLIB", program="ECHOARGS", parameters=["a"], **ssh_host.props())
    assert quick.outputs["submitted"] is True and quick.outputs["jobName"] == "ECHOARGS"
    assert "jobStatus" not in quick.outputs
    followed = run_task(SubmitJob, library="TESTLIB", program="ECHOARGS", jobName="EOD", parameters=["x y", "$HOME"],
                        wait=True, pollInterval="PT0.2S", **ssh_host.props())  # fmt: skip
    assert followed.outputs["jobStatus"] == "COMPLETED" and followed.outputs["returnCode"] == 0
    spool = followed.context.read_file(followed.outputs["spoolUri"]).decode()
    assert "[x y]" in spool and "[$HOME]" in spool
    failed = run_task(SubmitJob, library="TESTLIB", program="FAILS", wait=True, pollInterval="PT0.2S",
                      raise_on_failure=False, **ssh_host.props())  # fmt: skip
    assert (
        failed.state == "FAILED"
        and "return code 12" in str(failed.error)
        and "ABOUT TO FAIL" in str(failed.error)
    )


def test_ssh_authentication_and_host_key_failures(ssh_host: SshHost, tmp_path: Path) -> None:
    props = ssh_host.props()
    props.pop("privateKey")
    with pytest.raises(TaskError, match=r"SSH authentication as .* failed"):
        run_task(CallJob, library="TESTLIB", program="X", password="wrong-password", **props)
    other = ssh_host.props(
        hostKey="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBPf8ZzrIPOaCZ3ANv1OO0Sc3x+iXV+eQ7iX7oJ2dHnZ"
    )
    with pytest.raises(TaskError, match="host key"):
        run_task(CallJob, library="TESTLIB", program="X", **other)
    closed = ssh_host.props(port=1)
    with pytest.raises(TaskError, match="cannot open an SSH session"):
        run_task(CallJob, library="TESTLIB", program="X", **closed)
    with pytest.raises(TaskError, match="not an IBM i object name"):
        run_task(CallJob, library="../etc", program="X", **ssh_host.props())


def test_a_flow_compiles_calls_and_submits(ssh_host: SshHost, run_flow: Any) -> None:
    key = ssh_host.private_key.replace("\n", "\n          ")
    source = "".join("      " + line.strip() + "\n" for line in ECHO_ARGS.splitlines())
    flow = f"""id: cobol_batch
namespace: company.team
tasks:
  - id: compile
    type: io.kestra.plugin.cobol.CreateProgram
    library: FINLIB
    program: ECHOARGS
    compileOptions: -free
    sourceInline: |
{source}
  - id: call
    type: io.kestra.plugin.cobol.CallJob
    library: FINLIB
    program: ECHOARGS
    parameters:
      - "{{{{ execution.id }}}}"
      - "{{{{ outputs.compile.programPath }}}}"
  - id: submit
    type: io.kestra.plugin.cobol.SubmitJob
    library: FINLIB
    program: ECHOARGS
    wait: true
    pollInterval: PT0.2S
pluginDefaults:
  - type: io.kestra.plugin.cobol
    values:
      host: 127.0.0.1
      port: {ssh_host.port}
      user: {ssh_host.user}
      hostKey: "{ssh_host.host_key}"
      libraryRoot: "{ssh_host.root}"
      privateKey: |
          {key}
"""
    ex = run_flow(flow)
    assert ex.state.current == "SUCCESS", [(tr.task_id, tr.state.current) for tr in ex.task_runs]
    call = next(tr for tr in ex.task_runs if tr.task_id == "call")
    assert call.outputs["returnCode"] == 0
    submit = next(tr for tr in ex.task_runs if tr.task_id == "submit")
    assert submit.outputs["jobStatus"] == "COMPLETED"


def test_ibm_i_commands_quote_cl_and_shell() -> None:
    profile = IbmiProfile("/tmp/roost")
    cmd = profile.call("FINLIB", "CALCINT", ["it's", "$(x)"])
    assert "CALL PGM(FINLIB/CALCINT) PARM('it''s' '$(x)')" in cmd.replace("'\"'\"'", "'")
    sbm = profile.sbmjob("BATCHLIB", "EODPROC", [], "EOD", "QBATCH", None)
    assert sbm == "system 'SBMJOB CMD(CALL PGM(BATCHLIB/EODPROC)) JOB(EOD) JOBQ(QBATCH)'"
    assert profile.compile("DEVLIB", "HELLO", "DBGVIEW(*ALL)").startswith(
        "system 'CRTBNDCBL PGM(DEVLIB/HELLO)"
    )


class TestCobolTypes(TypeSuite):
    types = tasks.TASKS
    examples = [
        """
id: cobol
namespace: company.team
tasks:
  - id: compile
    type: io.kestra.plugin.cobol.CreateProgram
    host: "{{ secret('IBM_HOST') }}"
    user: "{{ secret('IBM_USER') }}"
    password: "{{ secret('IBM_PASSWORD') }}"
    library: DEVLIB
    program: HELLO
    sourceInline: |
      IDENTIFICATION DIVISION.
      PROGRAM-ID. HELLO.
      PROCEDURE DIVISION.
      DISPLAY 'HELLO FROM KESTRA'.
      STOP RUN.
  - id: call
    type: io.kestra.plugin.cobol.CallJob
    host: "{{ secret('IBM_HOST') }}"
    user: "{{ secret('IBM_USER') }}"
    password: "{{ secret('IBM_PASSWORD') }}"
    library: FINLIB
    program: CALCINT
    parameters:
      - "2026-01-31"
  - id: submit
    type: io.kestra.plugin.cobol.SubmitJob
    host: "{{ secret('IBM_HOST') }}"
    user: "{{ secret('IBM_USER') }}"
    password: "{{ secret('IBM_PASSWORD') }}"
    library: BATCHLIB
    program: EODPROC
    jobQueue: QBATCH
"""
    ]
