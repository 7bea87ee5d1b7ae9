"""The AI Copilot: a flow (or a flow test) from a prompt that validates against the installed types.

:func:`generate` runs the loop: build the system prompt (the installed types that fit the context
budget, ranked by relevance to the prompt and the current YAML; the namespace's plugin defaults;
the rules of a flow), ask the model, take the YAML out of its answer, validate it with the function
the validate route uses (plugin defaults honoured), and when it does not validate, send the
violations back and ask again — at most ``ai.maxAttempts`` model calls. It answers the YAML, or
raises :class:`CopilotError` with the last violations (and the last draft): never an invalid flow
presented as valid.

Provider failures become :class:`CopilotError` with an HTTP status naming the model: 504 for a
timeout, 429 (with ``Retry-After``) when the provider rate-limits, 502 for a refused key, an
unreachable endpoint or a malformed answer, 503 when the model's API key reference cannot be
resolved. The API key is resolved from its reference at each call and scrubbed from every message.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from roost.server.config import AiConfig, AiModel

FENCE = re.compile(r"```(?:ya?ml|YAML)?[ \t]*\n(.*?)```", re.DOTALL)
_WORD = re.compile(r"[a-z][a-z0-9]{2,}")
_SECRET_KEY = re.compile(
    r"pass(word|phrase)?|secret|token|api[_-]?key|private[_-]?key|credential", re.IGNORECASE
)
_STOP = frozenset(["the", "and", "for", "with", "that", "this", "from", "into", "then", "when", "each", "every", "flow", "task", "tasks", "type", "run", "runs", "use", "using", "add", "make", "create", "should", "want", "write", "which", "what"])  # fmt: skip
MAX_PROMPT = 20_000  # characters of a user prompt
MAX_YAML = 200_000  # characters of the current YAML sent along
DETAILED = 8  # the most relevant types are described property by property


@dataclass
class CopilotError(Exception):
    status: int
    message: str
    violations: list[dict[str, Any]] = field(default_factory=list)
    draft: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class TypeCard:
    """What the model is told about one installed type."""

    id: str
    kind: str  # task | trigger
    summary: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    words: frozenset[str]
    properties: tuple[str, ...] = ()  # "name (type): description" of each own property

    def text(self) -> str:
        line = f"- {self.id} ({self.kind})"
        if self.summary:
            line += f": {self.summary}"
        if self.required:
            line += f" | required: {', '.join(self.required)}"
        if self.optional:
            line += f" | optional: {', '.join(self.optional)}"
        return line

    def detail(self) -> str:
        """The card with each property's type and description (for the few most relevant types)."""
        if not self.properties:
            return self.text()
        head = f"- {self.id} ({self.kind})" + (f": {self.summary}" if self.summary else "")
        return head + "".join(f"\n    {p}" for p in self.properties)


_CARDS: dict[int, tuple[TypeCard, ...]] = {}
_CARDS_LOCK = threading.Lock()
_COMMON = frozenset({"id", "type", "description", "disabled", "retry", "timeout", "logLevel", "logToFile",
                     "allowFailure", "allowWarning", "runIf", "workerGroup", "taskCache", "assets"})  # fmt: skip


def type_cards(plugins: Any) -> tuple[TypeCard, ...]:
    """Every installed task and trigger type, compactly (cached per plugin registry)."""
    with _CARDS_LOCK:
        found = _CARDS.get(id(plugins))
        if found is not None:
            return found
    from roost.flow.schema import type_schema

    cards = []
    for kind, types in (("task", plugins.task_types()), ("trigger", plugins.trigger_types())):
        for tid, cls in sorted(types.items()):
            if getattr(cls, "type_id", tid) != tid:
                continue  # an older alias: the model is told the current id only
            try:
                schema = type_schema(cls)
            except Exception:  # a type whose schema cannot be built is still named
                schema = {}
            props = schema.get("properties", {})
            required = tuple(p for p in schema.get("required", []) if p not in _COMMON)
            optional = tuple(p for p in props if p not in _COMMON and p not in required)[:12]
            summary = (schema.get("description") or "").strip().split("\n")[0][:160]
            words = frozenset(_WORD.findall(f"{tid} {summary} {' '.join(props)}".lower().replace(".", " ")))
            described = tuple(
                _describe(name, props[name], name in required) for name in (*required, *optional)
            )
            cards.append(TypeCard(tid, kind, summary, required, optional, words, described))
    result = tuple(cards)
    with _CARDS_LOCK:
        _CARDS[id(plugins)] = result
    return result


