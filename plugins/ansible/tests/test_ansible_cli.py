"""AnsibleCLI against real ansible-core (``ansible_connection=local``, offline)."""

from __future__ import annotations

import base64
import json
import threading
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from ansible_testlib import TWO_HOSTS, playbook
from roost.testing import Runtime, TaskRunContext, run_task
from roost.testing.suite import TypeSuite
from roost_ansible.tasks import TASKS, AnsibleCLI, AnsibleTaskError

# The acceptance flow's task (acceptance/flows/ansible_playbook.yaml), property for property.
ACCEPTANCE_TASK = {
    "inputFiles": {
        "inventory.ini": "localhost ansible_connection=local\n",
        "myplaybook.yml": (
            "---\n"
            "- hosts: localhost\n"
            "  tasks:\n"
            "    - name: Print Hello World\n"
            "      debug:\n"
            '        msg: "Hello, World!"\n'
        ),
    },
    "assets": {"enableAuto": True},
    "commands": ["ansible-playbook -i inventory.ini myplaybook.yml"],
}

FAIL_ON_WEB2_TASKS = (
    """
    - name: Say hello
      debug:
        msg: "hello {{ inventory_hostname }}"
    """,
    """
    - name: Break web2
      fail:
        msg: "disk full on {{ inventory_hostname }}"
      when: inventory_hostname == 'web2'
    """,
    """
    - name: After the failure
      command: echo done
    """,
)
FAIL_ON_WEB2 = playbook(*FAIL_ON_WEB2_TASKS)


def _direct(props: dict, **ctx_kw):
    """A task and a context built by hand (literal properties only), to see a failure's outputs."""
    task = AnsibleCLI.model_validate({"id": "ansible", "type": AnsibleCLI.type_id, **props})
    ctx = TaskRunContext(Runtime.in_memory(), {}, namespace="company.team", task_id="ansible", **ctx_kw)
    return task, ctx


def _text(result) -> str:
    return "\n".join(result.messages)


def test_plugin_registers_the_type_through_its_entry_point():
    (ep,) = [e for e in entry_points(group="roost") if e.name == "ansible"]
    registered = []
    ep.load().register_task_types(register=lambda *types: registered.extend(types))
    assert [t.type_id for t in registered] == ["io.kestra.plugin.ansible.cli.AnsibleCLI"]
    schema = AnsibleCLI.model_json_schema(by_alias=True)
    assert "commands" in schema["required"]
    for name in ("commands", "ansibleConfig", "outputLogFile", "containerImage", "inputFiles", "taskRunner"):
        assert schema["properties"][name].get("description"), name
    assert schema["properties"]["containerImage"]["default"] == "cytopia/ansible:latest-tools"


def test_acceptance_flow_task_runs_hello_world_and_emits_the_host():
    result = run_task(AnsibleCLI, **ACCEPTANCE_TASK)

    assert result.state == "SUCCESS"
    assert result.outputs["exitCode"] == 0
    # facts gathering + the debug task
    assert result.outputs["stats"] == {
        "localhost": {
            "ok": 2,
            "changed": 0,
            "failures": 0,
            "unreachable": 0,
            "skipped": 0,
            "rescued": 0,
            "ignored": 0,
        }
    }
    hello = [t for t in result.outputs["tasks"] if t["task"] == "Print Hello World"]
    assert hello == [
        {
            "playbook": "myplaybook.yml",
            "play": "localhost",
            "task": "Print Hello World",
            "action": "ansible.builtin.debug",
            "host": "localhost",
            "status": "ok",
            "changed": False,
            "ignored": False,
            "msg": "Hello, World!",
            "startedAt": hello[0]["startedAt"],
            "endedAt": hello[0]["endedAt"],
        }
    ]
    (pb,) = result.outputs["playbooks"]
    assert [t["name"] for t in pb["plays"][0]["tasks"]] == ["Gathering Facts", "Print Hello World"]
    assert pb["plays"][0]["tasks"][1]["hosts"] == [
        {"host": "localhost", "status": "ok", "result": {"changed": False, "msg": "Hello, World!"}}
    ]

    # ansible's own display is in the logs, without ansible-runner's event tokens
    text = _text(result)
    assert "TASK [Print Hello World]" in text and '"msg": "Hello, World!"' in text and "PLAY RECAP" in text
    assert "\x1b" not in text

    (bundle,) = result.assets
    assert bundle.outputs == []
    (asset,) = bundle.inputs
    assert asset.id == "localhost"
    assert asset.type == "io.kestra.core.models.assets.External"
    assert asset.metadata["ansible_connection"] == "local"
    assert asset.metadata["inventory"] == "inventory.ini"

    # ansible-runner's artifact layout holds the job events
    workdir = result.context.working_dir
    events = [json.loads(p.read_text()) for p in workdir.glob(".roost-ansible/artifacts/*/job_events/*.json")]
    assert "playbook_on_stats" in {e["event"] for e in events}


