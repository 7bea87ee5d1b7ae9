"""Flows reading BeyondTrust secrets through the engine: namespace-scoped configuration, masking, missing
secrets, a retried task reading a rotated password fresh, an unreachable backend, a restart re-reading refs."""

from __future__ import annotations

import pytest
from bt_support import ENV
from roost.engine.engine import Engine
from roost.plugins import Plugins
from roost.store.db import Store

USE = """
id: use
namespace: company.payments.billing
tasks:
  - id: show
    type: io.kestra.plugin.core.log.Log
    message: "password is {{ secret('DB_PASSWORD') }}, token {{ secret('safe:team/app/api-token') }}"
"""


@pytest.fixture
def engine_for(tmp_path, monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    engines = []

    def make(secret_config):
        engine = Engine(Store.sqlite(tmp_path / "home"), tmp_path / "home", workers=2, plugins=Plugins(),
                        secrets=secret_config)  # fmt: skip
        engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.stop()
        engine.store.close()


def config(safe, **extra):
    settings = {"url": safe.base, "apiKey": "${PS_API_KEY}", "runAs": "svc-roost",
                "keys": {"DB_PASSWORD": {"managedAccount": "db01/svc_app"}}, **extra}  # fmt: skip
    return {
        "type": "env",
        "namespaces": {"company.payments": {"type": "beyondtrust", "beyondtrust": settings}},
    }


def errors(engine, ex):
    return [m["message"] for m in engine.store.get_logs("main", ex.id) if m["level"] == "ERROR"]


def test_a_namespace_reads_its_backend_and_every_value_is_masked(safe, engine_for, monkeypatch):
    monkeypatch.setenv("SECRET_DB_PASSWORD", "ZW52LXZhbHVl")  # env-value, for the namespaces on `env`
    engine = engine_for(config(safe))
    ex = engine.run(engine.deploy(USE), timeout=60)
    assert ex.state.current == "SUCCESS", errors(engine, ex)
    lines = [m["message"] for m in engine.store.get_logs("main", ex.id)]
    assert "password is ******, token ******" in lines
    assert not any("Sup3r-Secret-Pw" in line or "tok-9f8e7d6c5b4a" in line for line in lines)
    other = engine.deploy(USE.replace("company.payments.billing", "company.hr").replace(
        ", token {{ secret('safe:team/app/api-token') }}", ""))  # fmt: skip
    ex = engine.run(other, timeout=60)
    assert ex.state.current == "SUCCESS"
    assert "password is ******" in [m["message"] for m in engine.store.get_logs("main", ex.id)]
    assert len(safe.calls("POST", "Requests")) == 1  # company.hr read the env backend


def test_a_missing_secret_names_the_key_and_namespace(safe, engine_for):
    engine = engine_for(config(safe))
    flow = engine.deploy(USE.replace("DB_PASSWORD", "NOT_MAPPED"))
    ex = engine.run(flow, timeout=60)
    assert ex.state.current == "FAILED"
    assert any(
        "Cannot find secret for key 'NOT_MAPPED' in namespace 'company.payments.billing'" in e
        for e in errors(engine, ex)
    )


def test_a_retried_task_reads_the_rotated_password_fresh(safe, engine_for, tmp_path):
    current = tmp_path / "current-password"
    current.write_text("Sup3r-Secret-Pw")
    engine = engine_for(config(safe, cacheTtl="PT10M", requestDuration="PT20M"))
    flow = engine.deploy(f"""
id: login
namespace: company.payments
tasks:
  - id: connect
    type: io.kestra.plugin.scripts.shell.Commands
    retry:
      type: constant
      interval: PT0.1S
      maxAttempts: 2
    commands:
      - test "{{{{ secret('DB_PASSWORD') }}}}" = "$(cat {current})"
""")
    assert engine.run(flow, timeout=60).state.current == "SUCCESS"  # caches the password for 10 minutes
    safe.rotate("db01", "svc_app", "N3w-Rotated-Pw")
    current.write_text("N3w-Rotated-Pw")  # the target system now refuses the old password
    ex = engine.run(flow, timeout=60)
    assert ex.state.current == "SUCCESS", errors(engine, ex)
    assert len(ex.task_runs[0].attempts) == 2  # the cached value was refused; the retry read it fresh
    assert len(safe.calls("PUT", "/Checkin")) == 1  # the old request was checked in


def test_an_unreachable_backend_fails_the_task_with_the_backend_named(engine_for):
    from roost.testing.http import closed_port

    url = f"http://127.0.0.1:{closed_port()}/BeyondTrust/api/public/v3"
    engine = engine_for({"type": "beyondtrust", "beyondtrust": {"url": url, "apiKey": "${PS_API_KEY}", "runAs": "u",
                                                                  "connectTimeout": 2}})  # fmt: skip
    ex = engine.run(engine.deploy(USE.replace("DB_PASSWORD", "account:db01/svc_app")), timeout=60)
    assert ex.state.current == "FAILED"
    found = errors(engine, ex)
    assert any(
        "Cannot read secret 'account:db01/svc_app' for namespace 'company.payments.billing': BeyondTrust "
        "Password Safe could not give managed account db01/svc_app" in e
        for e in found
    ), found
    assert not any(ENV["PS_API_KEY"] in e for e in found)


def test_a_restarted_engine_masks_with_the_value_read_again(safe, engine_for, tmp_path):
    """The mask set keeps (namespace, key), never the value: a new engine reads it again from Password Safe."""
    engine = engine_for(config(safe))
    ex = engine.run(engine.deploy(USE), timeout=60)
    assert ex.state.current == "SUCCESS"
    engine.stop()
    engine.store.close()
    again = engine_for(config(safe))
    masks = again.masks("main", ex.id)
    assert masks.mask("late line with Sup3r-Secret-Pw") == "late line with ******"
