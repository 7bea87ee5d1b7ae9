"""Open Policy Agent tasks: Upload, List, Delete, Evaluate, Compile."""

from __future__ import annotations

import json
import re
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import ConfigDict, PrivateAttr
from roost import Asset, AssetBundle, Dynamic, RunContext, Task, TaskError
from roost import Output as _Output

from roost_opa.client import HttpOptions, OpaClient, data_path, data_url

EXTERNAL = "io.kestra.core.models.assets.External"
_PACKAGE = re.compile(r"^[ \t]*package[ \t]+([^\s#]+)", re.MULTILINE)


class Output(_Output):
    """Base of this plugin's outputs: attribute docstrings become field descriptions in the schema."""

    model_config = ConfigDict(use_attribute_docstrings=True)


class OpaTask(Task):
    """Base of the OPA tasks (not a task type itself)."""

    url: Dynamic[str]
    """Base URL of the OPA server, such as ``http://opa:8181``."""
    token: Dynamic[str] | None = None
    """Bearer token, when OPA runs with ``--authentication=token``; use ``{{ secret('OPA_TOKEN') }}``."""
    http_options: HttpOptions | None = None
    """Advanced HTTP settings: timeouts, redirects, TLS, proxy."""

    def client(self, ctx: RunContext) -> OpaClient:
        return OpaClient(self.url, token=self.token or None, options=self.http_options, ctx=ctx)


def package_of(raw: Any, ast: Any = None) -> str | None:
    """The package of a Rego module (``vm.admission``), from its AST when given, else from its source."""
    if isinstance(ast, dict):
        path = (ast.get("package") or {}).get("path") if isinstance(ast.get("package"), dict) else None
        if isinstance(path, list) and path:
            parts = [str(t.get("value")) for t in path[1:] if isinstance(t, dict)]
            if parts:
                return ".".join(parts)
    if isinstance(raw, str):
        m = _PACKAGE.search(raw)
        if m:
            return m.group(1)
    return None


def _package_path(package: str | None) -> str | None:
    if not package:
        return None
    return re.sub(r'\["([^"]+)"\]', r".\1", package).replace(".", "/")


def policy_asset(host: str, policy_id: str, package: str | None, state: str = "present") -> Asset:
    """The asset of an OPA policy module: id ``opa:<host>:policy:<id>``."""
    metadata = {
        "system": "opa",
        "kind": "policy",
        "host": host,
        "policyId": policy_id,
        "package": package,
        "path": _package_path(package),
        "state": state,
    }
    return Asset(
        id=f"opa:{host}:policy:{policy_id}",
        type=EXTERNAL,
        display_name=policy_id,
        metadata={k: v for k, v in metadata.items() if v is not None},
    )


def _host(url: str) -> str:
    return urlsplit(url).netloc


def _policy_url(policy_id: str) -> str:
    if not policy_id or not policy_id.strip("/"):
        raise TaskError("policyId must not be empty")
    return "/v1/policies/" + quote(policy_id.strip("/"), safe="/")


class Upload(OpaTask, type="io.kestra.plugin.ee.opa.policy.Upload"):
    """Upload a Rego policy module to OPA, replacing the module with the same id.

    ``PUT /v1/policies/{policyId}`` with the source as ``text/plain``. OPA parses and compiles
    the module with every other loaded module first: a syntax or compile error fails the task
    with OPA's error codes, messages and line numbers.
    """

    policy_id: Dynamic[str]
    """Identifier of the policy module in OPA (management only; evaluation goes by package)."""
    policy: Dynamic[str]
    """Rego source of the module; ``{{ read('policies/vm.rego') }}`` reads a namespace file."""
    metrics: Dynamic[bool] = False
    """Return OPA's compiler performance metrics."""

    class Out(Output):
        policy_id: str
        """Identifier of the uploaded module."""
        package: str | None = None
        """Package the module declares, such as ``vm.admission``."""
        path: str | None = None
        """Data API path of the package, such as ``vm/admission``."""
        metrics: dict[str, Any] | None = None
        """OPA's performance metrics, when asked for."""

    def run(self, ctx: RunContext) -> Upload.Out:
        package = package_of(self.policy)
        with self.client(ctx) as opa:
            ctx.logger.info(
                "uploading policy %s (package %s) to %s", self.policy_id, package or "?", opa.host
            )
            body = opa.request(
                "PUT",
                _policy_url(self.policy_id),
                params={"metrics": "true" if self.metrics else None},
                content=self.policy.encode(),
                headers={"Content-Type": "text/plain"},
            )
        ctx.logger.info("policy %s uploaded", self.policy_id)
        return self.Out(
            policy_id=self.policy_id,
            package=package,
            path=_package_path(package),
            metrics=body.get("metrics"),
        )

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        if not out:
            return []
        host = _host(self.url)
        return [AssetBundle(outputs=[policy_asset(host, out.policy_id, out.package)])]