def _describe(name: str, prop: dict[str, Any], required: bool) -> str:
    """``name (type, required): description`` of one property, from its JSON schema."""
    kinds = []
    for option in prop.get("anyOf") or [prop]:
        if "enum" in option:
            kinds.append(" | ".join(json.dumps(v) for v in option["enum"][:8]))
        elif "const" in option:
            kinds.append(json.dumps(option["const"]))
        elif option.get("type") and option.get("type") != "null":
            kinds.append(str(option["type"]))
    if prop.get("$dynamic"):
        kinds.append("{{ expression }}")
    kind = " or ".join(dict.fromkeys(kinds)) or "object"
    text = (prop.get("description") or prop.get("title") or "").strip().split("\n")[0][:100]
    return f"{name} ({kind}{', required' if required else ''})" + (f": {text}" if text else "")


def rank(cards: tuple[TypeCard, ...], prompt: str, yaml_text: str) -> list[TypeCard]:
    """The cards most relevant first: types the current YAML uses, then by words shared with the
    prompt (rarer words weigh more), then the core types, then the rest by id."""
    asked = {w for w in _WORD.findall(prompt.lower()) if w not in _STOP}
    used = set(re.findall(r"type:\s*[\"']?([\w.]+)", yaml_text or ""))
    counts: dict[str, int] = {}
    for card in cards:
        for w in card.words & asked:
            counts[w] = counts.get(w, 0) + 1

    def score(card: TypeCard) -> tuple[int, float, int, str]:
        hits = sum(1.0 / counts[w] for w in card.words & asked)
        return (0 if card.id in used else 1, -hits, 0 if ".core." in card.id else 1, card.id)

    return sorted(cards, key=score)


def _defaults_text(defaults: list[Any]) -> str:
    """The namespace's effective plugin defaults, with values of secret-like keys hidden."""
    rows = []
    for d in defaults:
        values = {k: ("<hidden>" if _SECRET_KEY.search(str(k)) else v) for k, v in (d.values or {}).items()}
        rows.append({"type": d.type, "values": values, **({"forced": True} if d.forced else {})})
    return json.dumps(rows, default=str)[:4000]


RULES = """You write Kestra flows in YAML for Roost, a Kestra-compatible orchestrator.
Answer with exactly one YAML document in a ```yaml fenced block and nothing else.
A flow has `id`, `namespace` and `tasks` (a list; each task has a unique `id` and a `type`), and may have
`inputs`, `outputs`, `triggers`, `errors`, `finally`, `labels`, `variables`, `description`, `pluginDefaults`.
Use ONLY the types listed below, with the properties they list; never invent a type or a property.
Dynamic values use {{ }} expressions (inputs.x, outputs.<taskId>.<output>, vars.x, secret('KEY'), kv('KEY')).
Never write a credential in clear: use {{ secret('NAME') }}.
Properties the namespace's plugin defaults supply may be left out."""

TEST_RULES = """You write Kestra flow tests (test suites) in YAML for Roost.
Answer with exactly one YAML document in a ```yaml fenced block and nothing else.
A test suite has `id`, `namespace`, `flowId` (the flow under test) and `testCases`: a list of cases, each with
an `id`, an optional `description`, optional `fixtures` (`inputs`, and `tasks`: a list of
{id: <task id of the flow>, value/outputs/state} replacing that task's run) and `assertions`: a list of
{value: "{{ outputs.<taskId>.<output> }}", <operator>: <expected>, taskId: <task id>} where the operator is
one of equalTo, notEqualTo, contains, startsWith, endsWith, greaterThan, lessThan, isNull, isNotNull.
Refer only to task ids that exist in the flow."""


def system_prompt(config: AiConfig, cards: list[TypeCard], defaults: list[Any], namespace: str | None) -> str:
    parts = [RULES]
    if namespace:
        parts.append(f"The flow's namespace is `{namespace}`.")
    if defaults:
        parts.append("Plugin defaults of this namespace (type, values): " + _defaults_text(defaults))
    budget = config.context_budget - sum(len(p) + 2 for p in parts) - 100  # the list's heading
    lines = []
    for i, card in enumerate(cards):
        text = card.detail() if i < DETAILED else card.text()
        if len(text) + 1 > budget:
            continue  # a shorter card further down may still fit
        lines.append(text)
        budget -= len(text) + 1
    parts.append(
        f"Installed types ({len(lines)} of {len(cards)}, the most relevant to the request):\n"
        + "\n".join(lines)
    )
    return "\n\n".join(parts)


