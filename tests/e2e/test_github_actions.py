"""The composite GitHub actions (validate-flows, deploy-flows, deploy-namespace-files) and the example
workflow, run step by step as a runner would: ``${{ }}`` substituted, each ``run:`` in ``bash -eo pipefail``,
``$GITHUB_PATH`` applied between steps, against a real server process.

roostctl is really installed by the actions' own pip step, into a venv of their own, from this
checkout (``roostctlPackage``); to stay offline, pip gets ``--no-index --no-deps --no-build-isolation``
and finds the dependencies and the build backend through ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from roost.server.config import hash_password, hash_token
from ruamel.yaml import YAML

from tests.e2e.conftest import ServerProcess

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
ACTIONS = REPO / ".github" / "actions"
WORKFLOW = REPO / ".github" / "workflows" / "roost-ci-cd.yml"
TOKEN = "roost_actions_token_0123456789"
PIP_ARGS = "--no-index --no-deps --no-build-isolation --force-reinstall"
EXPR = re.compile(r"\$\{\{\s*([A-Za-z_]+)\.([A-Za-z0-9_-]+)\s*\}\}")

FLOW = """id: {id}
namespace: {ns}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hello from {id}
"""
BROKEN = "id: broken\nnamespace: ci.team\ntasks:\n  - id: x\n    type: io.kestra.plugin.core.log.Nope\n"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("actions-server")
    config = root / "roost.yaml"
    config.write_text(f"""
server:
  basicAuth:
    users:
      - username: ci-user
        passwordHash: "{hash_password("ci-pass")}"
  apiTokens:
    - name: ci
      tokenHash: "{hash_token(TOKEN)}"
""")
    proc = ServerProcess("local", root / "data", config=config).wait_ready()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def runner_temp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RUNNER_TEMP, shared by the tests of this module so that roostctl is installed once (then reused)."""
    pytest.importorskip("hatchling", reason="building roostctl offline needs hatchling (test extra)")
    return tmp_path_factory.mktemp("runner-temp")


@dataclass
class Runner:
    """A job's environment: its workspace, RUNNER_TEMP, GITHUB_PATH and the steps' outputs."""

    workspace: Path
    temp: Path
    secrets: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.bin = self.temp / "system-bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        for name in ("python3", "python"):  # the runner's Python: the base interpreter, no project venv
            link = self.bin / name
            if not link.exists():
                link.symlink_to(getattr(sys, "_base_executable", sys.executable))
        self.github_path = self.temp / f"github_path_{self.workspace.name}"
        self.github_path.write_text("")

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        added = [line for line in self.github_path.read_text().splitlines() if line.strip()]
        dev_bin = str(Path(sys.executable).parent)
        path = [*reversed(added), str(self.bin),
                *(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != dev_bin)]  # fmt: skip
        base = {
            k: v for k, v in os.environ.items() if not k.startswith(("ROOSTCTL_", "GITHUB_", "VIRTUAL_ENV"))
        }
        base.update({
            "PATH": os.pathsep.join(path), "HOME": str(self.temp / "home"), "CI": "true", "GITHUB_ACTIONS": "true",
            "RUNNER_TEMP": str(self.temp), "GITHUB_WORKSPACE": str(self.workspace), "GITHUB_PATH": str(self.github_path),
            "GITHUB_ENV": str(self.temp / "github_env"), "GITHUB_STEP_SUMMARY": str(self.temp / "summary.md"),
            "PYTHONPATH": sysconfig.get_paths()["purelib"],  # dependencies and hatchling, offline
        })  # fmt: skip
        base.update(extra)
        return base

    def substitute(self, text: str, inputs: dict[str, str]) -> str:
        def value(m: re.Match[str]) -> str:
            scope, name = m.group(1), m.group(2)
            if scope == "inputs":
                return inputs.get(name, "")
            if scope == "secrets":
                return self.secrets[name]
            if scope == "runner" and name == "temp":
                return str(self.temp)
            if scope == "github" and name == "workspace":
                return str(self.workspace)
            raise AssertionError(f"expression ${{{{ {scope}.{name} }}}} is not emulated by this test")

        return EXPR.sub(value, text)

    def action(self, name: str, given: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        """Run a composite action's steps; the first failing step's result is returned (else the last)."""
        spec = YAML(typ="safe").load((ACTIONS / name / "action.yml").read_text())
        assert spec["runs"]["using"] == "composite"
        inputs = {k: str(v.get("default", "")) for k, v in (spec.get("inputs") or {}).items()}
        unknown = set(given) - set(inputs)
        assert not unknown, f"{name} has no input(s) {unknown}"
        for k, v in given.items():
            inputs[k] = str(v).lower() if isinstance(v, bool) else str(v)
        missing = [
            k for k, v in (spec.get("inputs") or {}).items() if v.get("required") and not inputs.get(k)
        ]
        assert not missing, f"{name}: required input(s) {missing} missing"
        result: subprocess.CompletedProcess[str] | None = None
        for step in spec["runs"]["steps"]:
            assert "run" in step and step.get("shell") == "bash", step
            env = {k: self.substitute(str(v), inputs) for k, v in (step.get("env") or {}).items()}
            script = self.temp / "step.sh"
            script.write_text(self.substitute(step["run"], inputs))
            result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=self.workspace,
                                    env=self.env(env), capture_output=True, text=True, timeout=300)  # fmt: skip
            self.log.append(
                f"--- {name}: {step.get('name')} -> {result.returncode}\n{result.stdout}{result.stderr}"
            )
            if result.returncode != 0:
                return result
        assert result is not None
        return result


