"""roostctl end to end: the installed console script against a real server process with auth."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from roost.server.config import hash_password, hash_token

from tests.e2e.conftest import ServerProcess

pytestmark = pytest.mark.e2e
TOKEN = "roostctl_e2e_token_0123456789"
SCRIPT = Path(sys.executable).with_name("roostctl")

NIGHTLY = """id: nightly-refresh
namespace: company.team
labels:
  team: data
inputs:
  - id: who
    type: STRING
    defaults: world
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "hello {{ inputs.who }}"
outputs:
  - id: greeting
    type: STRING
    value: "hi {{ inputs.who }}"
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 3 * * *"
"""

OTHER = """id: other
namespace: company.team.sub
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: other
"""

LONG = """id: long
namespace: {ns}
tasks:
  - id: start
    type: io.kestra.plugin.core.log.Log
    message: starting
  - id: sleep
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - sleep 60
"""

FAILING = """id: failing
namespace: {ns}
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: on purpose
"""


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with the acceptance README's USER/PASS as a basic-auth user, and an API token."""
    root = tmp_path_factory.mktemp("roostctl")
    config = root / "roost.yaml"
    config.write_text(f"""
server:
  basicAuth:
    users:
      - username: USER
        passwordHash: "{hash_password("PASS")}"
  apiTokens:
    - name: ci
      tokenHash: "{hash_token(TOKEN)}"
""")
    proc = ServerProcess("local", root / "data", config=config).wait_ready()
    yield proc
    proc.stop()


class Ctl:
    """Runs the installed ``roostctl`` with a private HOME and config file."""

    def __init__(self, home: Path, server: ServerProcess) -> None:
        self.home = home
        self.server = server
        self.config = home / ".roostctl" / "config.yaml"
        self.api = httpx.Client(base_url=server.url + "/api/v1/main", headers={"Authorization": f"Bearer {TOKEN}"},
                                timeout=30)  # fmt: skip

    def environment(self, env: dict[str, str] | None, auth: bool) -> dict[str, str]:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ROOSTCTL_")}
        full_env.update({"HOME": str(self.home), "COLUMNS": "200", "NO_COLOR": "1"})
        if auth:
            full_env.update({"ROOSTCTL_HOST": self.server.url, "ROOSTCTL_TOKEN": TOKEN})
        full_env.update(env or {})
        return full_env

    def script(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
               auth: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """The installed console script, in a process of its own."""
        command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "roost.cli.ctl"]
        return subprocess.run(command + list(args), capture_output=True, text=True, env=self.environment(env, auth),
                              timeout=120, cwd=cwd or self.home)  # fmt: skip

    def __call__(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
                 auth: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """The same entry point in this process (much faster than a process per command)."""
        from roost.cli.ctl import run

        saved_env, saved_cwd = dict(os.environ), os.getcwd()
        out, err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.StringIO()
        os.environ.clear()
        os.environ.update(self.environment(env, auth))
        try:
            os.chdir(cwd or self.home)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):  # type: ignore[type-var]
                code = run(list(args))
        finally:
            os.environ.clear()
            os.environ.update(saved_env)
            os.chdir(saved_cwd)
        out.flush()
        stdout = out.buffer.getvalue().decode("utf-8", errors="replace")  # type: ignore[attr-defined]
        return subprocess.CompletedProcess(["roostctl", *args], code, stdout, err.getvalue())

    def json(self, *args: str, **kw: Any) -> Any:
        result = self(*args, "--output", "json", **kw)
        assert result.returncode == 0, result.stderr + result.stdout
        return json.loads(result.stdout)


@pytest.fixture
def ctl(tmp_path: Path, secured: ServerProcess) -> Iterator[Ctl]:
    home = tmp_path / "home"
    home.mkdir()
    runner = Ctl(home, secured)
    yield runner
    runner.api.close()


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