def extract_yaml(answer: str | None) -> str:
    """The YAML of a model's answer: the first fenced block, else the whole answer."""
    text = answer or ""
    found = FENCE.search(text)
    body = found.group(1) if found else text
    return body.strip("\n").rstrip() + "\n"


# -- conversations -----------------------------------------------------------------------------------
class Conversations:
    """The last prompts of each conversation (per principal and ``conversationId``), so a follow-up
    ("now retry it twice") is understood; bounded in number and age, kept in memory only."""

    def __init__(self, keep: int = 6, size: int = 1000, ttl: float = 3600.0) -> None:
        self.keep, self.size, self.ttl = keep, size, ttl
        self._data: OrderedDict[tuple[str, str], tuple[float, list[str]]] = OrderedDict()
        self._lock = threading.Lock()

    def history(self, who: str, conversation: str) -> list[str]:
        with self._lock:
            found = self._data.get((who, conversation))
            if found is None or found[0] < time.monotonic() - self.ttl:
                return []
            return list(found[1])

    def add(self, who: str, conversation: str, prompt: str) -> None:
        with self._lock:
            _, prompts = self._data.pop((who, conversation), (0.0, []))
            self._data[(who, conversation)] = (time.monotonic(), [*prompts, prompt][-self.keep :])
            while len(self._data) > self.size:
                self._data.popitem(last=False)


CONVERSATIONS = Conversations()


# -- the model ---------------------------------------------------------------------------------------
def model_settings(model: AiModel, secrets: Any) -> Any:
    """The :class:`roost.llm.ModelSettings` of a configured model, its API key resolved now."""
    from roost.credentials.base import CredentialConfig, CredentialError
    from roost.expr import ExpressionError
    from roost.llm import ModelSettings

    key = None
    if model.api_key:
        try:
            key = CredentialConfig(
                f"ai.{model.id or 'transcription'}", {}, type="ai", secrets=secrets
            ).resolve(model.api_key, "apiKey")
        except (CredentialError, ExpressionError) as exc:
            raise CopilotError(503, f"the AI model {model.id or model.model!r} cannot be used: its apiKey reference "
                                    f"cannot be resolved ({_first_line(exc)})") from None  # fmt: skip
    return ModelSettings(model.kind, model.model, base_url=model.base_url, api_key=key, headers=dict(model.headers),
                         timeout=model.timeout, name=model.id or model.model)  # fmt: skip


def _first_line(exc: Exception) -> str:
    return str(exc).split("\n")[0][:300]


def call_model(settings: Any, messages: list[dict[str, Any]]) -> str:
    """One chat call; provider failures become :class:`CopilotError` naming the model."""
    from roost.llm import ChatClient
    from roost.rest import ApiError, HttpRetry

    name = settings.name
    # interactive: a 429 is passed on to the user at once, with the provider's Retry-After
    with ChatClient(settings, retry=HttpRetry(max_retries=0)) as client:
        try:
            result = client.chat(messages)
        except ApiError as exc:
            message = client.scrub(str(exc))
            if exc.timed_out:
                raise CopilotError(
                    504, f"the AI model {name!r} did not answer within {settings.timeout:g} s"
                ) from None
            if exc.status == 429:
                headers = {"Retry-After": str(int(exc.retry_after))} if exc.retry_after is not None else {}
                raise CopilotError(429, f"the AI model {name!r} is rate-limited by its provider: {message}",
                                   headers=headers) from None  # fmt: skip
            if exc.status in (401, 403):
                raise CopilotError(502, f"the AI model {name!r} refused Roost's credentials (HTTP {exc.status}): "
                                        f"{message}") from None  # fmt: skip
            raise CopilotError(502, f"the AI model {name!r} failed: {message}") from None
    if not (result.text or "").strip():
        raise CopilotError(502, f"the AI model {name!r} answered with no text")
    return result.text or ""