def workspace(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


@pytest.fixture
def api(secured: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=secured.url + "/api/v1/main", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ) as c:
        yield c


def common(server: ServerProcess, **auth: str) -> dict[str, str]:
    return {
        "server": server.url,
        "roostctlPackage": str(REPO),
        "pipArgs": PIP_ARGS,
        **(auth or {"apiToken": TOKEN}),
    }


def test_validate_flows(secured: ServerProcess, runner_temp: Path, tmp_path: Path, api: httpx.Client) -> None:
    ws = workspace(tmp_path / "repo", {"flows/a.yml": FLOW.format(id="a", ns="ci.team"),
                                       "flows/sub/b.yml": FLOW.format(id="b", ns="ci.team.sub"),
                                       "broken/x.yml": BROKEN})  # fmt: skip
    runner = Runner(ws, runner_temp)
    ok = runner.action(
        "validate-flows", {"directory": "./flows", **common(secured, user="ci-user", password="ci-pass")}
    )
    assert ok.returncode == 0, "\n".join(runner.log)
    assert "2 valid flow(s), 0 failed" in ok.stdout
    assert (runner_temp / "roostctl-venv" / "bin" / "roostctl").exists()  # installed by the action's pip step
    bad = runner.action("validate-flows", {"directory": "broken", **common(secured)})
    assert bad.returncode == 1, "\n".join(runner.log)
    assert "io.kestra.plugin.core.log.Nope" in bad.stdout and "line 5" in bad.stdout
    assert api.get("/flows/ci.team/a").status_code == 404  # validating deploys nothing
    wrong = runner.action(
        "validate-flows", {"directory": "./flows", **common(secured, apiToken="not-the-token")}
    )
    assert wrong.returncode == 3 and "authentication failed" in wrong.stderr


def test_deploy_flows(secured: ServerProcess, runner_temp: Path, tmp_path: Path, api: httpx.Client) -> None:
    ws = workspace(tmp_path / "repo", {"flows/a.yml": FLOW.format(id="a", ns="dev.team"),
                                       "flows/sub/b.yml": FLOW.format(id="b", ns="dev.team.sub")})  # fmt: skip
    runner = Runner(ws, runner_temp)
    first = runner.action(
        "deploy-flows", {"directory": "flows", "namespace": "deploy.prod", **common(secured)}
    )
    assert first.returncode == 0, "\n".join(runner.log)
    assert {f["id"] for f in api.get("/flows/deploy.prod").json()} == {"a", "b"}
    again = runner.action(
        "deploy-flows", {"directory": "flows", "namespace": "deploy.prod", **common(secured)}
    )
    assert again.returncode == 1 and "use --override" in again.stdout
    (ws / "flows" / "a.yml").write_text(FLOW.format(id="a", ns="dev.team").replace("hello from a", "changed"))
    override = runner.action("deploy-flows", {"directory": "flows", "namespace": "deploy.prod", "override": True,
                                              **common(secured, user="ci-user", password="ci-pass")})  # fmt: skip
    assert override.returncode == 0, "\n".join(runner.log)
    flow = api.get("/flows/deploy.prod/a", params={"source": "true"}).json()
    assert flow["revision"] == 2 and "changed" in flow["source"]
    own = runner.action(
        "deploy-flows", {"directory": "flows", **common(secured)}
    )  # each flow in its own namespace
    assert own.returncode == 0 and api.get("/flows/dev.team.sub/b").status_code == 200


def test_deploy_namespace_files(
    secured: ServerProcess, runner_temp: Path, tmp_path: Path, api: httpx.Client
) -> None:
    ws = workspace(
        tmp_path / "repo",
        {"config/app.json": '{"a": 1}', "config/sql/q.sql": "select 1;", "README.md": "# hi"},
    )
    runner = Runner(ws, runner_temp)
    folder = runner.action("deploy-namespace-files", {"localPath": "./config", "namespace": "files.ci",
                                                      "namespacePath": "settings", **common(secured)})  # fmt: skip
    assert folder.returncode == 0, "\n".join(runner.log)
    assert (
        api.get("/namespaces/files.ci/files", params={"path": "/settings/config/sql/q.sql"}).content
        == b"select 1;"
    )
    single = runner.action("deploy-namespace-files", {"localPath": "README.md", "namespace": "files.ci",
                                                      "namespacePath": "docs/README.md", **common(secured)})  # fmt: skip
    assert single.returncode == 0, "\n".join(runner.log)
    assert api.get("/namespaces/files.ci/files", params={"path": "/docs/README.md"}).content == b"# hi"
    exists = runner.action("deploy-namespace-files", {"localPath": "README.md", "namespace": "files.ci",
                                                      "namespacePath": "docs/README.md", **common(secured)})  # fmt: skip
    assert exists.returncode == 1 and "already exists" in exists.stdout
    replaced = runner.action("deploy-namespace-files", {"localPath": "README.md", "namespace": "files.ci",
                                                        "namespacePath": "docs/README.md", "override": "true",
                                                        **common(secured)})  # fmt: skip
    assert replaced.returncode == 0


def test_the_example_workflow(
    secured: ServerProcess, runner_temp: Path, tmp_path: Path, api: httpx.Client
) -> None:
    """The release notes' workflow as the repository ships it: its jobs in order, secrets as a runner passes them."""
    ws = workspace(tmp_path / "repo", {"kestra/flows/etl.yml": FLOW.format(id="etl", ns="wf.data"),
                                       "kestra/flows/reports/daily.yml": FLOW.format(id="daily", ns="wf.reports"),
                                       "config/settings.yml": "retries: 3\n"})  # fmt: skip
    runner = Runner(ws, runner_temp, secrets={"ROOST_HOSTNAME": secured.url, "ROOST_API_TOKEN": TOKEN})
    workflow = YAML(typ="safe").load(WORKFLOW.read_text())
    jobs = workflow["jobs"]
    done: list[str] = []
    while len(done) < len(jobs):
        ready = [name for name, job in jobs.items() if name not in done
                 and all(n in done for n in ([job["needs"]] if isinstance(job.get("needs"), str) else job.get("needs", [])))]  # fmt: skip
        assert ready, "the jobs' needs form a cycle"
        for name in ready:
            for step in jobs[name]["steps"]:
                uses = step["uses"]
                if uses.startswith("actions/checkout@"):
                    continue  # the workspace is the checkout
                assert uses.startswith("./.github/actions/"), uses
                given = {
                    k: runner.substitute(str(v), {}) if isinstance(v, str) else v
                    for k, v in (step.get("with") or {}).items()
                }
                # offline: roostctl comes from this checkout instead of the package index
                given.update(roostctlPackage=str(REPO), pipArgs=PIP_ARGS)
                result = runner.action(uses.rsplit("/", 1)[-1], given)
                assert result.returncode == 0, f"job {name}: " + "\n".join(runner.log)
            done.append(name)
    assert done.index("validate") < done.index("deploy")
    assert api.get("/flows/wf.data/etl").status_code == 200
    assert api.get("/flows/wf.reports/daily").status_code == 200
    r = api.get("/namespaces/engineering/files", params={"path": "/config/config/settings.yml"})
    assert r.status_code == 200 and r.content == b"retries: 3\n"
