"""Roles and bindings: the policy's answers, the configuration's errors, the route matcher."""

from __future__ import annotations

from pathlib import Path

import pytest
from roost.server.config import ConfigError, hash_token, load_config
from roost.server.permissions import ROUTES, RouteMatcher
from roost.server.rbac import BUILTIN_ROLES, Binding, Policy, Principal, parse_roles

DEV = Principal("dev")
TOKEN = Principal("ci", "token")


def policy(**bindings: list[Binding]) -> Policy:
    return Policy(bindings={k.replace("__", ":"): tuple(v) for k, v in bindings.items()})


def test_no_binding_configured_keeps_everyone_admin_and_auth_off_allows_all() -> None:
    p = Policy()
    assert not p.enforced
    assert p.can(DEV, "KILL_SWITCH", "DELETE", "any.where") and p.scope(DEV, "FLOW", "READ").all
    assert not p.can(None, "FLOW", "READ")  # auth on: no principal, nothing
    assert Policy(auth=False).can(None, "AUDITLOG", "READ")


def test_namespace_binding_covers_children_only_in_its_tenant() -> None:
    p = policy(dev=[Binding("DEVELOPER", "main", "company.team")])
    assert p.enforced
    assert p.can(DEV, "FLOW", "UPDATE", "company.team")
    assert p.can(DEV, "FLOW", "UPDATE", "company.team.sub")
    assert not p.can(DEV, "FLOW", "UPDATE", "company.teams")
    assert not p.can(DEV, "FLOW", "UPDATE", "company")
    assert not p.can(DEV, "FLOW", "UPDATE", "company.team", tenant="acme")
    assert p.can(DEV, "FLOW", "UPDATE")  # somewhere in the tenant (to show an action)
    assert not p.can(DEV, "AUDITLOG", "READ") and not p.can(DEV, "KILL_SWITCH", "CREATE", "company.team")
    assert p.scope(DEV, "FLOW", "READ").prefixes == ("company.team",)
    assert p.scope(DEV, "FLOW", "READ", "acme").none
    assert not p.can(Principal("other"), "FLOW", "READ", "company.team")  # no binding once roles exist


def test_tokens_and_users_are_distinct_principals() -> None:
    p = policy(token__ci=[Binding("VIEWER")])
    assert p.can(TOKEN, "FLOW", "READ", "x") and not p.can(TOKEN, "FLOW", "CREATE", "x")
    assert not p.can(Principal("ci"), "FLOW", "READ", "x")  # a user named like the token is someone else
    assert TOKEN.id == "token:ci" and DEV.id == "dev" and str(TOKEN) == "ci"


def test_builtin_roles_grant_what_they_say() -> None:
    viewer, launcher, dev = BUILTIN_ROLES["VIEWER"], BUILTIN_ROLES["LAUNCHER"], BUILTIN_ROLES["DEVELOPER"]
    assert viewer.allows("FLOW", "READ") and not viewer.allows("FLOW", "CREATE")
    assert not viewer.allows("SECRET", "READ") and not viewer.allows("AUDITLOG", "READ")
    assert launcher.allows("EXECUTION", "CREATE") and not launcher.allows("EXECUTION", "UPDATE")
    assert (
        dev.allows("AI_COPILOT", "CREATE")
        and dev.allows("SECRET", "READ")
        and not dev.allows("SECRET", "UPDATE")
    )
    assert not dev.allows("KILL_SWITCH", "READ") and not dev.allows("AUDITLOG", "READ")
    assert BUILTIN_ROLES["ADMIN"].allows("KILL_SWITCH", "DELETE") and BUILTIN_ROLES["ADMIN"].allows(
        "AI_COPILOT", "READ"
    )


def test_custom_roles_and_their_errors() -> None:
    roles = parse_roles({"operator": {"permissions": {"execution": ["READ", "UPDATE"], "KILLSWITCH": "ALL"}}})
    assert roles["OPERATOR"].allows("EXECUTION", "UPDATE") and roles["OPERATOR"].allows(
        "KILL_SWITCH", "DELETE"
    )
    with pytest.raises(ValueError, match="unknown permission 'FLOWS'"):
        parse_roles({"x": {"permissions": {"FLOWS": ["READ"]}}})
    with pytest.raises(ValueError, match="unknown action 'WRITE'"):
        parse_roles({"x": {"permissions": {"FLOW": ["WRITE"]}}})
    with pytest.raises(ValueError, match="built-in role"):
        parse_roles({"admin": {"permissions": {"FLOW": ["READ"]}}})


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "roost.yaml"
    path.write_text(text)
    return path


def test_configuration_binds_users_and_tokens(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, f"""
server:
  basicAuth:
    users:
      - username: dev@example.com
        passwordHash: "scrypt$16384$8$1$c2FsdA==$aGFzaA=="
        roles:
          - {{role: developer, tenant: main, namespace: company.team}}
  apiTokens:
    - name: ci
      tokenHash: "{hash_token("t")}"
      roles: [VIEWER]
  roles:
    OPERATOR: {{permissions: {{EXECUTION: [READ, UPDATE]}}}}
  defaultRole: OPERATOR
  trustedProxies: [10.0.0.0/8, 192.168.1.1]
"""), env={})  # fmt: skip
    p = cfg.auth.policy
    assert p.can(Principal("dev@example.com"), "FLOW", "DELETE", "company.team.x")
    assert p.can(Principal("ci", "token"), "FLOW", "READ", "any") and not p.can(
        Principal("ci", "token"), "FLOW", "CREATE", "any"
    )
    assert p.can(Principal("someone"), "EXECUTION", "UPDATE", "any")  # defaultRole
    assert len(cfg.auth.trusted_proxies) == 2