# -- the loop ------------------------------------------------------------------------------------------
@dataclass
class Request:
    prompt: str
    yaml: str | None
    namespace: str | None
    conversation: str
    principal: str


def generate(st: Any, tenant: str, model: AiModel, req: Request, *, kind: str = "flow") -> str:
    """A flow (``kind="flow"``) or a flow test suite (``"test"``) for the request; validated."""
    config: AiConfig = st.config.ai
    plugins = st.engine.plugins
    current = req.yaml or ""
    namespace = req.namespace or yaml_field(current, "namespace") if kind == "flow" else None
    if kind == "flow":
        cards = rank(type_cards(plugins), req.prompt, current)
        defaults = st.engine.defaults(tenant, namespace) if namespace else []
        system = system_prompt(config, cards, defaults, namespace)
    else:
        system = TEST_RULES
    settings = model_settings(model, st.engine.runtime(tenant).secrets)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    earlier = CONVERSATIONS.history(req.principal, req.conversation)
    if earlier:
        messages.append(
            {"role": "user", "content": "Earlier requests in this conversation:\n- " + "\n- ".join(earlier)}
        )
    if kind == "flow":
        ask = (f"The current flow:\n```yaml\n{current}```\n\nChange it as asked: {req.prompt}" if current.strip()
               else f"Write a flow: {req.prompt}")  # fmt: skip
    else:
        ask = f"The flow under test:\n```yaml\n{current}```\n\nWrite a test suite for it: {req.prompt}"
    messages.append({"role": "user", "content": ask})
    draft, violations = None, []
    for _attempt in range(config.max_attempts):
        answer = call_model(settings, messages)
        draft = extract_yaml(answer)
        violations = (_flow_violations(st, tenant, draft, current) if kind == "flow"
                      else _test_violations(draft, current))  # fmt: skip
        if not violations:
            CONVERSATIONS.add(req.principal, req.conversation, req.prompt)
            return draft
        messages.append({"role": "assistant", "content": answer})
        messages.append({"role": "user", "content": "This does not validate on this server:\n"
                         + "\n".join(_violation_line(v) for v in violations[:40])
                         + "\nFix every problem and answer with the whole corrected YAML."})  # fmt: skip
    what = "flow" if kind == "flow" else "test suite"
    raise CopilotError(422, f"the AI model {model.id!r} did not produce a valid {what} in {config.max_attempts} "
                            f"attempt{'s' if config.max_attempts > 1 else ''}; the last draft has "
                            f"{len(violations)} problem{'s' if len(violations) > 1 else ''}",
                       violations=violations, draft=draft)  # fmt: skip


def _violation_line(v: dict[str, Any]) -> str:
    where = f"line {v['line']}: " if v.get("line") else ""
    return f"- {where}{v.get('path') or '<root>'}: {v.get('message')}"


def yaml_field(text: str, key: str) -> str | None:
    """A top-level string of a YAML document (``id``, ``namespace``), or None when absent or unreadable."""
    from roost.flow.yaml import load_document

    try:
        data = load_document(text).data if text.strip() else None
    except Exception:
        return None
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _flow_violations(st: Any, tenant: str, draft: str, current: str) -> list[dict[str, Any]]:
    from roost.server.routes.flows import validate_sources

    results = validate_sources(st, tenant, [("body", draft)])
    violations: list[dict[str, Any]] = []
    if len(results) != 1:
        violations.append({"path": "", "message": f"expected one YAML document, got {len(results)}"})
    for r in results:
        violations.extend(r.get("violations") or [])
    # a deployed flow's id and namespace cannot change when it is saved again: keep them
    before = {key: yaml_field(current, key) for key in ("id", "namespace")}
    if before["id"] and before["namespace"] and st.store.get_flow(tenant, before["namespace"], before["id"]):
        for key, value in before.items():
            after = yaml_field(draft, key)
            if after and after != value:
                violations.append(
                    {"path": key, "message": f"must stay {value!r} (the flow being edited), not {after!r}"}
                )
    return violations


TEST_OPERATORS = frozenset({"equalTo", "notEqualTo", "contains", "startsWith", "endsWith", "greaterThan",
                            "greaterThanOrEqualTo", "lessThan", "lessThanOrEqualTo", "isNull", "isNotNull", "in",
                            "notIn"})  # fmt: skip


