"""Storage and secret backends chosen by configuration (the register_storage_backends and
register_secret_backends hooks), the streaming storage protocol of the local backend, and secret()."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from roost import hookimpl
from roost.engine.context import Runtime, TaskRunContext
from roost.expr import ExpressionError
from roost.plugins import Plugins
from roost.secret_backends import SecretBackends, SecretConfigError
from roost.server.config import ConfigError, load_config
from roost.store.storage import (
    LocalStorage,
    StorageConfigError,
    StorageError,
    StorageNotFound,
    StorageOutside,
    storage_factory,
)


class Recording:
    """A secret backend that records what it is asked (registered through the hook, as a plugin would)."""

    instances: list[Recording] = []

    def __init__(self, config):
        self.values = dict(config.get("values") or {})
        self.fail = config.get("fail")
        self.asked: list[tuple[str, str]] = []
        self.invalidated: list[tuple[str, str]] = []
        self.closed = False
        Recording.instances.append(self)

    def get(self, namespace, key):
        self.asked.append((namespace, key))
        if self.fail:
            raise ConnectionError("connection refused")
        return self.values.get(key)

    def invalidate(self, namespace, key):
        self.invalidated.append((namespace, key))

    def close(self):
        self.closed = True


class RecordingPlugin:
    @hookimpl
    def register_secret_backends(self, register):
        register("recording", Recording)


@pytest.fixture
def plugins():
    p = Plugins(load_entry_points=False)
    p.register_module(RecordingPlugin(), name="recording")
    Recording.instances.clear()
    return p


def backends(plugins, config):
    return SecretBackends.from_config(config, plugins=plugins, environ={})


# -- secrets ------------------------------------------------------------------------------------------------
def test_a_namespace_reads_its_own_backend_then_its_parents_then_the_tenant_then_the_instance(plugins):
    config = {
        "type": "recording", "recording": {"values": {"K": "instance"}},
        "namespaces": {"company": {"type": "recording", "recording": {"values": {"K": "company"}}},
                       "company.team": {"type": "recording", "recording": {"values": {"K": "team"}}}},
        "tenants": {"acme": {"type": "recording", "recording": {"values": {"K": "acme"}},
                             "namespaces": {"company.team": {"type": "recording", "recording": {"values": {"K": "acme-team"}}}}}},
    }  # fmt: skip
    all_ = backends(plugins, config)
    main, acme = all_.for_tenant("main"), all_.for_tenant("acme")
    assert main.get("company.team.sub", "K") == "team"
    assert main.get("company.other", "K") == "company"
    assert main.get("other", "K") == "instance"
    assert acme.get("company.team", "K") == "acme-team"
    assert (
        acme.get("company.other", "K") == "company"
    )  # every tenant's namespace level before the tenant's own
    assert acme.get("other", "K") == "acme"
    assert [d["type"] for d in all_.describe()] == ["recording"] * 5
    all_.close()
    assert all(r.closed for r in Recording.instances)


def test_the_default_is_the_env_backend(monkeypatch):
    monkeypatch.setenv("SECRET_MY_KEY", "c2VjcmV0LXZhbHVl")
    monkeypatch.delenv("ROOST_SECRETS", raising=False)
    view = SecretBackends.build(None, plugins=Plugins(load_entry_points=False)).for_tenant("main")
    assert view.get("any.namespace", "MY_KEY") == "secret-value"
    assert view.get("any.namespace", "ABSENT") is None


def test_roost_secrets_configures_local_runs(plugins, tmp_path):
    path = tmp_path / "secrets.yaml"
    path.write_text("secret:\n  type: recording\n  recording:\n    values: {K: from-file}\n")
    built = SecretBackends.build(None, plugins=plugins, environ={"ROOST_SECRETS": str(path)})
    assert built.for_tenant("main").get("x", "K") == "from-file"
    with pytest.raises(SecretConfigError, match="ROOST_SECRETS: /nope is not a file"):
        SecretBackends.build(None, plugins=plugins, environ={"ROOST_SECRETS": "/nope"})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "vault"}, r"secret.type: unknown secret backend 'vault' \(installed: env, recording"),
        ({}, None),
        ({"namespaces": {"a": {"recording": {}}}}, r"secret.namespaces.a.type: required"),
        ({"type": "env", "env": {"prefix": "X"}}, r"secret.env: the env backend takes no settings"),
        ({"type": "recording", "recording": {}, "values": {}}, r"put the settings under recording:"),
        ({"tenants": {"t": {"tenants": {}}}}, r"secret.tenants.t.tenants: not allowed here"),
    ],
)
def test_secret_configuration_errors_name_their_path(plugins, config, message):
    if message is None:
        assert backends(plugins, config).for_tenant("main").kind("x") == "env"
        return
    with pytest.raises(SecretConfigError, match=message):
        backends(plugins, config)


def context(runtime, namespace="company.team", **kw):
    return TaskRunContext(runtime, {}, namespace=namespace, flow_id="f", execution_id="e", task_id="t", **kw)


def test_secret_reads_through_the_namespace_backend_and_joins_the_mask_set(plugins, tmp_path):
    all_ = backends(plugins, {"type": "recording", "recording": {"values": {"PW": "hunter2-long-value"}}})
    runtime = Runtime.in_memory(tmp_path)
    runtime.secrets = all_.for_tenant("main")
    ctx = context(runtime)
    assert ctx.render("{{ secret('PW') }}") == "hunter2-long-value"
    assert ctx.secret_values.mask("the pw is hunter2-long-value") == "the pw is ******"
    assert ctx.render("{{ secret('PW', namespace='company') }}") == "hunter2-long-value"  # a parent namespace
    with pytest.raises(
        ExpressionError, match="namespace 'other.team' is not 'company.team' nor a parent of it"
    ):
        ctx.render("{{ secret('PW', namespace='other.team') }}")
    with pytest.raises(
        ExpressionError, match="Cannot find secret for key 'NOPE' in namespace 'company.team'"
    ):
        ctx.render("{{ secret('NOPE') }}")
    assert Recording.instances[0].asked[0] == ("company.team", "PW")


def test_a_backend_failure_names_the_backend_key_and_namespace(plugins, tmp_path):
    all_ = backends(plugins, {"type": "recording", "recording": {"fail": True}})
    runtime = Runtime.in_memory(tmp_path)
    runtime.secrets = all_.for_tenant("main")
    with pytest.raises(ExpressionError, match="Cannot read secret 'PW' for namespace 'company.team': the recording "
                                              "secret backend failed: ConnectionError: connection refused"):  # fmt: skip
        context(runtime).render("{{ secret('PW') }}")


def test_a_retried_attempt_reads_each_secret_fresh_once(plugins, tmp_path):
    all_ = backends(plugins, {"type": "recording", "recording": {"values": {"PW": "value-1234567"}}})
    runtime = Runtime.in_memory(tmp_path)
    runtime.secrets = all_.for_tenant("main")
    context(runtime).render("{{ secret('PW') }}")
    assert Recording.instances[0].invalidated == []
    retry = context(runtime, fresh_secrets=True)
    retry.render("{{ secret('PW') }} {{ secret('PW') }}")
    assert Recording.instances[0].invalidated == [("company.team", "PW")]


def test_credentials_resolve_secret_references_through_the_configured_backends(plugins):
    from roost.credentials import CredentialStore

    all_ = backends(
        plugins, {"type": "recording", "recording": {"values": {"CLIENT_SECRET": "from-the-backend"}}}
    )
    store = CredentialStore.build({"c": {"type": "oauth2_client_credentials", "tokenEndpoint": "https://a.example/t",
                                         "clientId": "x", "clientSecret": "{{ secret('CLIENT_SECRET') }}"}},
                                  plugins=Plugins(load_entry_points=False), secrets=all_)  # fmt: skip
    provider = store.lookup("main", "c")
    assert provider.config.resolve("{{ secret('CLIENT_SECRET') }}") == "from-the-backend"


# -- storage ------------------------------------------------------------------------------------------------
def test_local_storage_streams_lists_and_checks_folders(tmp_path):
    st = LocalStorage(tmp_path, "main")
    assert st.put("ns/f/executions/e1/a.txt", io.BytesIO(b"streamed")) == "kestra:///ns/f/executions/e1/a.txt"
    st.put("ns/f/executions/e1/sub/b.txt", b"bytes")
    with st.open_read("kestra:///ns/f/executions/e1/a.txt", within="ns/f/executions/e1") as fh:
        assert fh.read() == b"streamed"
    assert st.size("kestra:///ns/f/executions/e1/sub/b.txt") == 5
    assert st.list("ns/f/executions/e1") == [
        "kestra:///ns/f/executions/e1/a.txt",
        "kestra:///ns/f/executions/e1/sub/b.txt",
    ]
    with pytest.raises(StorageNotFound):
        st.open_read("kestra:///ns/f/executions/e1/none")
    with pytest.raises(StorageOutside):
        st.size("kestra:///ns/f/executions/e1/a.txt", within="ns/f/executions/e2")
    (tmp_path / "main" / "ns/f/executions/e2").mkdir(parents=True)
    os.symlink(
        tmp_path / "main" / "ns/f/executions/e1/a.txt", tmp_path / "main" / "ns/f/executions/e2/link.txt"
    )
    with pytest.raises(StorageOutside):  # a link in e2 to e1's file is not e2's
        st.open_read("kestra:///ns/f/executions/e2/link.txt", within="ns/f/executions/e2")
    assert st.delete("kestra:///ns/f/executions/e1/a.txt") and not st.delete(
        "kestra:///ns/f/executions/e1/a.txt"
    )

    class Broken(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, b):
            raise OSError("the upload broke")

    with pytest.raises(OSError):
        st.put("ns/f/broken.txt", Broken())
    assert not any(
        p.name.endswith(".tmp") for p in (tmp_path / "main" / "ns" / "f").iterdir()
    )  # nothing half-written


def test_storage_is_chosen_by_configuration(tmp_path):
    plugins = Plugins(load_entry_points=False)
    default = storage_factory(None, tmp_path, plugins=plugins, environ={})("main")
    assert isinstance(default, LocalStorage) and default.root == (tmp_path / "storage" / "main").resolve()
    config = {"type": "local", "local": {"basePath": str(tmp_path / "files")},
              "tenants": {"acme": {"type": "local", "local": {"basePath": str(tmp_path / "acme-files")}}}}  # fmt: skip
    factory = storage_factory(config, tmp_path, plugins=plugins)
    assert factory("main").root == (tmp_path / "files" / "main").resolve()
    assert factory("acme").root == (tmp_path / "acme-files" / "acme").resolve()
    env = {"ROOST_STORAGE": json.dumps({"storage": {"type": "local", "basePath": str(tmp_path / "env")}})}
    assert (
        storage_factory(None, tmp_path, plugins=plugins, environ=env)("main").root
        == (tmp_path / "env" / "main").resolve()
    )
    with pytest.raises(
        StorageConfigError, match=r"storage.type: unknown storage backend 'gcs' \(installed: local"
    ):
        storage_factory({"type": "gcs"}, tmp_path, plugins=plugins)
    with pytest.raises(
        StorageConfigError, match=r"storage.local: unknown property colour \(known: basePath\)"
    ):
        storage_factory({"type": "local", "local": {"colour": "red"}}, tmp_path, plugins=plugins)
    with pytest.raises(StorageConfigError, match=r"storage.namespaces: not allowed here"):
        storage_factory({"type": "local", "namespaces": {"a": {}}}, tmp_path, plugins=plugins)


def test_the_server_configuration_checks_storage_and_secret_sections(tmp_path):
    path = tmp_path / "roost.yaml"
    path.write_text("storage:\n  type: nowhere\n")
    with pytest.raises(ConfigError, match="storage.type: unknown storage backend 'nowhere'"):
        load_config(path, env={})
    path.write_text("secret:\n  type: env\n  namespaces:\n    company: {type: vault}\n")
    with pytest.raises(ConfigError, match="secret.namespaces.company.type: unknown secret backend 'vault'"):
        load_config(path, env={})
    path.write_text("storage: {type: local}\nsecret: {type: env}\n")
    cfg = load_config(path, env={})
    assert cfg.storage == {"type": "local"} and cfg.secret == {"type": "env"}


def test_read_refuses_files_too_big_for_an_expression(tmp_path, monkeypatch):
    from roost.engine import context as context_module

    runtime = Runtime.in_memory(tmp_path)
    uri = runtime.storage.put("ns/f/executions/e/big.txt", b"x" * 2000)
    monkeypatch.setattr(context_module, "MAX_READ", 1000)
    with pytest.raises(ExpressionError, match="the file has 2000 bytes; read\\(\\) loads a whole file"):
        context(runtime).render("{{ read('" + uri + "') }}")
    with pytest.raises(ExpressionError, match="no file in internal storage"):
        context(runtime).render("{{ read('kestra:///ns/f/executions/e/none.txt') }}")


def test_foreachitem_cuts_a_stream_at_separators_across_blocks():
    from roost.builtin.flow import _items

    data = b"".join(f"line-{i};;".encode() for i in range(1000))
    items = list(_items(io.BytesIO(data), b";;", block=7))  # a separator split between two blocks
    assert items[:2] == [b"line-0", b"line-1"] and len(items) == 1000 and items[-1] == b"line-999"
    with pytest.raises(StorageError):
        LocalStorage("/tmp", "main").put("../escape", b"x")


def test_flow_run_takes_the_storage_of_a_configuration(tmp_path):
    files = tmp_path / "files"
    config = tmp_path / "roost.yaml"
    config.write_text(f"storage:\n  type: local\n  local:\n    basePath: {files}\n")
    flow = tmp_path / "flow.yaml"
    flow.write_text("""