class Policy(Output):
    """A policy module loaded in OPA."""

    id: str
    """Identifier of the module."""
    raw: str | None = None
    """Rego source."""
    package: str | None = None
    """Package the module declares."""
    path: str | None = None
    """Data API path of the package."""
    ast: dict[str, Any] | None = None
    """Abstract syntax tree OPA returned, when ``includeAst`` is true."""


class List(OpaTask, type="io.kestra.plugin.ee.opa.policy.List"):
    """List the policy modules loaded in OPA (``GET /v1/policies``)."""

    fetch_type: Dynamic[Literal["STORE", "FETCH", "FETCH_ONE", "NONE"]] = "FETCH"
    """``FETCH`` returns every module in ``policies``, ``FETCH_ONE`` the first in ``policy``, ``STORE``
    writes them to an internal-storage file (``uri``, one JSON object a line), ``NONE`` only counts."""
    include_ast: Dynamic[bool] = False
    """Keep the abstract syntax tree OPA returns for each module (large)."""

    class Out(Output):
        policies: list[Policy] | None = None
        """The modules (``FETCH``)."""
        policy: Policy | None = None
        """The first module (``FETCH_ONE``)."""
        uri: str | None = None
        """Internal-storage file of the modules (``STORE``)."""
        size: int
        """Number of modules fetched or stored."""
        total: int
        """Number of modules loaded in OPA."""

    def run(self, ctx: RunContext) -> List.Out:
        with self.client(ctx) as opa:
            body = opa.request("GET", "/v1/policies")
            items = body.get("result")
            if items is None:
                items = []
            if not isinstance(items, list):
                raise opa.malformed("GET /v1/policies", "'result' should be a list")
        policies = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise TaskError("OPA returned a malformed policy: expected an object with an 'id'")
            package = package_of(item.get("raw"), item.get("ast"))
            policies.append(
                Policy(
                    id=item["id"],
                    raw=item.get("raw"),
                    package=package,
                    path=_package_path(package),
                    ast=item.get("ast") if self.include_ast and isinstance(item.get("ast"), dict) else None,
                )
            )
        total = len(policies)
        ctx.logger.info("OPA has %d policy module(s)", total)
        if self.fetch_type == "FETCH":
            return self.Out(policies=policies, size=total, total=total)
        if self.fetch_type == "FETCH_ONE":
            return self.Out(policy=policies[0] if policies else None, size=min(total, 1), total=total)
        if self.fetch_type == "STORE":
            path = ctx.working_dir / "policies.ion"
            with path.open("w", encoding="utf-8") as fh:
                for p in policies:
                    fh.write(json.dumps(p.as_dict(), ensure_ascii=False) + "\n")
            return self.Out(uri=ctx.put_file(path), size=total, total=total)
        return self.Out(size=0, total=total)


class Delete(OpaTask, type="io.kestra.plugin.ee.opa.policy.Delete"):
    """Delete a policy module from OPA (``DELETE /v1/policies/{policyId}``); fails when it does not exist."""

    policy_id: Dynamic[str]
    """Identifier of the module to delete."""

    class Out(Output):
        policy_id: str
        """Identifier of the deleted module."""
        deleted: bool
        """True once OPA confirmed the deletion."""

    def run(self, ctx: RunContext) -> Delete.Out:
        with self.client(ctx) as opa:
            ctx.logger.info("deleting policy %s from %s", self.policy_id, opa.host)
            opa.request("DELETE", _policy_url(self.policy_id))
        return self.Out(policy_id=self.policy_id, deleted=True)

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        if not out:
            return []
        return [AssetBundle(outputs=[policy_asset(_host(self.url), out.policy_id, None, "deleted")])]


