"""Inventory sources from command lines, parsed with Ansible's own inventory plugins (no playbook run)."""

from __future__ import annotations

from pathlib import Path

from roost_ansible.inventory import InventoryLoader, command_inventory_sources, default_sources


def test_inventory_sources_are_read_from_ansible_commands_only():
    commands = [
        "ansible-playbook -i inventory.ini site.yml",
        "sed -i s/a/b/ x.txt && ansible all --inventory=hosts.yml -m ping",
        "cd . ; /usr/bin/ansible-playbook -iinv/prod --inventory 'with space.ini' pb.yml | tee out",
        "ANSIBLE_FORCE_COLOR=0 ansible-inventory --inventory-file=dyn.yml --list",
        "ansible-playbook \\\n  -i second.ini pb.yml",
        "pip install -i https://example.invalid/simple pkg",
        "echo 'unbalanced",
    ]
    assert command_inventory_sources(commands) == [
        "inventory.ini",
        "hosts.yml",
        "inv/prod",
        "with space.ini",
        "dyn.yml",
        "second.ini",
    ]


def test_ini_yaml_directory_and_host_list_sources(tmp_path: Path):
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "web.ini").write_text(
        "[web]\nweb[01:02] ansible_connection=local\n[web:vars]\nansible_user=deploy\nansible_password=hunter2\n"
    )
    (tmp_path / "inv" / "db.yml").write_text(
        "all:\n  children:\n    db:\n      hosts:\n        db1:\n          ansible_host: 192.0.2.10\n"
        "          ansible_port: 2222\n          ansible_become_password: hunter2\n"
    )
    (tmp_path / "inv" / "notes.md").write_text("not an inventory")  # ignored like Ansible does
    (tmp_path / "inv" / "group_vars").mkdir()

    report = InventoryLoader(tmp_path).load(["inv", "edge1,edge2,"])

    assert report.problems == [] and report.notes == []
    assert sorted(report.hosts) == ["db1", "edge1", "edge2", "web01", "web02"]
    assert report.hosts["web01"].metadata() == {
        "system": "ansible",
        "groups": ["web"],
        "ansible_connection": "local",
        "ansible_user": "deploy",
        "inventory": "inv/web.ini",
    }
    assert report.hosts["db1"].metadata() == {
        "system": "ansible",
        "groups": ["db"],
        "ansible_host": "192.0.2.10",
        "ansible_port": 2222,
        "inventory": "inv/db.yml",
    }
    assert report.hosts["edge1"].metadata()["inventory"] == "host list"
    assert "hunter2" not in repr([h.metadata() for h in report.hosts.values()])


def test_unparseable_and_missing_inventories_are_problems_with_their_cause(tmp_path: Path):
    (tmp_path / "bad.ini").write_text("[web\nweb1 ansible_connection=local\n")
    (tmp_path / "list.yml").write_text("- a\n- b\n")
    (tmp_path / "empty.yml").write_text("all:\n  - not a group\n")

    report = InventoryLoader(tmp_path).load(["bad.ini", "list.yml", "empty.yml", "gone.ini"])

    assert report.hosts == {}
    bad, listed, empty, gone = report.problems
    assert bad.startswith("inventory 'bad.ini' could not be parsed (ini plugin: Failed to parse inventory:")
    assert "list.yml' could not be parsed (yaml plugin: YAML inventory has invalid structure" in listed
    assert "ini plugin: Failed to parse inventory: Expected key=value host variable assignment" in listed
    assert (
        empty
        == "inventory 'empty.yml' defines no hosts (yaml plugin: Skipping 'all' as this is not a valid group definition)"
    )
    assert gone == "inventory 'gone.ini' was not found in the working directory"


def test_dynamic_inventories_are_not_executed(tmp_path: Path):
    marker = tmp_path / "ran"
    script = tmp_path / "inventory.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\necho '{{}}'\n")
    script.chmod(0o755)
    (tmp_path / "aws_ec2.yml").write_text("plugin: amazon.aws.aws_ec2\nregions: [eu-west-1]\n")

    report = InventoryLoader(tmp_path).load(["inventory.sh", "aws_ec2.yml", "localhost"])

    assert not marker.exists()
    assert report.problems == [] and report.hosts == {}
    assert (
        report.notes[0]
        == "inventory 'inventory.sh' is an executable (dynamic inventory script); its hosts are not listed"
    )
    assert (
        report.notes[1]
        == "inventory 'aws_ec2.yml' configures a dynamic inventory plugin; its hosts are not listed"
    )
    assert "Ansible falls back to its implicit localhost" in report.notes[2]


def test_container_paths_map_to_the_working_directory(tmp_path: Path):
    (tmp_path / "hosts.ini").write_text("box ansible_connection=local\n")
    report = InventoryLoader(tmp_path, container_root="/app").load(["/app/hosts.ini"])
    assert list(report.hosts) == ["box"] and report.hosts["box"].sources == ["hosts.ini"]


def test_default_sources_follow_ansible_then_kestra(tmp_path: Path):
    assert default_sources({"ANSIBLE_INVENTORY": "a.ini, b.yml"}, {}, tmp_path) == ["a.ini", "b.yml"]
    assert default_sources({}, {"defaults": {"inventory": "cfg.ini"}}, tmp_path) == ["cfg.ini"]
    assert default_sources({}, {}, tmp_path) == []
    (tmp_path / "inventory.ini").write_text("x\n")
    assert default_sources({}, {}, tmp_path) == ["inventory.ini"]