def test_failure_on_one_host_of_two_names_host_and_task_and_keeps_stats():
    props = {
        "inputFiles": {"inventory.ini": TWO_HOSTS, "site.yml": FAIL_ON_WEB2},
        "commands": ["ansible-playbook -i inventory.ini site.yml"],
    }
    result = run_task(AnsibleCLI, raise_on_failure=False, **props)
    assert result.state == "FAILED"
    assert "host 'web2' failed task 'Break web2': disk full on web2" in result.error
    assert "exit code 2" in result.error
    assert any(log["level"] == "ERROR" and "disk full on web2" in log["message"] for log in result.logs)

    task, ctx = _direct(
        {
            **props,
            "inputFiles": {"inventory.ini": TWO_HOSTS, "site.yml": playbook(*FAIL_ON_WEB2_TASKS, raw=False)},
        }
    )
    with pytest.raises(AnsibleTaskError) as caught:
        task.run(ctx)
    out = caught.value.outputs.as_dict()
    assert out["exitCode"] == 2
    assert out["stats"]["web1"] == {
        "ok": 2,
        "changed": 1,
        "failures": 0,
        "unreachable": 0,
        "skipped": 1,
        "rescued": 0,
        "ignored": 0,
    }
    assert out["stats"]["web2"]["failures"] == 1 and out["stats"]["web2"]["ok"] == 1
    broken = [t for t in out["tasks"] if t["task"] == "Break web2"]
    assert {(t["host"], t["status"]) for t in broken} == {("web1", "skipped"), ("web2", "failed")}
    after = [t for t in out["tasks"] if t["task"] == "After the failure"]
    assert [(t["host"], t["status"], t["changed"]) for t in after] == [("web1", "ok", True)]


def test_ignored_failure_keeps_success_and_is_counted():
    book = playbook(
        """
        - name: Tolerated
          command: /bin/false
          ignore_errors: true
        """
    )
    result = run_task(
        AnsibleCLI,
        inputFiles={
            "hosts.yml": "all:\n  hosts:\n    solo:\n      ansible_connection: local\n",
            "pb.yml": book,
        },
        commands=["ansible-playbook -i hosts.yml pb.yml"],
    )
    assert result.state == "SUCCESS"
    assert result.outputs["stats"]["solo"]["ignored"] == 1
    (tolerated,) = result.outputs["tasks"]
    assert tolerated["status"] == "failed" and tolerated["ignored"] is True
    assert tolerated["msg"] == "non-zero return code"
    # an ignored failure is logged as a warning, not an error
    assert not [log for log in result.logs if log["level"] == "ERROR"]


def test_unparseable_inventory_ends_in_warning_naming_the_file_and_cause():
    result = run_task(
        AnsibleCLI,
        inputFiles={
            "broken.yml": "- a list\n- not a mapping\n",
            "pb.yml": playbook("- debug:\n    msg: hi"),
        },
        assets={"enableAuto": True},
        commands=["ansible-playbook -i broken.yml pb.yml"],
    )
    assert result.state == "WARNING"
    assert "inventory 'broken.yml' could not be parsed" in result.error
    assert "YAML inventory has invalid structure" in result.error
    assert result.outputs["stats"] == {}  # Ansible ran against no host
    assert result.assets == []
    assert any(log["level"] == "WARN" and "broken.yml" in log["message"] for log in result.logs)


def test_playbook_failure_message_mentions_the_bad_inventory_too():
    result = run_task(
        AnsibleCLI,
        raise_on_failure=False,
        inputFiles={
            "inv.ini": "[web\nweb1 ansible_connection=local\n",
            "pb.yml": "- hosts: all\n  tasks: [oops\n",
        },
        commands=["ansible-playbook -i inv.ini pb.yml"],
    )
    assert result.state == "FAILED"
    assert "Command failed: [ERROR]:" in result.error  # ansible's own first error line
    assert "inventory 'inv.ini' could not be parsed (ini plugin:" in result.error


def test_a_failing_shell_command_is_named_in_the_error():
    result = run_task(
        AnsibleCLI,
        raise_on_failure=False,
        commands=["ansible-playbook --version >/dev/null", "no-such-tool --flag"],
    )
    assert result.state == "FAILED"
    assert "no-such-tool: command not found (exit code 127)" in result.error


