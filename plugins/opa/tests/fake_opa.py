"""A fake Open Policy Agent server, over real HTTP on 127.0.0.1, evaluating with a real Rego engine.

No OPA binary can run here, so policies are parsed and evaluated by rego-cpp through PyPI
``regopy``. The HTTP surface follows OPA's REST API reference (openpolicyagent.org/docs/rest-api):

* Policy API: ``GET /v1/policies`` -> ``{"result": [{"id", "raw", "ast"}]}``; ``GET``, ``PUT``
  (``text/plain`` source) and ``DELETE /v1/policies/{id}``; ``PUT`` answers ``{}`` once the module
  parses and compiles together with the other modules, else 400 ``{"code": "invalid_parameter",
  "message": "error(s) occurred while compiling module(s)", "errors": [{"code": "rego_parse_error",
  "message", "location": {"file", "row", "col"}}]}`` built from regopy's real error (its message and
  source offset); an unknown id is 404 ``resource_not_found``.
* Data API: ``POST /v1/data/{path}`` with ``{"input": ...}`` (and ``GET`` without input). The
  document is read by querying ``x := data.<path>``, so that a ``false`` decision comes back as
  ``false`` and an undefined one is told apart: undefined answers ``{}`` with no ``result`` key,
  as OPA does. Every answer carries a ``decision_id`` (decision logging on); ``metrics=true`` adds
  ``metrics`` timers; ``explain=...`` adds an ``explanation`` (always empty: regopy has no tracer);
  a body without ``input`` gets OPA's ``api_usage_warning``.
* Compile API: ``POST /v1/compile`` with ``query``, ``input``, ``unknowns`` (default ``["input"]``).
  regopy has no partial evaluation, so the fake answers only queries that do not depend on an
  unknown: ``{"result": {"queries": [[]]}}`` when the query holds, ``{"result": {}}`` when it cannot.
  A query that refers to an unknown (``input`` when it is unknown, ``data.x`` listed in ``unknowns``)
  gets 500 ``internal_error`` saying partial evaluation is not implemented here. Query syntax errors
  are 400 ``invalid_parameter`` with ``rego_parse_error`` details.
* Authentication: when started with a token, every call needs ``Authorization: Bearer <token>``,
  else 401 ``{"code": "unauthorized", "message": "request rejected by administrative policy"}``.

Faults (status, body, headers, delay) are injected with :meth:`FakeOpa.inject`.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from regopy import Interpreter, LogLevel, RegoError
from regopy.rego_shared import rego_output_ok, rego_output_string, rego_query
from roost.testing.http import FakeHttpServer, Reply, Request

PACKAGE = re.compile(r"^[ \t]*package[ \t]+([^\s#]+)", re.MULTILINE)
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class OpaError(Exception):
    def __init__(self, status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"code": code, "message": message}
        if errors:
            self.body["errors"] = errors


def rego_errors(text: str, sources: dict[str, str], code: str) -> list[dict[str, Any]]:
    """OPA error objects from rego-cpp's error sequence ``(error N:name|offset|len (errormsg N:text) ...)``."""
    out = []
    pos = 0
    while True:
        found = re.compile(r"\(error\s+").search(text, pos)
        if found is None:
            break
        cursor = found.end()
        location = None
        m = re.compile(r"(\d+):").match(text, cursor)
        if m:
            name = text[m.end() : m.end() + int(m.group(1))]
            off = re.compile(r"\|(\d+)\|(\d+)").match(text, m.end() + int(m.group(1)))
            if off and name in sources:
                offset = int(off.group(1))
                src = sources[name]
                row = src.count("\n", 0, offset) + 1
                col = offset - (src.rfind("\n", 0, offset) + 1) + 1
                location = {"file": name, "row": row, "col": col}
        msg = re.compile(r"\(errormsg (\d+):").search(text, cursor)
        if msg is None:
            break
        message = text[msg.end() : msg.end() + int(msg.group(1))]
        err_code = code
        if message.startswith("Function not found"):
            err_code = "rego_type_error"
        elif message.startswith("Recursion"):
            err_code = "rego_recursion_error"
        item: dict[str, Any] = {"code": err_code, "message": message}
        if location:
            item["location"] = location
        out.append(item)
        pos = msg.end() + int(msg.group(1))
    return out or [{"code": code, "message": text.strip()[:500]}]


def ast_of(raw: str) -> dict[str, Any]:
    """A partial AST: only the package path (regopy does not expose OPA's JSON AST)."""
    m = PACKAGE.search(raw)
    parts = m.group(1).split(".") if m else []
    return {
        "package": {
            "path": [{"type": "var", "value": "data"}] + [{"type": "string", "value": p} for p in parts]
        }
    }