class Evaluate(OpaTask, type="io.kestra.plugin.ee.opa.policy.Evaluate"):
    """Evaluate a policy decision with OPA's Data API.

    ``POST /v1/data/{policyPath}`` with ``{"input": ...}``. The decision is in ``result``; when it
    is a boolean it is also in ``allowed``. An undefined decision (OPA answers without a
    ``result``) has ``defined: false``. With ``failOnDeny: true`` a false or undefined decision
    fails the task — a gate before, say, starting a VM.
    """

    policy_path: Dynamic[str]
    """Decision to evaluate, relative to ``/v1/data``: ``vm/allow`` (``data.vm.allow`` and ``vm.allow`` work too)."""
    input: Dynamic[Any] = None
    """Input document sent as ``input`` (any JSON value; expressions inside are rendered)."""
    metrics: Dynamic[bool] = False
    """Return OPA's query performance metrics."""
    explain: Dynamic[Literal["notes", "fails", "full", "debug"]] | None = None
    """Return OPA's explanation of the decision: ``notes``, ``fails``, ``full`` or ``debug``."""
    fail_on_deny: Dynamic[bool] = False
    """Fail the task when the decision is ``false`` or undefined (a non-boolean result never fails)."""

    class Out(Output):
        result: Any = None
        """The decision document; absent when undefined."""
        defined: bool
        """False when the decision is undefined (no rule produced a value)."""
        allowed: bool | None = None
        """The decision when it is a boolean; false when undefined."""
        decision_id: str | None = None
        """Identifier OPA gave the decision, when decision logging is on."""
        policy_path: str
        """The evaluated path, such as ``vm/allow``."""
        metrics: dict[str, Any] | None = None
        """OPA's performance metrics, when asked for."""
        explanation: Any = None
        """OPA's explanation, when asked for."""
        _policies: list[tuple[str, str | None]] = PrivateAttr(default_factory=list)

    def run(self, ctx: RunContext) -> Evaluate.Out:
        path = data_path(self.policy_path)
        decision = "data" + ("." + path.replace("/", ".") if path else "")
        params = {"metrics": "true" if self.metrics else None, "explain": self.explain}
        with self.client(ctx) as opa:
            ctx.logger.info("evaluating %s on %s", decision, opa.host)
            payload = {} if self.input is None else {"input": self.input}
            body = opa.request("POST", data_url(path), params=params, json_body=payload)
            defined = "result" in body
            result = body.get("result")
            decision_id = body.get("decision_id")
            if decision_id is not None and not isinstance(decision_id, str):
                decision_id = str(decision_id)
            allowed = result if isinstance(result, bool) else (False if not defined else None)
            out = self.Out(
                result=result,
                defined=defined,
                allowed=allowed,
                decision_id=decision_id,
                policy_path=path,
                metrics=body.get("metrics"),
                explanation=body.get("explanation"),
            )
            if self.assets is not None and self.assets.enable_auto:
                out._policies = self._policies_behind(opa, ctx, path)
        shown = "undefined" if not defined else json.dumps(result)[:200]
        ctx.logger.info(
            "decision %s = %s%s", decision, shown, f" (decision id {decision_id})" if decision_id else ""
        )
        if self.fail_on_deny and (not defined or result is False):
            raise TaskError(
                f"OPA denied {decision}: the decision is {'undefined' if not defined else 'false'}"
                + (f" (decision id {decision_id})" if decision_id else "")
            )
        return out

    @staticmethod
    def _policies_behind(opa: OpaClient, ctx: RunContext, path: str) -> list[tuple[str, str | None]]:
        """Modules whose package is the evaluated path, inside it, or contains it."""
        try:
            items = opa.request("GET", "/v1/policies").get("result") or []
        except TaskError as exc:
            ctx.logger.warning("could not list policies for assets: %s", exc)
            return []
        want = [s for s in path.split("/") if s]
        found = []
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            package = package_of(item.get("raw"), item.get("ast"))
            segs = (_package_path(package) or "").split("/")
            n = min(len(segs), len(want))
            if package and segs[:n] == want[:n]:
                found.append((item["id"], package))
        return found

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        if not out:
            return []
        host = _host(self.url)
        assets = [policy_asset(host, pid, package) for pid, package in out._policies]
        if not assets:
            assets = [
                Asset(
                    id=f"opa:{host}:data/{out.policy_path}",
                    type=EXTERNAL,
                    display_name="data." + out.policy_path.replace("/", "."),
                    metadata={"system": "opa", "kind": "decision", "host": host, "path": out.policy_path},
                )
            ]
        return [AssetBundle(inputs=assets)]


