"""Expression engine (interface stub; the full Pebble-compatible engine replaces it)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from jinja2 import StrictUndefined, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment


class ExpressionError(Exception):
    """An expression failed to parse or render; the message names the expression."""


class Services(Protocol):
    """Run-time services the functions ``secret``, ``kv``, ``read``... reach."""

    namespace: str

    def secret(self, key: str) -> str: ...

    def kv(self, key: str, namespace: str | None = None, error_on_missing: bool = True) -> Any: ...

    def read(self, path: str) -> str: ...

    def file_uri(self, path: str) -> str: ...

    def credential(self, key: str) -> str: ...


@dataclass
class RenderCtx:
    variables: Mapping[str, Any]
    services: Services | None
    engine: ExpressionEngine


class ExpressionEngine:
    def __init__(self, functions: Mapping[str, Callable[..., Any]] | None = None,
                 filters: Mapping[str, Callable[..., Any]] | None = None) -> None:
        self.env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        self.env.filters.update(filters or {})
        self._compile = lru_cache(maxsize=4096)(self._compile_uncached)

    def _compile_uncached(self, template: str) -> tuple[Any, bool]:
        ast = self.env.parse(template)
        single = len(ast.body) == 1 and isinstance(ast.body[0], nodes.Output) and len(ast.body[0].nodes) == 1 \
            and not isinstance(ast.body[0].nodes[0], nodes.TemplateData)
        if single:
            return self.env.compile_expression(template.strip()[2:-2]), True
        return self.env.from_string(template), False

    def render(self, value: Any, variables: Mapping[str, Any], services: Services | None = None) -> Any:
        if isinstance(value, str):
            if "{{" not in value and "{%" not in value:
                return value
            tpl, single = self._compile(value)
            if single:
                return tpl(**variables)
            return tpl.render(**variables)
        if isinstance(value, dict):
            return {self.render(k, variables, services): self.render(v, variables, services) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v, variables, services) for v in value]
        return value

    def render_string(self, template: str, variables: Mapping[str, Any], services: Services | None = None) -> str:
        out = self.render(template, variables, services)
        return out if isinstance(out, str) else json.dumps(out)


_engine: ExpressionEngine | None = None


def get_engine() -> ExpressionEngine:
    global _engine
    if _engine is None:
        _engine = ExpressionEngine()
    return _engine