@pytest.mark.parametrize("snippet, message", [
    ("roles: [{role: GOD}]", "users[0].roles[0].role: unknown role 'GOD'"),
    ("roles: [{role: VIEWER, namespace: 'Bad NS'}]", "users[0].roles[0].namespace: 'Bad NS' is not a namespace"),
    ("roles: [{role: VIEWER, tenant: 'A B'}]", "users[0].roles[0].tenant: 'A B' is not a tenant id"),
    ("roles: [{role: VIEWER, nmespace: x}]", "users[0].roles[0]: unknown key 'nmespace'"),
    ("roles: VIEWER", "users[0].roles: expected a list of bindings"),
])  # fmt: skip
def test_configuration_errors_name_the_key(tmp_path: Path, snippet: str, message: str) -> None:
    path = write(
        tmp_path,
        f"""
server:
  basicAuth:
    users:
      - username: u
        passwordHash: "scrypt$16384$8$1$c2FsdA==$aGFzaA=="
        {snippet}
""",
    )
    with pytest.raises(
        ConfigError, match="server.basicAuth." + message.replace("[", r"\[").replace("]", r"\]")
    ):
        load_config(path, env={})


def test_duplicate_token_names_and_bad_proxies_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, f"""
server:
  apiTokens:
    - {{name: ci, tokenHash: "{hash_token("a")}"}}
    - {{name: ci, tokenHash: "{hash_token("b")}"}}
""")  # fmt: skip
    with pytest.raises(ConfigError, match="another token is named 'ci'"):
        load_config(path, env={})
    with pytest.raises(ConfigError, match="trustedProxies\\[0\\]"):
        load_config(write(tmp_path, "server:\n  trustedProxies: [not-an-ip]\n"), env={})


def test_matcher_prefers_fixed_segments_like_the_router() -> None:
    m = RouteMatcher(ROUTES)
    assert (
        m.match("POST", "/api/v1/main/executions/abc/pause")[0]
        == "/api/v1/{tenant}/executions/{executionId}/pause"
    )  # type: ignore[index]
    assert (
        m.match("POST", "/api/v1/main/executions/ns/flow")[0]
        == "/api/v1/{tenant}/executions/{namespace}/{id}"
    )  # type: ignore[index]
    assert m.match("GET", "/api/v1/main/flows/search")[0] == "/api/v1/{tenant}/flows/search"  # type: ignore[index]
    found = m.match("GET", "/api/v1/main/flows/company.team")
    assert (
        found is not None
        and found[0] == "/api/v1/{tenant}/flows/{namespace}"
        and found[2]["namespace"] == "company.team"
    )
    assert m.match("HEAD", "/api/v1/main/flows/search") is not None
    assert m.match("GET", "/api/v1/main/flows//x") is None and m.match("GET", "/nope") is None


def test_matcher_names_parameters_per_template() -> None:
    """Templates sharing a variable position may name it differently: each match uses its own names."""
    m = RouteMatcher(
        {"POST /a/{executionId}/pause": 1, "POST /a/{namespace}/{id}": 2, "GET /f/{rest:path}": 3}
    )
    assert m.match("POST", "/a/x/pause") == ("/a/{executionId}/pause", 1, {"executionId": "x"})
    assert m.match("POST", "/a/company.team/flow") == (
        "/a/{namespace}/{id}",
        2,
        {"namespace": "company.team", "id": "flow"},
    )
    assert m.match("GET", "/f/a/b/c") == ("/f/{rest:path}", 3, {"rest": "a/b/c"})
    assert m.match("GET", "/f/") == ("/f/{rest:path}", 3, {"rest": ""})  # as Starlette's path converter


def test_plugins_ask_the_principals_policy_through_their_ui_context() -> None:
    """What a plugin page (an AI Copilot...) asks: allowed or refused per role."""
    from roost.server.rbac import can
    from roost.uikit import UiContext

    p = policy(dev=[Binding("VIEWER", "main")], ops=[Binding("DEVELOPER", "main")])
    viewer, developer = Principal("dev", policy=p), Principal("ops", policy=p)
    assert UiContext("main", viewer).can("FLOW", "READ") and not UiContext("main", viewer).can(
        "AI_COPILOT", "CREATE"
    )
    assert UiContext("main", developer).can("AI_COPILOT", "CREATE")
    assert not UiContext("acme", developer).can("AI_COPILOT", "CREATE")  # another tenant
    assert can(developer, "AI_COPILOT", "CREATE") and not can(viewer, "AI_COPILOT", "CREATE")
    assert UiContext("main", "anonymous").can("AI_COPILOT", "CREATE")  # no roles in play (auth off)
    assert not UiContext("main", None).can("FLOW", "READ")