class Compile(OpaTask, type="io.kestra.plugin.ee.opa.policy.Compile"):
    """Partially evaluate a query with OPA's Compile API (``POST /v1/compile``).

    OPA returns the conditions left once everything known is evaluated: ``outcome`` says
    whether the query is ``ALWAYS_TRUE`` (an empty query among ``queries``), ``NEVER_TRUE``
    (no ``queries``) or ``CONDITIONAL`` (the residual ``queries`` must still hold), e.g. to turn
    a policy into a database filter.
    """

    query: Dynamic[str]
    """Rego query to partially evaluate, such as ``data.authz.allow == true``."""
    input: Dynamic[Any] = None
    """Input document known during partial evaluation."""
    unknowns: Dynamic[list[str]] | None = None
    """References treated as unknown, such as ``data.records`` (OPA's default is ``["input"]``)."""
    options: Dynamic[dict[str, Any]] | None = None
    """Compile options passed to OPA, such as ``disableInlining: [...]``."""
    metrics: Dynamic[bool] = False
    """Return OPA's performance metrics."""
    explain: Dynamic[Literal["notes", "fails", "full", "debug"]] | None = None
    """Return OPA's explanation."""

    class Out(Output):
        outcome: Literal["ALWAYS_TRUE", "NEVER_TRUE", "CONDITIONAL"]
        """Whether the query always holds, never holds, or holds under the residual ``queries``."""
        queries: list[Any] | None = None
        """Residual queries (JSON AST), absent when the query can never be true."""
        support: list[Any] | None = None
        """Support modules the residual queries refer to."""
        result: dict[str, Any]
        """OPA's whole ``result`` object."""
        metrics: dict[str, Any] | None = None
        """OPA's performance metrics, when asked for."""
        explanation: Any = None
        """OPA's explanation, when asked for."""

    def run(self, ctx: RunContext) -> Compile.Out:
        body: dict[str, Any] = {"query": self.query}
        if self.input is not None:
            body["input"] = self.input
        if self.unknowns is not None:
            body["unknowns"] = self.unknowns
        if self.options:
            body["options"] = self.options
        params = {"metrics": "true" if self.metrics else None, "explain": self.explain}
        with self.client(ctx) as opa:
            ctx.logger.info("compiling %r on %s", self.query, opa.host)
            answer = opa.request("POST", "/v1/compile", params=params, json_body=body)
            result = answer.get("result")
            if result is None:
                result = {}
            if not isinstance(result, dict):
                raise opa.malformed("POST /v1/compile", "'result' should be an object")
            queries = result.get("queries")
            if queries is not None and not isinstance(queries, list):
                raise opa.malformed("POST /v1/compile", "'result.queries' should be a list")
        if queries is None:
            outcome = "NEVER_TRUE"
        elif any(q == [] for q in queries):
            outcome = "ALWAYS_TRUE"
        else:
            outcome = "CONDITIONAL"
        ctx.logger.info("query %r is %s", self.query, outcome.replace("_", " ").lower())
        support = result.get("support")
        return self.Out(
            outcome=outcome,
            queries=queries,
            support=support if isinstance(support, list) else None,
            result=result,
            metrics=answer.get("metrics"),
            explanation=answer.get("explanation"),
        )


TASKS = (Upload, List, Delete, Evaluate, Compile)

__all__ = ["TASKS", "Compile", "Delete", "Evaluate", "List", "Upload"]