id: out
namespace: company.team
tasks:
  - id: write
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: ["o.txt"]
    commands: ["echo hi > o.txt"]
""")
    done = subprocess.run([sys.executable, "-m", "roost.cli.main", "flow", "run", str(flow), "--home", str(tmp_path / "h"),
                           "--config", str(config)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ROOST_LOAD_PLUGINS": ""})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert list(files.rglob("*-o.txt")) and not list((tmp_path / "h").rglob("*-o.txt"))
    config.write_text("storage:\n  type: local\n  local: {colour: red}\n")
    done = subprocess.run([sys.executable, "-m", "roost.cli.main", "flow", "run", str(flow), "--home", str(tmp_path / "h"),
                           "--config", str(config)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0 and "storage.local: unknown property colour" in done.stderr


def test_the_ui_lists_secret_names_of_the_namespace_backend(tmp_path, plugins, monkeypatch):
    from fastapi.testclient import TestClient
    from roost.engine.engine import Engine
    from roost.server import ServerConfig, ServerState, create_app
    from roost.store.db import Store

    monkeypatch.setenv("SECRET_WAREHOUSE_PASSWORD", "c2VjcmV0LXZhbHVl")
    config = {
        "type": "env",
        "namespaces": {"company.vault": {"type": "recording", "recording": {"values": {"K": "v"}}}},
    }
    engine = Engine(Store.sqlite(tmp_path), tmp_path, workers=1, plugins=plugins, secrets=config)
    try:
        client = TestClient(create_app(ServerState(engine, ServerConfig())), base_url="http://testserver")
        env_page = client.get("/ui/main/namespaces/company.team", params={"tab": "secrets"}).text
        assert (
            "WAREHOUSE_PASSWORD" in env_page
            and "secret-value" not in env_page
            and "SECRET_&lt;KEY&gt;" in env_page
        )
        other = client.get("/ui/main/namespaces/company.vault.sub", params={"tab": "secrets"}).text
        assert "<code>recording</code> secret backend" in other and "does not list its secrets" in other
        assert "WAREHOUSE_PASSWORD" not in other
    finally:
        engine.store.close()


def test_a_credential_names_the_secret_its_backend_could_not_read(plugins):
    from roost.credentials import CredentialError, CredentialStore

    all_ = backends(plugins, {"type": "recording", "recording": {"fail": True}})
    store = CredentialStore.build({"c": {"type": "oauth2_client_credentials", "tokenEndpoint": "https://a.example/t",
                                         "clientId": "x", "clientSecret": "{{ secret('CLIENT_SECRET') }}"}},
                                  plugins=Plugins(load_entry_points=False), secrets=all_)  # fmt: skip
    with pytest.raises(CredentialError, match="credential 'c': clientSecret: Cannot read secret 'CLIENT_SECRET': the "
                                              "recording secret backend failed: ConnectionError"):  # fmt: skip
        store.lookup("main", "c").config.resolve("{{ secret('CLIENT_SECRET') }}", "clientSecret")