def test_ansible_config_is_written_and_used():
    config = "[defaults]\ninventory = hosts.ini\nstdout_callback = minimal\n"
    result = run_task(
        AnsibleCLI,
        inputFiles={
            "hosts.ini": "[db]\ndb1 ansible_connection=local\n",
            "pb.yml": playbook("- name: where\n  debug:\n    msg: '{{ ansible_config_file }}'"),
        },
        ansibleConfig=config,
        outputLogFile=True,
        assets={"enableAuto": True},
        commands=["ansible-playbook pb.yml"],  # no -i: the inventory comes from ansible.cfg
    )
    assert result.state == "SUCCESS"
    workdir = result.context.working_dir
    assert (workdir / "ansible.cfg").read_text() == config
    (where,) = result.outputs["tasks"]
    assert where["host"] == "db1"
    assert where["msg"] == str(workdir / "ansible.cfg")
    # the cfg's stdout callback stays the display format under ansible-runner's callback
    assert any(log["message"].startswith("db1 | SUCCESS") for log in result.logs)
    (asset,) = result.assets[0].inputs
    assert (asset.id, asset.metadata["groups"], asset.metadata["inventory"]) == ("db1", ["db"], "hosts.ini")
    log = result.context.read_file(result.outputs["outputFiles"]["log"]).decode()
    assert "n=ansible" in log and "db1 | SUCCESS" in log


def test_ansible_cfg_from_input_files_wins_over_ansible_config():
    result = run_task(
        AnsibleCLI,
        inputFiles={
            "ansible.cfg": "[defaults]\ninventory = mine.ini\n",
            "mine.ini": "mine ansible_connection=local\n",
            "pb.yml": playbook("- debug:\n    msg: hi"),
        },
        ansibleConfig="[defaults]\ninventory = other.ini\n",
        commands=["ansible-playbook pb.yml"],
    )
    assert list(result.outputs["stats"]) == ["mine"]
    assert any("ignoring the ansibleConfig property" in log["message"] for log in result.logs)


def test_env_before_commands_vars_protocol_and_several_playbooks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative working folder (ROOST_HOME=.roost) must work as well
    result = run_task(
        AnsibleCLI,
        runtime=Runtime.in_memory(Path("home")),
        inputFiles={
            "inventory.ini": TWO_HOSTS,
            "one.yml": playbook("- name: greet\n  debug:\n    msg: \"{{ lookup('env', 'GREETING') }}\""),
            "two.yml": playbook("- name: touch\n  command: echo again", hosts="web1"),
        },
        env={"GREETING": "hello from env"},
        beforeCommands=['echo "::{\\"outputs\\":{\\"greeting\\":\\"$GREETING\\"}}::"'],
        commands=["ansible-playbook -i inventory.ini one.yml", "ansible-playbook -i inventory.ini two.yml"],
    )
    assert result.state == "SUCCESS"
    assert not result.context.working_dir.is_absolute()
    assert result.outputs["vars"] == {"greeting": "hello from env"}
    greet = [t for t in result.outputs["tasks"] if t["task"] == "greet"]
    assert {t["msg"] for t in greet} == {"hello from env"}
    assert [pb["name"] for pb in result.outputs["playbooks"]] == ["one.yml", "two.yml"]
    assert result.outputs["stats"]["web1"]["ok"] == 2 and result.outputs["stats"]["web1"]["changed"] == 1
    assert result.outputs["stats"]["web2"]["ok"] == 1


def test_docker_runner_without_engine_fails_with_a_clear_message(tmp_path: Path):
    result = run_task(
        AnsibleCLI,
        raise_on_failure=False,
        inputFiles={"pb.yml": playbook("- debug:\n    msg: hi")},
        taskRunner={
            "type": "io.kestra.plugin.scripts.runner.docker.Docker",
            "host": f"unix://{tmp_path}/none.sock",
        },
        commands=["ansible-playbook -i localhost, pb.yml"],
    )
    assert result.state == "FAILED"
    assert f"No Docker engine is reachable at unix://{tmp_path}/none.sock" in result.error
    assert "io.kestra.plugin.core.runner.Process" in result.error


