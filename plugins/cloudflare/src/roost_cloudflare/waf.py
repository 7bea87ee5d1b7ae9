"""WAF IP access rules, at zone or account level."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator
from roost import Dynamic, RunContext, TaskError

from roost_cloudflare.base import Output, ScopeTask

MODES = ("block", "challenge", "whitelist", "js_challenge", "managed_challenge")
TARGETS = ("ip", "ip6", "ip_range", "asn", "country")


def _choice(value: Any, allowed: tuple[str, ...], what: str) -> Any:
    if isinstance(value, str) and "{{" not in value and "{%" not in value:
        low = value.strip().lower()
        if low not in allowed:
            raise ValueError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")
        return low
    return value


class AccessRule(Output):
    """An IP access rule."""

    id: str
    """Rule identifier."""
    mode: str | None = None
    """Action applied: block, challenge, whitelist, js_challenge or managed_challenge."""
    target: str | None = None
    """What the rule matches: ip, ip6, ip_range, asn or country."""
    value: str | None = None
    """The IP, range, ASN or country code matched."""
    notes: str | None = None
    """Notes attached to the rule."""
    scope: str | None = None
    """Where the rule lives: zone or account."""
    configuration: dict[str, Any] | None = None
    """The rule's configuration as Cloudflare returns it (``target`` and ``value``)."""


def access_rule(raw: Any, scope: str | None = None) -> AccessRule:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise TaskError("Cloudflare API returned a malformed access rule: expected an object with an 'id'")
    conf = raw.get("configuration") if isinstance(raw.get("configuration"), dict) else {}
    rule_scope = raw.get("scope", {}).get("type") if isinstance(raw.get("scope"), dict) else None
    return AccessRule(
        id=raw["id"],
        mode=raw.get("mode"),
        target=conf.get("target"),
        value=conf.get("value"),
        notes=raw.get("notes") or None,
        scope=rule_scope or scope,
        configuration=conf or None,
    )


class Create(
    ScopeTask,
    type="io.kestra.plugin.cloudflare.waf.accessrules.Create",
    aliases=("io.kestra.plugin.cloudflare.waf.Create",),
):
    """Create an IP access rule for a zone or for a whole account.

    ``POST /zones/{zone_id}/firewall/access_rules/rules`` or ``POST /accounts/{account_id}/...``.
    """

    mode: Dynamic[str]
    """Action: block, challenge, whitelist, js_challenge or managed_challenge (case-insensitive)."""
    target: Dynamic[str]
    """What to match: ip, ip6, ip_range, asn or country (case-insensitive)."""
    value: Dynamic[str]
    """The IP address, CIDR range, ASN (``AS13335``) or two-letter country code."""
    notes: Dynamic[str] | None = None
    """Note shown in the Cloudflare dashboard."""

    @field_validator("mode")
    @classmethod
    def _check_mode(cls, value: Any) -> Any:
        return _choice(value, MODES, "mode")

    @field_validator("target")
    @classmethod
    def _check_target(cls, value: Any) -> Any:
        return _choice(value, TARGETS, "target")

    class Out(Output):
        rule_id: str
        """Identifier of the new rule."""
        mode: str | None = None
        """Action applied."""
        target: str | None = None
        """Target type."""
        value: str | None = None
        """Target value."""
        scope: str
        """zone or account."""
        scope_id: str
        """Identifier of the zone or account."""

    def run(self, ctx: RunContext) -> Create.Out:
        mode = _choice(self.mode, MODES, "mode")
        target = _choice(self.target, TARGETS, "target")
        payload: dict[str, Any] = {"mode": mode, "configuration": {"target": target, "value": self.value}}
        if self.notes:
            payload["notes"] = self.notes
        with self.client(ctx) as cf:
            prefix, scope, scope_id = self.scope(cf)
            ctx.logger.info("creating %s-level access rule: %s %s %s", scope, mode, target, self.value)
            raw = cf.result("POST", f"{prefix}/firewall/access_rules/rules", json_body=payload)
        rule = access_rule(raw, scope)
        ctx.logger.info("access rule %s created", rule.id)
        return self.Out(
            rule_id=rule.id,
            mode=rule.mode,
            target=rule.target,
            value=rule.value,
            scope=scope,
            scope_id=scope_id,
        )


class Delete(
    ScopeTask,
    type="io.kestra.plugin.cloudflare.waf.accessrules.Delete",
    aliases=("io.kestra.plugin.cloudflare.waf.Delete",),
):
    """Delete an IP access rule of a zone or an account."""

    rule_id: Dynamic[str]
    """Identifier of the rule to delete."""

    class Out(Output):
        rule_id: str
        """Identifier of the deleted rule."""
        deleted: bool
        """Whether Cloudflare confirmed the deletion."""

    def run(self, ctx: RunContext) -> Delete.Out:
        with self.client(ctx) as cf:
            prefix, scope, _ = self.scope(cf)
            ctx.logger.info("deleting %s-level access rule %s", scope, self.rule_id)
            raw = cf.request("DELETE", f"{prefix}/firewall/access_rules/rules/{self.rule_id}")
        result = raw.get("result")
        rule_id = (
            result.get("id")
            if isinstance(result, dict) and isinstance(result.get("id"), str)
            else self.rule_id
        )
        return self.Out(rule_id=rule_id, deleted=True)


class List(
    ScopeTask,
    type="io.kestra.plugin.cloudflare.waf.accessrules.List",
    aliases=("io.kestra.plugin.cloudflare.waf.List",),
):
    """List the IP access rules of a zone or an account, following every page of results."""

    mode: Dynamic[str] | None = None
    """Only rules with this action."""
    target: Dynamic[str] | None = None
    """Only rules matching this kind of target (ip, ip6, ip_range, asn, country)."""
    value: Dynamic[str] | None = None
    """Only rules matching this target value."""
    notes: Dynamic[str] | None = None
    """Only rules whose notes contain this text."""
    per_page: Dynamic[int] = Field(default=100, ge=1, le=1000)
    """Rules fetched per request (at most 1000)."""

    class Out(Output):
        rules: list[AccessRule]
        """The rules."""
        count: int
        """Number of rules."""

    def run(self, ctx: RunContext) -> List.Out:
        params = {
            "mode": _choice(self.mode, MODES, "mode") if self.mode else None,
            "configuration.target": _choice(self.target, TARGETS, "target") if self.target else None,
            "configuration.value": self.value,
            "notes": self.notes,
        }
        with self.client(ctx) as cf:
            prefix, scope, scope_id = self.scope(cf)
            raw = cf.list_all(f"{prefix}/firewall/access_rules/rules", params, per_page=self.per_page)
        rules = [access_rule(r, scope) for r in raw]
        ctx.logger.info("%s %s: %d access rule(s)", scope, scope_id, len(rules))
        return self.Out(rules=rules, count=len(rules))