# -- config ------------------------------------------------------------------------------------------------------------
def test_config_contexts_and_precedence(ctl: Ctl) -> None:
    url = ctl.server.url
    assert (
        ctl(
            "config", "add", "good", url, "main", "--username", "USER", "--password", "PASS", auth=False
        ).returncode
        == 0
    )
    assert ctl("config", "add", "bad", url, "main", "--token", "wrong-token", auth=False).returncode == 0
    assert ctl.config.stat().st_mode & 0o077 == 0  # credentials: readable by the owner only
    shown = ctl.json("config", "show", auth=False)
    assert shown["default_context"] == "good"  # the first context added is the default
    assert {c["name"]: c["auth_method"] for c in shown["contexts"]} == {"good": "basicAuth", "bad": "token"}
    assert "PASS" not in json.dumps(shown) and "wrong-token" not in json.dumps(shown)

    assert ctl("flows", "list", auth=False).returncode == 0  # the default context's basic auth
    assert ctl("config", "use", "bad", auth=False).returncode == 0
    denied = ctl.script("flows", "list", auth=False)
    assert denied.returncode == 3, denied.stderr
    assert "authentication failed" in denied.stderr
    # environment beats the file, flags beat the environment
    assert ctl("flows", "list", auth=False, env={"ROOSTCTL_TOKEN": TOKEN}).returncode == 0
    assert ctl("flows", "list", "--token", "nope", auth=False, env={"ROOSTCTL_TOKEN": TOKEN}).returncode == 3
    assert ctl("flows", "list", "--token", TOKEN, auth=False).returncode == 0
    assert ctl("--username", "USER", "--password", "PASS", "flows", "list", auth=False).returncode == 0
    assert ctl("flows", "list", "--context", "good", auth=False).returncode == 0
    current = ctl.json(
        "config", "current", auth=False, env={"ROOSTCTL_TENANT": "main", "ROOSTCTL_TOKEN": TOKEN}
    )
    assert current["sources"] == {"host": "config", "tenant": "env", "output": "flag", "auth": "env"}
    # output: ROOSTCTL_OUTPUT, overridden by --output
    listed = ctl("flows", "list", auth=False, env={"ROOSTCTL_OUTPUT": "json", "ROOSTCTL_TOKEN": TOKEN})
    assert isinstance(json.loads(listed.stdout), list)
    table = ctl(
        "flows", "list", "-o", "table", auth=False, env={"ROOSTCTL_OUTPUT": "json", "ROOSTCTL_TOKEN": TOKEN}
    )
    assert "flow(s)" in table.stdout
    # a config file elsewhere
    other = ctl.home / "other.yaml"
    assert (
        ctl(
            "config", "add", "x", url, "t2", "--token", TOKEN, auth=False, env={"ROOSTCTL_CONFIG": str(other)}
        ).returncode
        == 0
    )
    assert "x:" in other.read_text() and "x:" not in ctl.config.read_text()
    assert ctl.json("config", "current", "--config", str(other), auth=False)["tenant"] == "t2"
    # removing, and usage errors
    assert ctl("config", "remove", "bad", auth=False).returncode == 0
    assert ctl.json("config", "show", auth=False)["default_context"] == "good"
    assert ctl("config", "use", "missing", auth=False).returncode == 2
    assert ctl("flows", "list", "--context", "missing", auth=False).returncode == 2
    assert (
        ctl("config", "add", "y", url, "main", "--token", "a", "--username", "b", auth=False).returncode == 2
    )