@dataclass
class FakeOpa(FakeHttpServer):
    token: str | None = None
    policies: dict[str, str] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    # -- rego ------------------------------------------------------------------------------------------
    @staticmethod
    def interpreter(modules: dict[str, str]) -> Interpreter:
        interp = Interpreter()
        interp.log_level = LogLevel.NONE
        for pid, raw in modules.items():
            interp.add_module(pid, raw)
        return interp

    def compile_modules(self, modules: dict[str, str]) -> None:
        """Raise a 400 OPA error when the modules do not parse or compile together."""
        for pid, raw in modules.items():
            if not PACKAGE.search(raw):
                errors = [
                    {
                        "code": "rego_parse_error",
                        "message": "package expected",
                        "location": {"file": pid, "row": 1, "col": 1},
                    }
                ]
                raise OpaError(
                    400, "invalid_parameter", "error(s) occurred while compiling module(s)", errors
                )
        try:
            interp = self.interpreter(modules)
        except RegoError as exc:
            errors = rego_errors(str(exc), modules, "rego_parse_error")
            raise OpaError(
                400, "invalid_parameter", "error(s) occurred while compiling module(s)", errors
            ) from None
        out = rego_query(interp._impl, "x := data")
        text = rego_output_string(out)
        if not rego_output_ok(out) or text.startswith("(error"):
            errors = rego_errors(text, modules, "rego_compile_error")
            raise OpaError(400, "invalid_parameter", "error(s) occurred while compiling module(s)", errors)

    def check_query(self, query: str) -> None:
        """Parse a query by wrapping it in a rule body, so regopy reports real syntax errors."""
        wrapper = "package roost_fake_query_check\n\nq if {\n" + query + "\n}\n"
        try:
            self.interpreter({"query": wrapper})
        except RegoError as exc:
            errors = rego_errors(str(exc), {"query": wrapper}, "rego_parse_error")
            for err in errors:
                loc = err.get("location")
                if loc:
                    loc["file"] = ""
                    loc["row"] -= 3
            raise OpaError(
                400, "invalid_parameter", "error(s) occurred while parsing query", errors
            ) from None

    def run_query(self, query: str, input_value: Any, has_input: bool) -> tuple[bool, Any]:
        """(defined, value of x) for a query binding ``x``; (defined, None) for a plain query."""
        interp = self.interpreter(self.policies)
        if has_input:
            interp.set_input(input_value)
        out = rego_query(interp._impl, query)
        text = rego_output_string(out)
        if not rego_output_ok(out):
            raise OpaError(500, "internal_error", "evaluation failed (rego engine error)")
        if text.startswith("(error"):
            errs = rego_errors(text, self.policies, "eval_error")
            raise OpaError(500, "internal_error", "; ".join(e["message"] for e in errs))
        if text.strip() == "undefined":
            return False, None
        parsed = json.loads(text)
        results = parsed if isinstance(parsed, list) else [parsed]
        if not results:
            return False, None
        bindings = results[0].get("bindings") or {}
        return True, bindings.get("x")

    # -- set-up ------------------------------------------------------------------------------------
    def add_policy(self, policy_id: str, raw: str) -> None:
        with self.lock:
            modules = {**self.policies, policy_id: raw}
            self.compile_modules(modules)
            self.policies = modules

    # -- request handling ---------------------------------------------------------------------------
    def answer(self, req: Request) -> Reply:
        started = time.perf_counter_ns()
        try:
            status, payload = self.route(req)
            if status == 404 and payload is None:
                return 404, {"Content-Type": "text/plain; charset=utf-8"}, b"404 page not found\n"
            if isinstance(payload, dict) and self.q(req, "metrics") == "true":
                payload["metrics"] = {
                    **payload.get("metrics", {}),
                    "timer_server_handler_ns": time.perf_counter_ns() - started,
                }
            data = json.dumps(payload).encode()
        except OpaError as exc:
            status, data = exc.status, json.dumps(exc.body).encode()
        return status, {"Content-Type": "application/json"}, data

    @staticmethod
    def q(req: Request, name: str) -> str | None:
        values = req.query.get(name)
        return values[0] if values else None

    def route(self, req: Request) -> tuple[int, Any]:
        if self.token is not None and req.headers.get("authorization") != f"Bearer {self.token}":
            raise OpaError(401, "unauthorized", "request rejected by administrative policy")
        path = req.path
        with self.lock:
            if path == "/health":
                return 200, {}
            if path == "/v1/policies":
                if req.method != "GET":
                    raise OpaError(405, "method_not_allowed", "method not allowed")
                return 200, {"result": [self._policy(pid) for pid in self.policies]}
            if path.startswith("/v1/policies/"):
                pid = unquote(path[len("/v1/policies/") :])
                return self.policy_call(req, pid)
            if path == "/v1/data" or path.startswith("/v1/data/"):
                segs = [unquote(s) for s in path[len("/v1/data") :].split("/") if s]
                return self.data_call(req, segs)
            if path == "/v1/compile":
                if req.method != "POST":
                    raise OpaError(405, "method_not_allowed", "method not allowed")
                return self.compile_call(req)
        return 404, None

    def _policy(self, pid: str) -> dict[str, Any]:
        raw = self.policies[pid]
        return {"id": pid, "raw": raw, "ast": ast_of(raw)}

    def policy_call(self, req: Request, pid: str) -> tuple[int, Any]:
        if req.method == "GET":
            if pid not in self.policies:
                raise OpaError(404, "resource_not_found", f'storage_not_found_error: policy id "{pid}"')
            return 200, {"result": self._policy(pid)}
        if req.method == "PUT":
            try:
                raw = req.body.decode("utf-8")
            except UnicodeDecodeError:
                raise OpaError(400, "invalid_parameter", "policy module is not valid UTF-8") from None
            self.add_policy(pid, raw)
            result: dict[str, Any] = {}
            if self.q(req, "metrics") == "true":
                result["metrics"] = {"timer_rego_module_parse_ns": 1000, "timer_rego_module_compile_ns": 1000}
            return 200, result
        if req.method == "DELETE":
            if pid not in self.policies:
                raise OpaError(404, "resource_not_found", f'storage_not_found_error: policy id "{pid}"')
            del self.policies[pid]
            return 200, {}
        raise OpaError(405, "method_not_allowed", "method not allowed")

    def data_call(self, req: Request, segs: list[str]) -> tuple[int, Any]:
        if req.method not in ("GET", "POST"):
            raise OpaError(405, "method_not_allowed", "method not allowed (this fake serves no data writes)")
        has_input, input_value = False, None
        warning = None
        if req.method == "POST":
            try:
                body = json.loads(req.body) if req.body.strip() else {}
            except ValueError as exc:
                raise OpaError(
                    400, "invalid_parameter", f"body contains malformed input document: {exc}"
                ) from None
            if not isinstance(body, dict):
                raise OpaError(400, "invalid_parameter", "body must be an object with an 'input' key")
            if "input" in body:
                has_input, input_value = True, body["input"]
            else:
                warning = {"code": "api_usage_warning", "message": "'input' key missing from the request"}
        ref = "data" + "".join(f".{s}" if IDENT.match(s) else f"[{json.dumps(s)}]" for s in segs)
        started = time.perf_counter_ns()
        defined, value = self.run_query(f"x := {ref}", input_value, has_input)
        elapsed = time.perf_counter_ns() - started
        decision_id = str(uuid.uuid4())
        self.decisions.append(
            {
                "decision_id": decision_id,
                "path": "/".join(segs),
                "input": input_value,
                "result": value,
                "defined": defined,
            }
        )
        answer: dict[str, Any] = {"decision_id": decision_id}
        if defined:
            answer["result"] = value
        if warning:
            answer["warning"] = warning
        if self.q(req, "metrics") == "true":
            answer["metrics"] = {"timer_rego_query_eval_ns": elapsed}
        if self.q(req, "explain"):
            answer["explanation"] = []
        return 200, answer

    def compile_call(self, req: Request) -> tuple[int, Any]:
        try:
            body = json.loads(req.body or b"{}")
        except ValueError as exc:
            raise OpaError(
                400, "invalid_parameter", f"error(s) occurred while decoding request: {exc}"
            ) from None
        query = body.get("query") if isinstance(body, dict) else None
        if not isinstance(query, str) or not query.strip():
            raise OpaError(400, "invalid_parameter", "missing required 'query' value")
        self.check_query(query)
        unknowns = body.get("unknowns", ["input"])
        has_input = "input" in body
        texts = [query, *self.policies.values()]
        for unknown in unknowns or []:
            if unknown == "input":
                depends = any(re.search(r"\binput\b", t) for t in texts)
            else:
                depends = any(unknown in t for t in texts)
            if depends:
                raise OpaError(
                    500,
                    "internal_error",
                    f"partial evaluation over unknown {unknown!r} is not implemented by this fake OPA server "
                    "(regopy has no partial evaluation)",
                )
        defined, _ = self.run_query(query, body.get("input"), has_input)
        answer: dict[str, Any] = {"result": {"queries": [[]]} if defined else {}}
        if self.q(req, "explain"):
            answer["explanation"] = []
        return 200, answer
