"""Separate components over one store: a webserver process hands executions to an executor process."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import ServerProcess, flow_yaml

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("roost-split")
    db = f"sqlite:///{root / 'shared.db'}"
    executor = ServerProcess("executor", root / "data", db_url=db, http=False).wait_ready()
    scheduler = ServerProcess("scheduler", root / "data", db_url=db, http=False).wait_ready()
    web = ServerProcess("webserver", root / "data", db_url=db).wait_ready()
    yield web
    web.stop()
    scheduler.stop()
    executor.stop()


def test_webserver_and_executor_processes(split: ServerProcess) -> None:
    with httpx.Client(base_url=split.url + "/api/v1/main", timeout=30) as api:
        assert httpx.get(split.url + "/health").json() == {
            "status": "UP",
            "component": "webserver",
            "executor": False,
        }
        src = flow_yaml("""
            inputs:
              - id: who
                type: STRING
            tasks:
              - id: hi
                type: io.kestra.plugin.core.debug.Return
                format: "hi {{ inputs.who }}"
            outputs:
              - id: said
                type: STRING
                value: "{{ outputs.hi.value }}"
            """, "split")  # fmt: skip
        assert (
            api.post("/flows", content=src, headers={"content-type": "application/x-yaml"}).status_code == 200
        )
        ex = api.post(
            "/executions/e2e.team/split", params={"wait": "true"}, files={"who": (None, "there")}
        ).json()
        assert ex["state"]["current"] == "SUCCESS" and ex["outputs"] == {"said": "hi there"}
        long = flow_yaml(
            "tasks:\n  - id: nap\n    type: io.kestra.plugin.core.flow.Sleep\n    duration: PT60S\n",
            "split-long",
        )
        assert (
            api.post("/flows", content=long, headers={"content-type": "application/x-yaml"}).status_code
            == 200
        )
        run = api.post("/executions/e2e.team/split-long").json()
        deadline = time.monotonic() + 15
        while api.get(f"/executions/{run['id']}").json()["state"]["current"] != "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert api.delete(f"/executions/{run['id']}/kill").status_code == 202
        while (state := api.get(f"/executions/{run['id']}").json()["state"]["current"]) != "KILLED":
            assert time.monotonic() < deadline + 10, state
            time.sleep(0.05)


def test_scheduler_process_starts_scheduled_executions(split: ServerProcess) -> None:
    with httpx.Client(base_url=split.url + "/api/v1/main", timeout=30) as api:
        src = flow_yaml("""
            tasks:
              - id: tick
                type: io.kestra.plugin.core.log.Log
                message: tick
            triggers:
              - id: every-second
                type: io.kestra.plugin.core.trigger.Schedule
                withSeconds: true
                cron: "* * * * * *"
            """, "ticking")  # fmt: skip
        assert (
            api.post("/flows", content=src, headers={"content-type": "application/x-yaml"}).status_code == 200
        )
        deadline = time.monotonic() + 20
        params = {"filters[flowId][EQUALS]": "ticking", "filters[state][EQUALS]": "SUCCESS"}
        while api.get("/executions/search", params=params).json()["total"] < 2:
            assert time.monotonic() < deadline, "the scheduler process started nothing"
            time.sleep(0.2)
        found = api.get("/executions/search", params=params).json()["results"][0]
        assert found["trigger"]["id"] == "every-second"
        triggers = api.get("/triggers/search", params={"filters[flowId][EQUALS]": "ticking"}).json()
        assert (
            triggers["total"] == 1 and triggers["results"][0]["triggerContext"]["triggerId"] == "every-second"
        )
        body = {
            "triggers": [{"namespace": "e2e.team", "flowId": "ticking", "triggerId": "every-second"}],
            "disabled": True,
        }
        assert api.post("/triggers/set-disabled/by-triggers", json=body).status_code == 200
        assert api.get("/triggers/search", params={"filters[flowId][EQUALS]": "ticking"}).json()["results"][0][
            "triggerContext"]["disabled"] is True  # fmt: skip
        assert api.delete("/flows/e2e.team/ticking").status_code == 204


def test_new_actions_cross_from_webserver_to_executor(split: ServerProcess) -> None:
    """Replay, force-run, unqueue and kill without cascade are messages the webserver leaves for the executor."""
    ended = ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED")
    yaml_body = {"content-type": "application/x-yaml"}

    def until(api: httpx.Client, execution_id: str, *states: str) -> dict:
        deadline = time.monotonic() + 20
        while (ex := api.get(f"/executions/{execution_id}").json())["state"]["current"] not in states:
            assert time.monotonic() < deadline, ex["state"]
            time.sleep(0.05)
        return ex

    with httpx.Client(base_url=split.url + "/api/v1/main", timeout=30) as api:
        steps = flow_yaml("""
            inputs:
              - id: n
                type: INT
                defaults: 1
            tasks:
              - id: one
                type: io.kestra.plugin.core.debug.Return
                format: "{{ inputs.n }}"
              - id: check
                type: io.kestra.plugin.core.execution.Fail
                runIf: "{{ inputs.n == 1 }}"
            """, "split-steps")  # fmt: skip
        assert api.post("/flows", content=steps, headers=yaml_body).status_code == 200
        failed = api.post("/executions/e2e.team/split-steps", params={"wait": "true"}).json()
        assert failed["state"]["current"] == "FAILED"
        check = next(t for t in failed["taskRunList"] if t["taskId"] == "check")
        replayed = api.post(f"/executions/{failed['id']}/replay-with-inputs", params={"taskRunId": check["id"]},
                            files={"n": (None, "2")}).json()  # fmt: skip
        done = until(api, replayed["id"], *ended)
        assert done["state"]["current"] == "SUCCESS"
        assert {t["taskId"]: t["state"]["current"] for t in done["taskRunList"]} == {
            "one": "SUCCESS",
            "check": "SKIPPED",
        }
        queue = flow_yaml("""
            concurrency:
              limit: 1
            tasks:
              - id: nap
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT60S
            """, "split-queue")  # fmt: skip
        assert api.post("/flows", content=queue, headers=yaml_body).status_code == 200
        first = api.post("/executions/e2e.team/split-queue").json()
        until(api, first["id"], "RUNNING")
        second = api.post("/executions/e2e.team/split-queue").json()
        third = api.post("/executions/e2e.team/split-queue").json()
        assert until(api, second["id"], "QUEUED") and until(api, third["id"], "QUEUED")
        assert api.post(f"/executions/{second['id']}/force-run").status_code == 200
        until(api, second["id"], "RUNNING")
        assert (
            api.post(f"/executions/{third['id']}/unqueue", params={"state": "CANCELLED"}).status_code == 200
        )
        until(api, third["id"], "CANCELLED")
        assert api.request("DELETE", "/executions/kill/by-ids", json=[first["id"], second["id"]]).json() == {
            "count": 2
        }
        for ex in (first, second):
            assert until(api, ex["id"], *ended)["state"]["current"] == "KILLED"