def test_secrets_never_reach_logs_outputs_or_errors(monkeypatch):
    secret = "s3cr3t-Pa55word"
    monkeypatch.setenv("SECRET_DB_PASSWORD", base64.b64encode(secret.encode()).decode())
    inventory = {"inventory.ini": "db1 ansible_connection=local\n"}
    shown = playbook(
        "- name: show\n  debug:\n    msg: 'password is {{ db_password }}'",
        "- name: hidden\n  debug:\n    msg: '{{ db_password }}'\n  no_log: true",
    )
    result = run_task(
        AnsibleCLI,
        inputFiles={**inventory, "pb.yml": shown},
        env={"DB_PASSWORD": "{{ secret('DB_PASSWORD') }}"},
        commands=[
            "ansible-playbook -i inventory.ini pb.yml -e \"db_password={{ secret('DB_PASSWORD') }}\" -v"
        ],
    )
    assert result.state == "SUCCESS"
    show, hidden = result.outputs["tasks"]
    assert show["msg"] == "password is ******"
    assert hidden["msg"].startswith(
        "the output has been hidden"
    )  # Ansible's no_log, kept by the event callback
    assert secret not in json.dumps(result.outputs)
    assert secret not in _text(result)
    assert "password is ******" in _text(result)

    failing = playbook('- name: leak\n  fail:\n    msg: \'rejected {{ lookup("env", "DB_PASSWORD") }}\'')
    failed = run_task(
        AnsibleCLI,
        raise_on_failure=False,
        inputFiles={**inventory, "pb.yml": failing},
        env={"DB_PASSWORD": "{{ secret('DB_PASSWORD') }}"},
        commands=["ansible-playbook -i inventory.ini pb.yml"],
    )
    assert failed.state == "FAILED"
    assert "host 'db1' failed task 'leak': rejected ******" in failed.error
    assert secret not in failed.error and secret not in _text(failed)


def test_kill_stops_the_playbook():
    task, ctx = _direct(
        {
            "inputFiles": {
                "inventory.ini": "slow ansible_connection=local\n",
                "pb.yml": playbook("- name: wait\n  command: sleep 60"),
            },
            "commands": ["ansible-playbook -i inventory.ini pb.yml"],
        }
    )
    caught: list[BaseException] = []

    def work():
        try:
            task.run(ctx)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            caught.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    deadline = time.monotonic() + 30
    while not any("TASK [wait]" in log["message"] for log in ctx.logs):
        assert time.monotonic() < deadline, "the playbook never reached its task"
        time.sleep(0.05)
    time.sleep(0.3)
    started = time.monotonic()
    ctx.fire_kill()
    thread.join(15)
    assert not thread.is_alive()
    assert time.monotonic() - started < 10
    assert isinstance(caught[0], AnsibleTaskError) and str(caught[0]) == "killed"


def test_one_task_object_runs_for_two_executions_at_once():
    task, first = _direct(
        {
            "inputFiles": {"inventory.ini": TWO_HOSTS, "pb.yml": playbook("- command: echo hi", raw=False)},
            "commands": ["ansible-playbook -i inventory.ini pb.yml"],
        }
    )
    second = TaskRunContext(Runtime.in_memory(), {}, namespace="company.team", task_id="ansible")
    outputs: dict[int, dict] = {}

    def work(ctx):
        outputs[id(ctx)] = task.run(ctx).as_dict()

    threads = [threading.Thread(target=work, args=(ctx,)) for ctx in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outputs) == 2
    for ctx in (first, second):
        out = outputs[id(ctx)]
        assert sorted((t["host"], t["status"]) for t in out["tasks"]) == [("web1", "ok"), ("web2", "ok")]
        assert sum("PLAY RECAP" in log["message"] for log in ctx.logs) == 1


# acceptance/flows/ansible_playbook.yaml, verbatim
ACCEPTANCE_FLOW = """\
id: ansible_playbook
namespace: company.team
tasks:
  - id: ansible_task
    type: io.kestra.plugin.ansible.cli.AnsibleCLI
    inputFiles:
      inventory.ini: |
        localhost ansible_connection=local
      myplaybook.yml: |
        ---
        - hosts: localhost
          tasks:
            - name: Print Hello World
              debug:
                msg: "Hello, World!"
    assets:
      enableAuto: true
    commands:
      - ansible-playbook -i inventory.ini myplaybook.yml
"""


class TestAnsibleTypes(TypeSuite):
    types = TASKS
    examples = [ACCEPTANCE_FLOW]


def test_acceptance_flow_runs_unmodified_on_the_engine(run_flow):
    execution = run_flow(ACCEPTANCE_FLOW).to_dict()
    assert execution["state"]["current"] == "SUCCESS"
    (taskrun,) = execution["taskRunList"]
    assert taskrun["outputs"]["stats"]["localhost"]["ok"] == 2
    assert [t["msg"] for t in taskrun["outputs"]["tasks"] if t["task"] == "Print Hello World"] == [
        "Hello, World!"
    ]