# -- the acceptance README's commands, as written --------------------------------------------------------------------
def test_acceptance_readme_commands_as_written(ctl: Ctl) -> None:
    work = write(ctl.home / "repo", {
        "flows/nightly-refresh.yml": NIGHTLY,
        "flows/team/other.yaml": OTHER,
        "flows/.hidden.yml": "not: a flow",
        "flows/README.md": "not yaml",
        "assets/config.json": '{"a": 1}',
        "assets/sql/report.sql": "select 1;\n",
        "assets/.git-keep": "",
    })  # fmt: skip
    # the host of the README is localhost:8080; ROOSTCTL_HOST points at this test's server instead
    env = {"ROOSTCTL_HOST": ctl.server.url}
    added = ctl.script("config", "add", "default", "http://localhost:8080", "main", "--username", "USER", "--password", "PASS",
                "--default", auth=False)  # fmt: skip
    assert added.returncode == 0, added.stderr

    deployed = ctl.script(
        "flows",
        "deploy",
        "./flows",
        "--namespace",
        "prod",
        "--override",
        "--fail-fast",
        auth=False,
        env=env,
        cwd=work,
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "2 deployed, 0 failed" in deployed.stdout
    assert {f["id"] for f in ctl.api.get("/flows/prod").json()} >= {"nightly-refresh", "other"}

    ran = ctl.script(
        "executions",
        "run",
        "prod",
        "nightly-refresh",
        "--wait",
        "--output",
        "json",
        auth=False,
        env=env,
        cwd=work,
    )
    assert ran.returncode == 0, ran.stderr
    execution = json.loads(ran.stdout)  # stdout is the final execution, and only that
    assert execution["state"]["current"] == "SUCCESS"
    assert execution["namespace"] == "prod" and execution["flowId"] == "nightly-refresh"
    assert execution["outputs"] == {"greeting": "hi world"}
    assert {"key": "team", "value": "data"} in execution["labels"]

    uploaded = ctl.script(
        "nsfiles",
        "upload",
        "prod",
        "./assets",
        "--path",
        "resources",
        "--override",
        auth=False,
        env=env,
        cwd=work,
    )
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    for path, content in (
        ("resources/assets/config.json", b'{"a": 1}'),
        ("resources/assets/sql/report.sql", b"select 1;\n"),
    ):
        r = ctl.api.get("/namespaces/prod/files", params={"path": "/" + path})
        assert r.status_code == 200 and r.content == content, path
    assert (
        ctl.api.get(
            "/namespaces/prod/files/stats", params={"path": "/resources/assets/.git-keep"}
        ).status_code
        == 404
    )


# -- flows ---------------------------------------------------------------------------------------------------------
def test_deploy_a_folder_with_flags(ctl: Ctl) -> None:
    work = write(ctl.home / "repo", {"flows/nightly.yml": NIGHTLY, "flows/team/other.yaml": OTHER,
                                     "bad/broken.yml": "id: broken\nnamespace: x.y\ntasks: []\n"})  # fmt: skip
    result = ctl.json(
        "flows", "deploy", "flows", "--namespace-prefix", "pr42", "--disable-triggers", cwd=work
    )
    assert [(r["flow_id"], r["namespace"], r["success"]) for r in result] == [
        ("nightly-refresh", "pr42.company.team", True), ("other", "pr42.company.team.sub", True)]  # fmt: skip
    source = ctl.json("flows", "get", "pr42.company.team", "nightly-refresh")["source"]
    assert "disabled: true" in source and "# " not in source
    assert 'message: "hello {{ inputs.who }}"' in source  # the rest of the YAML is kept as written
    # existing flows fail without --override: every file is tried, or only the first with --fail-fast
    again = ctl("flows", "deploy", "flows", "--namespace-prefix", "pr42", cwd=work)
    assert again.returncode == 1 and again.stdout.count("already exists") == 2
    fast = ctl(
        "flows", "deploy", "flows", "--namespace-prefix", "pr42", "--fail-fast", "-o", "json", cwd=work
    )
    assert fast.returncode == 1 and len(json.loads(fast.stdout)) == 1
    top = ctl.json("flows", "deploy", "flows", "--namespace", "top.only", "--recursive=false", cwd=work)
    assert top["flow_id"] == "nightly-refresh" and top["revision"] == 1  # one file: one result
    assert (
        ctl("flows", "deploy", "flows", "--namespace", "a", "--namespace-prefix", "b", cwd=work).returncode
        == 2
    )
    broken = ctl("flows", "deploy", "bad/broken.yml", cwd=work)
    assert broken.returncode == 1 and "tasks" in broken.stdout
    listed = ctl.json("flows", "list", "pr42", "--prefix")
    assert {(f["namespace"], f["id"]) for f in listed} == {("pr42.company.team", "nightly-refresh"),
                                                             ("pr42.company.team.sub", "other")}  # fmt: skip
    assert ctl("flows", "get", "pr42.company.team", "missing").returncode == 4
    assert ctl("flows", "delete", "pr42.company.team.sub", "other", "--yes").returncode == 0
    assert ctl("flows", "get", "pr42.company.team.sub", "other").returncode == 4


def test_validate_reports_violations_and_exit_code(ctl: Ctl) -> None:
    work = write(ctl.home / "repo", {
        "flows/good.yml": NIGHTLY,
        "flows/sub/unknown.yml": "id: unknown\nnamespace: v.team\ntasks:\n  - id: x\n    type: io.kestra.plugin.core.log.Nope\n",
        "flows/sub/empty.yml": "id: empty\nnamespace: v.team\ntasks: []\n",
        "ok/good.yml": NIGHTLY,
    })  # fmt: skip
    result = ctl("flows", "validate", "flows", "-o", "json", cwd=work)
    assert result.returncode == 1
    by_file = {Path(r["file_path"]).name: r for r in json.loads(result.stdout)}
    assert by_file["good.yml"]["success"] is True
    assert by_file["unknown.yml"]["success"] is False
    assert any(
        "line 5" in c and "io.kestra.plugin.core.log.Nope" in c for c in by_file["unknown.yml"]["constraints"]
    )
    assert any("line 3" in c and "tasks" in c for c in by_file["empty.yml"]["constraints"])
    table = ctl("flows", "validate", "flows", cwd=work)
    assert table.returncode == 1 and "1 valid flow(s), 2 failed" in table.stdout
    assert ctl("flows", "validate", "ok", cwd=work).returncode == 0
    assert ctl("flows", "validate", "flows", "--no-recursive", cwd=work).returncode == 0  # sub/ skipped
    assert ctl("flows", "validate", "missing-folder", cwd=work).returncode == 2
    # nothing was deployed by validating
    assert ctl.api.get("/flows/v.team/unknown").status_code == 404


# -- executions --------------------------------------------------------------------------------------------------
def test_run_wait_inputs_labels_and_failure(ctl: Ctl, tmp_path: Path) -> None:
    ns = "run.team"
    work = write(
        ctl.home / "repo",
        {"f/nightly.yml": NIGHTLY.replace("company.team", ns), "f/failing.yml": FAILING.format(ns=ns)},
    )
    assert ctl("flows", "deploy", "f", cwd=work).returncode == 0
    ex = ctl.json(
        "executions", "run", ns, "nightly-refresh", "--wait", "--input", "who=roost", "-l", "env=ci"
    )
    assert ex["state"]["current"] == "SUCCESS" and ex["inputs"] == {"who": "roost"}
    assert {"key": "env", "value": "ci"} in ex["labels"]
    failed = ctl("executions", "run", ns, "failing", "--wait", "-o", "json")
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["state"]["current"] == "FAILED"
    table = ctl("executions", "run", ns, "failing", "--wait")
    assert table.returncode == 1 and "FAILED" in table.stdout
    created = ctl.json("executions", "run", ns, "nightly-refresh")  # no wait: created, exit 0
    assert created["state"]["current"] in ("CREATED", "RUNNING", "SUCCESS")
    got = ctl.json("executions", "get", ex["id"])
    assert got["id"] == ex["id"] and got["taskRunList"][0]["taskId"] == "hello"
    listed = ctl.json("executions", "list", "--namespace", ns, "--flow-id", "failing", "--state", "FAILED")
    assert listed["total"] == 2 and {e["flowId"] for e in listed["results"]} == {"failing"}
    logs = ctl.json("logs", ex["id"])
    assert any(r["message"] == "hello roost" for r in logs)
    assert "hello roost" in ctl("logs", ex["id"], "--follow").stdout
    assert ctl("executions", "run", ns, "missing-flow").returncode == 4
    assert ctl("executions", "get", "doesNotExist0000000000").returncode == 4
    assert ctl("executions", "run", ns, "nightly-refresh", "--input", "novalue").returncode == 2


def test_kill_a_long_execution(ctl: Ctl) -> None:
    ns = "kill.team"
    work = write(ctl.home / "repo", {"long.yml": LONG.format(ns=ns)})
    assert ctl("flows", "deploy", "long.yml", cwd=work).returncode == 0
    started = ctl.json("executions", "run", ns, "long")
    ex_id = started["id"]
    deadline = time.monotonic() + 20
    while ctl.api.get(f"/executions/{ex_id}").json()["state"]["current"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    began = time.monotonic()
    killed = ctl.json("executions", "kill", ex_id, "--wait")
    assert killed["state"] == "KILLED"
    assert time.monotonic() - began < 20  # the 60 s sleep was really stopped
    assert ctl.api.get(f"/executions/{ex_id}").json()["state"]["current"] == "KILLED"


# -- namespace files ---------------------------------------------------------------------------------------------------
def test_nsfiles_round_trip(ctl: Ctl) -> None:
    ns = "files.team"
    binary = bytes(range(256)) * 8
    work = write(ctl.home / "repo", {"one.bin": binary, "site/index.html": "<h1>hi</h1>", "site/css/app.css": "a{}",
                                     "site/.env": "SECRET=1"})  # fmt: skip
    assert (
        ctl("nsfiles", "upload", ns, "one.bin", "data/one.bin", cwd=work).returncode == 0
    )  # positional DEST
    got = ctl("nsfiles", "get", ns, "data/one.bin", "--to", str(work / "back.bin"), cwd=work)
    assert got.returncode == 0 and (work / "back.bin").read_bytes() == binary
    again = ctl("nsfiles", "upload", ns, "one.bin", "--path", "data/one.bin", cwd=work)
    assert again.returncode == 1 and "already exists" in again.stdout
    assert ctl("nsfiles", "upload", ns, "one.bin", "--path", "data/", "--override", cwd=work).returncode == 0
    summary = ctl.json("nsfiles", "upload", ns, "site", "--path", "web", "--no-root", cwd=work)
    assert summary["success"] == 2 and {r["destination"] for r in summary["results"]} == {
        "/web/index.html",
        "/web/css/app.css",
    }
    listing = ctl.json("nsfiles", "list", ns, "--recursive")
    files = {e["name"] for e in listing if e["type"] == "File"}
    assert files == {"data/one.bin", "web/index.html", "web/css/app.css"}
    assert {e["name"] for e in ctl.json("nsfiles", "list", ns, "--path", "web")} == {
        "web/index.html",
        "web/css",
    }
    assert ctl("nsfiles", "get", ns, "--path", "web/index.html").stdout == "<h1>hi</h1>"
    assert ctl("nsfiles", "delete", ns, "web").returncode == 1  # a folder needs --recursive
    assert ctl("nsfiles", "delete", ns, "--path", "web", "--recursive").returncode == 0
    assert ctl("nsfiles", "get", ns, "web/index.html").returncode == 4
    assert ctl("nsfiles", "delete", ns, "web", "--force").returncode == 0
    assert ctl("nsfiles", "delete", ns, "web").returncode == 4
    assert ctl("nsfiles", "upload", ns, "one.bin", "a", "--path", "b", cwd=work).returncode == 2


# -- the rest ---------------------------------------------------------------------------------------------------------
def test_namespaces_kv_and_errors(ctl: Ctl) -> None:
    ns = "kv.team"
    assert ctl("kv", "set", ns, "greeting", "hello").returncode == 0
    assert ctl("kv", "set", ns, "conf", '{"a": [1, 2]}', "--type", "JSON").returncode == 0
    assert ctl("kv", "set", ns, "num", "42", "--type", "STRING").returncode == 0
    assert ctl("kv", "get", ns, "greeting").stdout == "hello\n"
    assert json.loads(ctl("kv", "get", ns, "conf").stdout) == {"a": [1, 2]}
    assert ctl.json("kv", "get", ns, "num")["value"] == "42"
    assert {e["key"] for e in ctl.json("kv", "list", ns)} == {"greeting", "conf", "num"}
    assert ctl("kv", "delete", ns, "greeting").returncode == 0
    assert ctl("kv", "get", ns, "greeting").returncode == 4
    assert ns in ctl.json("namespaces", "list")
    assert ctl.json("namespaces", "list", "--query", "kv.te") == [ns]
    # assets
    for asset_id, owner in (("orders", "data"), ("customers", "crm")):
        body = {
            "id": asset_id,
            "type": "io.kestra.plugin.ee.assets.Table",
            "namespace": "kv.team",
            "metadata": {"owner": owner},
        }
        assert ctl.api.post("/assets", json=body).status_code == 200
    assert {a["id"] for a in ctl.json("assets", "list", "--namespace", "kv")} >= {"orders", "customers"}
    assert [a["id"] for a in ctl.json("assets", "list", "--metadata", "owner=crm")] == ["customers"]
    assert ctl.json("assets", "get", "orders")["metadata"] == {"owner": "data"}
    assert ctl("assets", "delete", "orders").returncode == 0
    assert ctl("assets", "get", "orders").returncode == 4
    assert ctl("assets", "delete", "orders").returncode == 4
    # exit codes: unreachable, bad usage, no credentials
    assert ctl("flows", "list", "--host", "http://127.0.0.1:9").returncode == 5
    assert ctl("flows", "deploy").returncode == 2
    assert ctl("flows", "list", "--output", "xml").returncode == 2
    anonymous = ctl("flows", "list", auth=False, env={"ROOSTCTL_HOST": ctl.server.url})
    assert anonymous.returncode == 3 and "no credentials configured" in anonymous.stderr
    version = ctl.script("version")
    assert version.returncode == 0 and version.stdout.startswith("roostctl v")


# -- kestractl's forms ---------------------------------------------------------------------------------------------------
def test_kv_in_kestractls_forms(ctl: Ctl) -> None:
    assert ctl("kv", "set", "kc.team", "STRING", "api_key", "my-secret").returncode == 0
    assert ctl("kv", "set", "kc.team", "NUMBER", "retries", "3").returncode == 0
    assert (
        ctl("kv", "set", "kc.team", "JSON", "settings", '{"feature": true}', "--ttl", "PT1H").returncode == 0
    )
    assert ctl("kv", "set", "kc.team.sub", "BOOLEAN", "flag", "TRUE").returncode == 0
    assert ctl.json("kv", "get", "kc.team", "retries") == {
        **ctl.json("kv", "get", "kc.team", "retries"),
        "type": "NUMBER",
        "value": 3,
    }
    assert ctl.json("kv", "get", "kc.team", "settings")["value"] == {"feature": True}
    assert ctl.json("kv", "get", "kc.team.sub", "flag")["value"] is True
    bad = ctl("kv", "set", "kc.team", "NUMBER", "retries", "three")
    assert bad.returncode == 2 and "NUMBER" in bad.stderr
    assert ctl("kv", "set", "kc.team", "COLOUR", "k", "v").returncode == 2
    assert ctl("kv", "update", "kc.team", "NUMBER", "retries", "4").returncode == 0
    assert ctl("kv", "update", "kc.team", "NUMBER", "missing", "4").returncode == 4
    everywhere = ctl.json("kv", "list")  # no namespace: every namespace
    assert {(e["namespace"], e["key"]) for e in everywhere} >= {
        ("kc.team", "api_key"),
        ("kc.team.sub", "flag"),
    }
    assert {e["key"] for e in ctl.json("kv", "list", "kc.team")} == {"api_key", "retries", "settings"}
    assert "kc.team.sub" in ctl("kv", "list").stdout
    assert {e["key"] for e in ctl.json("kv", "list-inherited", "kc.team.sub")} == {
        "api_key",
        "retries",
        "settings",
    }
    assert ctl.json("kv", "delete-all", "kc.team", "api_key", "retries", "nope")["deleted"] == [
        "api_key",
        "retries",
    ]


def test_kill_without_cascade(ctl: Ctl) -> None:
    ns = "cascade.team"
    parent = f"""id: parent
namespace: {ns}
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: {ns}
    flowId: long
"""
    work = write(ctl.home / "repo", {"long.yml": LONG.format(ns=ns), "parent.yml": parent})
    assert ctl("flows", "deploy", ".", cwd=work).returncode == 0
    started = ctl.json("executions", "run", ns, "parent")
    deadline = time.monotonic() + 30
    while not (children := ctl.api.get("/executions/search", params={"filters[flowId][EQUALS]": "long",
                                                                     "filters[namespace][EQUALS]": ns}).json()["results"]):  # fmt: skip
        assert time.monotonic() < deadline
        time.sleep(0.1)
    child = children[0]["id"]
    while ctl.api.get(f"/executions/{child}").json()["state"]["current"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    killed = ctl("executions", "kill", started["id"], "--cascade=false", "--wait")
    assert killed.returncode == 0, killed.stderr
    assert ctl.api.get(f"/executions/{started['id']}").json()["state"]["current"] == "KILLED"
    assert ctl.api.get(f"/executions/{child}").json()["state"]["current"] == "RUNNING"  # left running
    assert ctl.json("executions", "cancel", child, "--cascade", "--wait")["state"] == "KILLED"


def test_run_wait_timeout_prints_the_execution(ctl: Ctl) -> None:
    ns = "timeout.team"
    work = write(ctl.home / "repo", {"long.yml": LONG.format(ns=ns)})
    assert ctl("flows", "deploy", "long.yml", cwd=work).returncode == 0
    began = time.monotonic()
    late = ctl.script("executions", "run", ns, "long", "--wait", "--timeout", "2", "-o", "json")
    assert late.returncode == 1, late.stderr  # not 5: the server answered, the execution is just not done
    assert time.monotonic() - began < 30
    running = json.loads(late.stdout)
    assert running["state"]["current"] == "RUNNING" and running["id"] in late.stderr
    ctl("executions", "kill", running["id"], "--wait")


def test_kestractl_environment_and_no_configuration(ctl: Ctl) -> None:
    as_kestractl = {"KESTRACTL_HOST": ctl.server.url, "KESTRACTL_TOKEN": TOKEN, "KESTRACTL_OUTPUT": "json"}
    listed = ctl("flows", "list", auth=False, env=as_kestractl)
    assert listed.returncode == 0, listed.stderr
    assert isinstance(json.loads(listed.stdout), list)
    current = ctl.json("config", "current", auth=False, env=as_kestractl)
    assert current["host"] == ctl.server.url and current["auth_method"] == "token"
    # ROOSTCTL_* wins over KESTRACTL_*
    assert ctl("flows", "list", auth=False, env={**as_kestractl, "ROOSTCTL_TOKEN": "wrong"}).returncode == 3
    # nothing configured at all: roostctl says which server it tries
    lost = ctl.script("flows", "list", auth=False, env={"ROOSTCTL_CONFIG": str(ctl.home / "none.yaml")})
    assert lost.returncode == 5
    assert "no server configured" in lost.stderr and "using http://localhost:8080" in lost.stderr
    configured = ctl(
        "flows", "list", auth=False, env={"ROOSTCTL_HOST": ctl.server.url, "ROOSTCTL_TOKEN": TOKEN}
    )
    assert "no server configured" not in configured.stderr


def test_execution_actions_of_kestractl(ctl: Ctl) -> None:
    ns = "actions.team"
    work = write(ctl.home / "repo", {"failing.yml": FAILING.format(ns=ns)})
    assert ctl("flows", "deploy", "failing.yml", cwd=work).returncode == 0
    run = ctl("executions", "run", ns, "failing", "--wait", "-o", "json")
    failed = json.loads(run.stdout)
    replayed = ctl.json("executions", "replay", failed["id"])
    assert (
        replayed["parentId"] == failed["id"]
        and {"key": "system.replay", "value": "true"} in replayed["labels"]
    )
    boom = next(t for t in failed["taskRunList"] if t["taskId"] == "boom")
    from_task = ctl.json("executions", "replay", failed["id"], "--task-run-id", boom["id"])
    assert from_task["state"]["current"] == "RESTARTED"
    assert ctl("executions", "set-labels", failed["id"], "team=ops", "env=ci").returncode == 0
    labels = ctl.api.get(f"/executions/{failed['id']}").json()["labels"]
    assert {"key": "team", "value": "ops"} in labels and {"key": "system.replayed", "value": "true"} in labels
    assert ctl.json("executions", "change-status", failed["id"], "success")["state"]["current"] == "SUCCESS"
    assert ctl("executions", "unqueue", failed["id"]).returncode == 1  # not queued
    assert ctl("executions", "force-run", failed["id"]).returncode == 1  # already ended
    for ex_id in (replayed["id"], from_task["id"]):
        ctl.json("executions", "get", ex_id)
        deadline = time.monotonic() + 20
        while ctl.api.get(f"/executions/{ex_id}").json()["state"]["current"] not in ("FAILED", "SUCCESS"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert ctl("executions", "delete", failed["id"]).returncode == 0
    assert ctl("executions", "get", failed["id"]).returncode == 4
