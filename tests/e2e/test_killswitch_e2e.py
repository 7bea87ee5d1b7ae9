"""Kill switches, roles and the audit log end to end: real server processes, the split webserver/executor
form over one store, roostctl as a process, and the server's --ignore-* flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from roost.server.config import hash_token

from tests.e2e.conftest import ServerProcess, flow_yaml

pytestmark = pytest.mark.e2e
ADMIN, DEV = "ks_admin_token_0123456789", "ks_dev_token_0123456789"
LONG = 'tasks:\n  - id: nap\n    type: io.kestra.plugin.scripts.shell.Commands\n    commands: ["sleep 60"]\n'
YAML = {"content-type": "application/x-yaml"}


def config(root: Path) -> Path:
    path = root / "roost.yaml"
    path.write_text(f"""
server:
  apiTokens:
    - {{name: oncall, tokenHash: "{hash_token(ADMIN)}", roles: [ADMIN]}}
    - {{name: dev, tokenHash: "{hash_token(DEV)}", roles: [{{role: DEVELOPER, tenant: main, namespace: team}}]}}
""")  # fmt: skip
    return path


def client(server: ServerProcess, token: str = ADMIN) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def state(api: httpx.Client, ex_id: str) -> str:
    return str(api.get(f"/api/v1/main/executions/{ex_id}").json()["state"]["current"])


def until(api: httpx.Client, ex_id: str, wanted: set[str], timeout: float) -> float:
    """Seconds until the execution is in one of ``wanted`` (fails past ``timeout``)."""
    start = time.monotonic()
    while True:
        current = state(api, ex_id)
        if current in wanted:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{ex_id} is {current} after {timeout} s, expected {wanted}")
        time.sleep(0.05)


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("ks-split")
    db = f"sqlite:///{root / 'shared.db'}"
    cfg = config(root)
    executor = ServerProcess("executor", root / "data", db_url=db, http=False, config=cfg).wait_ready()
    web = ServerProcess("webserver", root / "data", db_url=db, config=cfg).wait_ready()
    yield web
    web.stop()
    executor.stop()


def test_a_switch_made_through_the_webserver_acts_in_the_executor_within_a_second(
    split: ServerProcess,
) -> None:
    with client(split) as api:
        for ns in ("team.a", "team.b"):
            assert (
                api.post("/api/v1/main/flows", content=flow_yaml(LONG, "long", ns), headers=YAML).status_code
                == 200
            )
        a = [api.post("/api/v1/main/executions/team.a/long").json()["id"] for _ in range(3)]
        b = api.post("/api/v1/main/executions/team.b/long").json()["id"]
        for ex_id in [*a, b]:
            until(api, ex_id, {"RUNNING"}, 30)
        time.sleep(0.5)  # the shell steps run
        r = api.post("/api/v1/kill-switches", json={"name": "stop team.a", "tenantId": "main", "namespace": "team.a",
                                                    "evaluationType": "KILL", "startDate": now(), "description": "incident 42"})  # fmt: skip
        assert r.status_code == 200, r.text
        switch = r.json()
        waits = [until(api, ex_id, {"KILLED"}, 10) for ex_id in a]
        assert max(waits) < 2.0, waits  # the executor picks it up within a second (then the kill itself)
        assert state(api, b) == "RUNNING"  # another namespace is untouched
        fresh = api.post("/api/v1/main/executions/team.a/long").json()
        assert fresh["state"]["current"] == "KILLED"  # the webserver's own engine kills new ones at creation
        labels = api.get(f"/api/v1/main/executions/{a[0]}").json()["labels"]
        assert {"key": "system.killSwitch", "value": switch["id"]} in labels
        banners = api.get("/api/v1/main/kill-switches/banners", params={"namespace": "team.a"}).json()
        assert [x["name"] for x in banners] == ["stop team.a"]
        assert api.delete(f"/api/v1/kill-switches/{switch['id']}").status_code == 200
        time.sleep(1.2)  # the executor forgets it
        again = api.post("/api/v1/main/executions/team.a/long").json()
        until(api, again["id"], {"RUNNING"}, 10)
        for ex_id in (again["id"], b):
            api.delete(f"/api/v1/main/executions/{ex_id}/kill")
        audit = api.get("/api/v1/main/auditlogs/search", params={"resources": "KILL_SWITCH"}).json()
        assert {e["auditLog"]["type"] for e in audit["results"]} == {"CREATE", "DELETE"}
        assert all(e["auditLog"]["userId"] == "token:oncall" for e in audit["results"])


def test_roles_are_enforced_across_the_split(split: ServerProcess) -> None:
    with client(split, DEV) as dev:
        r = dev.post(
            "/api/v1/kill-switches",
            json={"name": "x", "tenantId": "main", "evaluationType": "KILL", "startDate": now()},
        )
        assert r.status_code == 403
        assert dev.get("/api/v1/main/auditlogs/search").status_code == 403
        assert (
            dev.post(
                "/api/v1/main/flows", content=flow_yaml(LONG, "mine", "team.dev"), headers=YAML
            ).status_code
            == 200
        )
        assert (
            dev.post(
                "/api/v1/main/flows", content=flow_yaml(LONG, "theirs", "other"), headers=YAML
            ).status_code
            == 403
        )
        me = dev.get("/api/v1/me").json()
        assert me["id"] == "token:dev" and me["restricted"] is True


# -- roostctl -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("ks-ctl")
    proc = ServerProcess("local", root / "data", config=config(root)).wait_ready()
    yield proc
    proc.stop()


def roostctl(
    server: ServerProcess, home: Path, *args: str, token: str = ADMIN
) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("roostctl")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "roost.cli.ctl"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOSTCTL_")}
    env.update(HOME=str(home), COLUMNS="200", NO_COLOR="1", ROOSTCTL_HOST=server.url, ROOSTCTL_TOKEN=token)
    return subprocess.run(command + list(args), capture_output=True, text=True, env=env, timeout=120)


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_roostctl_killswitch_and_auditlogs(local: ServerProcess, tmp_path: Path) -> None:
    with client(local) as api:
        api.post("/api/v1/main/flows", content=flow_yaml(LONG, "long", "team.ctl"), headers=YAML)
        ex_id = api.post("/api/v1/main/executions/team.ctl/long").json()["id"]
        until(api, ex_id, {"RUNNING"}, 30)
        created = as_json(roostctl(local, tmp_path, "killswitch", "create", "ctl stop", "--type", "kill", "-n", "team.ctl",
                                   "--end", "PT1H", "--reason", "runaway loop", "-o", "json"))  # fmt: skip
        assert created["status"] == "ACTIVE" and created["namespace"] == "team.ctl" and created["endDate"]
        until(api, ex_id, {"KILLED"}, 10)
        table = roostctl(local, tmp_path, "killswitch", "list")
        assert table.returncode == 0 and "ctl stop" in table.stdout and "namespace team.ctl" in table.stdout
        assert "1 active" in table.stdout
        later = as_json(
            roostctl(
                local,
                tmp_path,
                "ks",
                "update",
                created["id"],
                "--type",
                "CANCEL",
                "--start",
                "2h",
                "--end",
                "3h",
                "-o",
                "json",
            )
        )
        assert later["evaluationType"] == "CANCEL" and later["status"] == "SCHEDULED"
        assert roostctl(local, tmp_path, "killswitch", "delete", created["id"]).returncode == 0
        listed = as_json(
            roostctl(local, tmp_path, "killswitch", "list", "--status", "ARCHIVED", "-o", "json")
        )
        assert [s["id"] for s in listed] == [created["id"]] and listed[0]["deleted"] is True
        missing = roostctl(local, tmp_path, "killswitch", "delete", "no-such-switch")
        assert missing.returncode == 4 and "not found" in missing.stderr
        bad = roostctl(local, tmp_path, "killswitch", "create", "x", "--type", "KILL", "--end", "yesterday")
        assert bad.returncode == 2 and "--end" in bad.stderr
        refused = roostctl(local, tmp_path, "killswitch", "create", "x", "--type", "KILL", token=DEV)
        assert refused.returncode == 3 and "Permission denied" in refused.stderr
        entries = as_json(
            roostctl(local, tmp_path, "auditlogs", "list", "--resource", "KILL_SWITCH", "-o", "json")
        )
        assert [e["type"] for e in entries] == ["DELETE", "UPDATE", "CREATE"]  # newest first
        table = roostctl(local, tmp_path, "auditlogs", "list", "--actor", "token:oncall", "--since", "1h")
        assert table.returncode == 0 and "KILL_SWITCH" in table.stdout and "FLOW" in table.stdout


def test_server_ignore_flags_drop_the_messages_of_those_flows(tmp_path: Path) -> None:
    proc = ServerProcess("local", tmp_path / "data").wait_ready()
    try:
        with httpx.Client(base_url=proc.url, timeout=30) as api:
            for fid in ("quiet", "loud"):
                api.post("/api/v1/main/flows", content=flow_yaml("tasks:\n  - id: l\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n",
                                                                  fid, "team.ign"), headers=YAML)  # fmt: skip
    finally:
        proc.stop()
    proc = ServerProcess("local", tmp_path / "data", extra=["--ignore-flows", "team.ign.quiet"]).wait_ready()
    try:
        with httpx.Client(base_url=proc.url, timeout=30) as api:
            quiet = api.post("/api/v1/main/executions/team.ign/quiet").json()["id"]
            loud = api.post("/api/v1/main/executions/team.ign/loud", params={"wait": "true"}).json()
            assert loud["state"]["current"] == "SUCCESS"
            time.sleep(0.5)
            assert state(api, quiet) == "CREATED"  # its start message was dropped
        assert "ignoring every message" in proc.log.read_text()
    finally:
        proc.stop()
    bad = subprocess.run([sys.executable, "-m", "roost.cli.main", "server", "local", "--data-dir", str(tmp_path / "x"),
                          "--ignore-flows", "noflow"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "namespace.flowId" in bad.stderr
