"""Tools the model may call: a Roost flow (Kestra's ``io.kestra.plugin.ai.tool.KestraFlow``) and an
HTTP request to one configured API (Roost's ``io.roost.plugin.ai.tool.HttpRequest``).

Each tool gives the model OpenAI function specifications and runs a call from the model's JSON
arguments. A call the tool refuses (missing input, a path outside the base URL, a method not
allowed) or that fails answers the model with the error, so it can correct itself; the agent bounds
how many calls it makes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field
from roost import (
    ApiClient,
    ApiError,
    Dynamic,
    HttpOptions,
    HttpRetry,
    HttpTimeout,
    Model,
    RunContext,
    TaskError,
)


class ToolRefused(Exception):
    """A call the tool will not make; the message goes back to the model."""


@dataclass
class ToolFunction:
    """One function the model can call."""

    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[dict[str, Any]], str]

    def spec(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}  # fmt: skip


_KEY_VALUES = {"type": "array", "items": {"type": "object", "properties": {
    "key": {"type": "string"}, "value": {"type": "string"}}, "required": ["key", "value"]}}  # fmt: skip
_INPUTS = {"type": "array", "description": "The flow's inputs.", "items": {"type": "object", "properties": {
    "id": {"type": "string", "description": "The input id."}, "value": {"description": "The input value."}},
    "required": ["id", "value"]}}  # fmt: skip


_SCHEDULE = {
    "type": "string",
    "description": "Only to run the flow later, not now: an ISO 8601 date-time with its zone.",
}


def _labels(value: Any) -> list[dict[str, str]]:
    if isinstance(value, dict):
        return [{"key": str(k), "value": str(v)} for k, v in value.items()]
    return [
        {"key": str(x.get("key")), "value": str(x.get("value"))} for x in value or () if isinstance(x, dict)
    ]


class KestraFlow(Model):
    """Start a Roost flow (an execution of this tenant): one given here, or any flow the model names."""

    type: Literal["io.kestra.plugin.ai.tool.KestraFlow"]
    namespace: Dynamic[str] | None = None
    """Namespace of the flow (with ``flowId``); without both, the model names the flow."""
    flow_id: Dynamic[str] | None = None
    """Id of the flow (with ``namespace``)."""
    revision: Dynamic[int] | None = None
    """Revision of the flow (the latest by default)."""
    description: Dynamic[str] | None = None
    """What the flow does, for the model (the flow's own description by default; one of them is required)."""
    inputs: dict[str, Any] | None = None
    """Inputs given to every execution; the model's inputs override them."""
    labels: dict[str, str] | list[dict[str, str]] | None = None
    """Labels of the executions; the model's labels override them."""
    inherit_labels: Dynamic[bool] = False
    """Copy this execution's labels to the flow's execution."""
    schedule_date: Dynamic[datetime] | None = None
    """Start the execution at this date (the model's ``scheduleDate`` overrides it)."""
    wait: Dynamic[bool] = False
    """Roost: wait for the execution to end and answer the model with its state and outputs (Kestra answers
    as soon as the execution is created)."""
    wait_timeout: Dynamic[timedelta] = timedelta(minutes=10)
    """Roost: how long to wait with ``wait``."""
    kestra_url: Dynamic[str] | None = None
    """Accepted for compatibility; Roost starts the flow in-process, in this tenant."""
    auth: dict[str, Any] | None = None
    """Accepted for compatibility; Roost starts the flow in-process, in this tenant."""
    tenant_id: Dynamic[str] | None = None
    """Accepted for compatibility; Roost starts flows of this execution's tenant only."""

    def callables(self, ctx: RunContext) -> list[ToolFunction]:
        if (self.namespace is None) != (self.flow_id is None):
            raise TaskError(
                "tool KestraFlow: set both namespace and flowId, or neither (the model then names the flow)"
            )
        own_labels = dict(ctx.variables.get("labels") or {}) if self.inherit_labels else {}
        fixed = [*({"key": k, "value": str(v)} for k, v in own_labels.items() if not str(k).startswith("system.")),
                 *_labels(self.labels)]  # fmt: skip
        if self.namespace is not None:
            flow = ctx.describe_flow(str(self.namespace), str(self.flow_id), self.revision)  # type: ignore[arg-type]
            description = self.description or flow.get("description")
            if not description:
                raise TaskError(f"tool KestraFlow: flow {flow['namespace']}.{flow['id']} has no description and the "
                                "tool's description is empty; the model needs one to know when to call it")  # fmt: skip
            params: dict[str, Any] = {
                "type": "object",
                "properties": {"labels": _KEY_VALUES, "scheduleDate": _SCHEDULE},
            }
            if flow["inputs"]:
                params["properties"]["inputs"] = _INPUTS
                if any(
                    i["required"] and not i["hasDefault"] and i["id"] not in (self.inputs or {})
                    for i in flow["inputs"]
                ):
                    params["required"] = ["inputs"]
                described = "; ".join(f"{i['id']} ({i['type']}{', required' if i['required'] and not i['hasDefault'] else ''})"
                                      + (f": {i['description']}" if i.get("description") else "") for i in flow["inputs"])  # fmt: skip
                description = f"{description}\nInputs: {described}"
            name = "kestra_flow_" + re.sub(r"[^A-Za-z0-9_-]", "_", f"{flow['namespace']}_{flow['id']}")[:50]
            return [ToolFunction(name, description, params,
                              lambda args: self._start(ctx, flow["namespace"], flow["id"], self.revision, args, fixed))]  # fmt: skip
        params = {"type": "object", "properties": {
            "namespace": {"type": "string"}, "flowId": {"type": "string"}, "revision": {"type": "integer"},
            "inputs": _INPUTS, "labels": _KEY_VALUES, "scheduleDate": _SCHEDULE}, "required": ["namespace", "flowId"]}  # fmt: skip
        description = ("This tool executes a Roost (Kestra) workflow, also called a flow, and answers with the "
                       "execution. The namespace and the id of the flow must be passed as parameters.")  # fmt: skip

        def generic(args: dict[str, Any]) -> str:
            ns, fid = args.get("namespace"), args.get("flowId")
            if not isinstance(ns, str) or not isinstance(fid, str):
                raise ToolRefused("namespace and flowId are required")
            rev = args.get("revision")
            return self._start(ctx, ns, fid, int(rev) if isinstance(rev, int | float) else None, args, fixed)

        return [ToolFunction("kestra_flow", description, params, generic)]

    def _start(self, ctx: RunContext, namespace: str, flow_id: str, revision: int | None, args: dict[str, Any],
               fixed: list[dict[str, str]]) -> str:  # fmt: skip
        given = {str(i.get("id")): i.get("value") for i in args.get("inputs") or () if isinstance(i, dict)}
        inputs = {**(self.inputs or {}), **given}
        try:
            flow = ctx.describe_flow(namespace, flow_id, revision)
        except TaskError as exc:
            raise ToolRefused(str(exc)) from None
        for i in flow["inputs"]:
            if i["required"] and not i["hasDefault"] and i["id"] not in inputs:
                raise ToolRefused(f"You need to provide an input with the id '{i['id']}'.")
        labels = {lbl["key"]: lbl["value"] for lbl in [*fixed, *_labels(args.get("labels"))]}
        when = self.schedule_date if isinstance(self.schedule_date, datetime) else None
        if args.get("scheduleDate"):
            try:
                when = datetime.fromisoformat(str(args["scheduleDate"]))
            except ValueError:
                raise ToolRefused(
                    "scheduleDate must be an ISO 8601 date-time, e.g. 2026-01-31T09:00:00+01:00"
                ) from None
            if when.tzinfo is None:
                raise ToolRefused("scheduleDate needs a time zone, e.g. 2026-01-31T09:00:00Z")
        try:
            result = ctx.start_flow(namespace, flow_id, inputs=inputs, revision=revision, wait=bool(self.wait),
                                    schedule_date=when,
                                    labels=[{"key": k, "value": v} for k, v in labels.items()],
                                    timeout=self.wait_timeout.total_seconds() if self.wait else None)  # type: ignore[union-attr]  # fmt: skip
        except TaskError as exc:
            raise ToolRefused(str(exc)) from None
        return json.dumps({"namespace": namespace, "flowId": flow_id, "id": result["executionId"],
                           "state": {"current": result["state"]},
                           **({"outputs": result["outputs"]} if "outputs" in result else {})}, default=str)  # fmt: skip


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


class _ToolHttp(ApiClient):
    service = "HTTP tool"
    retry = HttpRetry(max_retries=2, max_wait=10.0)


class HttpRequest(Model):
    """Call one HTTP API: the model chooses the method (among ``methods``), the path under ``baseUrl``,
    the query and the body; ``headers`` (credentials) are added by Roost and never shown to the model."""

    type: Literal["io.roost.plugin.ai.tool.HttpRequest"]
    name: str = Field(default="http_request", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """The tool's name, as the model sees it."""
    description: Dynamic[str]
    """What the API does and when to call it, for the model."""
    base_url: Dynamic[str]
    """Every call goes under this URL (the model cannot reach another host or a parent path)."""
    methods: list[Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]] = Field(
        default=["GET"], min_length=1
    )
    """The methods the model may use."""
    headers: dict[str, Dynamic[str]] | None = None
    """Headers of every call (e.g. ``Authorization``), hidden from the model."""
    timeout: Dynamic[timedelta] = timedelta(seconds=30)
    """How long one call may wait for the API."""
    max_response_chars: int = Field(default=20_000, ge=100, le=1_000_000)
    """Longest response body handed to the model (longer ones are cut)."""

    def callables(self, ctx: RunContext) -> list[ToolFunction]:
        base = str(self.base_url).rstrip("/")
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TaskError(f"tool {self.name}: baseUrl must be an http(s) URL")
        params = {"type": "object", "properties": {
            "method": {"type": "string", "enum": list(self.methods)},
            "path": {"type": "string", "description": f"Path under {base} (e.g. /items/42)."},
            "query": {"type": "object", "additionalProperties": {"type": "string"}},
            "body": {"type": "string", "description": "Request body (JSON text for JSON APIs)."}},
            "required": ["method", "path"]}  # fmt: skip
        return [
            ToolFunction(self.name, str(self.description), params, lambda args: self._call(ctx, base, args))
        ]

    def _call(self, ctx: RunContext, base: str, args: dict[str, Any]) -> str:
        method = str(args.get("method") or "GET").upper()
        if method not in self.methods:
            raise ToolRefused(f"method {method} is not allowed (allowed: {', '.join(self.methods)})")
        path = str(args.get("path") or "/")
        segments = path.split("?")[0].split("/")
        encoded = path.lower()
        if "://" in path or path.startswith("//") or "\\" in path or ".." in segments \
                or any(e in encoded for e in ("%2e", "%2f", "%5c", "%00")) or any(c in path for c in "\r\n\x00#"):  # fmt: skip
            raise ToolRefused(f"path {path!r} is not a path under {base}")
        query = args.get("query") or {}
        if not isinstance(query, dict):
            raise ToolRefused("query must be an object of names to values")
        body = args.get("body")
        headers = {str(k): str(v) for k, v in (self.headers or {}).items()}
        seconds = self.timeout.total_seconds()  # type: ignore[union-attr]
        # no redirects: an answer must not send the model's request to another host
        options = HttpOptions(
            timeout=HttpTimeout(read_idle_timeout=timedelta(seconds=seconds)), follow_redirects=False
        )
        with _ToolHttp(
            base, headers=headers, secrets=list(headers.values()), options=options, ctx=ctx
        ) as http:
            try:
                response = http.send(method, "/" + path.lstrip("/"), params={str(k): str(v) for k, v in query.items()},
                                     content=body if isinstance(body, str) else (json.dumps(body) if body is not None else None),
                                     headers={"Content-Type": "application/json"} if body is not None else None)  # fmt: skip
            except ApiError as exc:
                return http.scrub(f"failed: {exc}")[: self.max_response_chars]
            text = http.scrub(response.text)
        if len(text) > self.max_response_chars:
            text = text[: self.max_response_chars] + "\n[cut]"
        return (
            f"HTTP {response.status_code}\ncontent-type: {response.headers.get('content-type', '')}\n\n{text}"
        )


Tool = Annotated[KestraFlow | HttpRequest, Field(discriminator="type")]