def _task_ids(flow: Any) -> set[str]:
    ids: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("id"), str) and isinstance(node.get("type"), str):
                ids.add(node["id"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for key in ("tasks", "errors", "finally", "afterExecution"):
        walk(flow.get(key) if isinstance(flow, dict) else None)
    return ids


def _test_violations(draft: str, flow_yaml: str) -> list[dict[str, Any]]:
    """A test suite's structure (Kestra 1.3's ``id, namespace, flowId, testCases``) and its references:
    every task id a fixture or an assertion names exists in the flow under test."""
    from roost.flow.yaml import format_path, load_document

    out: list[dict[str, Any]] = []
    try:
        doc = load_document(draft)
    except Exception as exc:
        return [{"path": "", "message": f"not valid YAML: {_first_line(exc)}"}]
    suite = doc.data

    def bad(path: tuple[Any, ...], message: str) -> None:
        out.append({"path": format_path(path), "message": message, "line": doc.line_of(path)})

    if not isinstance(suite, dict):
        return [{"path": "", "message": "a test suite is a mapping (id, namespace, flowId, testCases)"}]
    try:
        flow = load_document(flow_yaml).data if flow_yaml.strip() else {}
    except Exception:
        flow = {}
    flow = flow if isinstance(flow, dict) else {}
    for key in ("id", "namespace", "flowId"):
        if not isinstance(suite.get(key), str) or not suite[key].strip():
            bad((key,), "required (a string)")
    for key, expected in (("namespace", flow.get("namespace")), ("flowId", flow.get("id"))):
        if isinstance(expected, str) and isinstance(suite.get(key), str) and suite[key] != expected:
            bad((key,), f"must be {expected!r}, the flow under test")
    known_keys = {"id", "namespace", "flowId", "description", "testCases", "disabled"}
    for key in suite:
        if key not in known_keys:
            bad((key,), f"unknown property (known: {', '.join(sorted(known_keys))})")
    cases = suite.get("testCases")
    if not isinstance(cases, list) or not cases:
        bad(("testCases",), "required: a list of at least one test case")
        return out
    tasks = _task_ids(flow)
    seen: set[str] = set()
    for i, case in enumerate(cases):
        at = ("testCases", i)
        if not isinstance(case, dict):
            bad(at, "a test case is a mapping (id, fixtures, assertions)")
            continue
        cid = case.get("id")
        if not isinstance(cid, str) or not cid:
            bad((*at, "id"), "required (a string)")
        elif cid in seen:
            bad((*at, "id"), f"{cid!r} is used by another test case")
        else:
            seen.add(cid)
        fixtures = case.get("fixtures") or {}
        if not isinstance(fixtures, dict):
            bad((*at, "fixtures"), "expected a mapping (inputs, tasks, files)")
            fixtures = {}
        for j, fx in enumerate(fixtures.get("tasks") or []):
            tid = fx.get("id") if isinstance(fx, dict) else None
            if not isinstance(tid, str):
                bad((*at, "fixtures", "tasks", j, "id"), "required: the id of a task of the flow")
            elif tasks and tid not in tasks:
                bad(
                    (*at, "fixtures", "tasks", j, "id"),
                    f"the flow has no task {tid!r} (tasks: {', '.join(sorted(tasks))})",
                )
        assertions = case.get("assertions")
        if not isinstance(assertions, list) or not assertions:
            bad((*at, "assertions"), "required: a list of at least one assertion")
            continue
        for j, a in enumerate(assertions):
            where = (*at, "assertions", j)
            if not isinstance(a, dict):
                bad(where, "an assertion is a mapping (value and an operator)")
                continue
            if "value" not in a:
                bad(
                    (*where, "value"), "required: the value to check, usually {{ outputs.<taskId>.<output> }}"
                )
            if not TEST_OPERATORS & set(a):
                bad(where, f"no operator (one of {', '.join(sorted(TEST_OPERATORS))})")
            refs = set(re.findall(r"outputs\.([A-Za-z0-9_-]+)", str(a.get("value", ""))))
            if isinstance(a.get("taskId"), str):
                refs.add(a["taskId"])
            for ref in sorted(refs):
                if tasks and ref not in tasks:
                    bad(
                        where,
                        f"refers to task {ref!r}, which the flow does not have (tasks: {', '.join(sorted(tasks))})",
                    )
    return out
