"""The expression engine: sandboxed Jinja2 that reads and behaves like Kestra's Pebble.

* ``render(value, variables)`` walks dicts and lists; a string that is a single
  ``{{ expression }}`` keeps the expression's native type, any other template
  renders to text with maps and lists as compact JSON, booleans as
  ``true``/``false`` and null as nothing.
* Variables are strict: a missing one fails with Kestra's message
  ``Unable to find `x` used in the expression `{{ x }}` at line 1``, while
  ``is defined``, ``??``, ``???`` and ``default`` accept it.
* Templates compile once (LRU cache by source). Single variable paths and plain
  ``text {{ a.b }} text`` templates bypass Jinja at render time, a dict walk.
* Everything runs in an :class:`ImmutableSandboxedEnvironment`: no underscore
  attributes, no mutation of lists/dicts, no ``str.format``, bounded ``range``,
  ``*`` and ``indent``, and a map's keys always win over its methods.
* Every render has a time and an output size budget (:mod:`roost.expr.budget`),
  spent by the sandbox's hooks: loops, calls, filters, operators, literals and
  the text written. Nothing is folded at compile time, so validating a flow
  never runs a filter.
"""

from __future__ import annotations

import math
import threading
import types
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, Undefined, nodes, pass_context
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from roost.expr import budget as _budget
from roost.expr import filters as _filters
from roost.expr import functions as _functions
from roost.expr.pebble import PebbleCodeGenerator, PebbleLexer, PebbleParser
from roost.expr.values import Entry, check_printable, is_empty, to_json, to_text

MAX_INT_BITS = 13_000  # about 4,000 digits: Python will not print an integer past 4,300
CACHE_SIZE = 4096
_RESULT = "__roost_result"


class ExpressionError(Exception):
    """An expression failed to parse or render; the message names the expression."""


class Services(Protocol):
    """Run-time services the functions ``secret``, ``kv``, ``read``... reach.

    Optional attributes, read with ``getattr``: ``encryption_key: str | None``
    (the key of one-argument ``encrypt()``/``decrypt()``) and
    ``secret_values: set[str]`` (every secret value an expression returned is
    added to it, so the caller can :func:`~roost.expr.masking.mask` logs).
    """

    namespace: str

    def secret(self, key: str) -> str: ...

    def kv(self, key: str, namespace: str | None = None, error_on_missing: bool = True) -> Any: ...

    def read(self, path: str) -> str: ...

    def file_uri(self, path: str) -> str: ...

    def credential(self, key: str) -> str: ...


@dataclass
class RenderCtx:
    """What a context function (built-in or from a plugin) receives as first argument."""

    variables: Mapping[str, Any]
    services: Services | None
    engine: ExpressionEngine


Ctx = RenderCtx  # the name the hook specification uses


# -- undefined values -----------------------------------------------------------------------------
class UndefinedVariableError(UndefinedError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


class PebbleUndefined(StrictUndefined):
    """Strict like Pebble's ``strictVariables``: any use of a missing value fails, naming it."""

    __slots__ = ()

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
        if (
            self._undefined_hint is None
            and self._undefined_exception is UndefinedError
            and self._undefined_name
        ):
            raise UndefinedVariableError(str(self._undefined_name), self._undefined_message)
        raise self._undefined_exception(self._undefined_message)


# StrictUndefined binds these to the base class's function; rebind them to ours.
for _op in [
    "__iter__",
    "__str__",
    "__len__",
    "__eq__",
    "__ne__",
    "__bool__",
    "__hash__",
    "__contains__",
    "__add__",
    "__radd__",
    "__sub__",
    "__rsub__",
    "__mul__",
    "__rmul__",
    "__truediv__",
    "__rtruediv__",
    "__floordiv__",
    "__rfloordiv__",
    "__mod__",
    "__rmod__",
    "__pos__",
    "__neg__",
    "__call__",
    "__getitem__",
    "__lt__",
    "__le__",
    "__gt__",
    "__ge__",
    "__int__",
    "__float__",
    "__complex__",
    "__pow__",
    "__rpow__",
]:
    setattr(PebbleUndefined, _op, PebbleUndefined._fail_with_undefined_error)


def _fail_if_undefined(value: Any) -> None:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()


def _typed_result(value: Any) -> Any:
    """A computed value, ready for the caller: a lazy sequence listed, no undefined or function inside."""
    if isinstance(value, types.GeneratorType):  # Jinja's map/select filters are lazy
        value = list(value)
    _check_value(value, 4)
    return value


def _check_value(value: Any, depth: int) -> None:
    # Only literals built by the template can hide an undefined, and they are
    # shallow: a bounded depth keeps large outputs from being walked in full.
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if depth and isinstance(value, list | tuple):
        for item in value:
            _check_value(item, depth - 1)
    elif depth and isinstance(value, dict):
        for item in value.values():
            _check_value(item, depth - 1)
    elif isinstance(value, types.GeneratorType):
        raise TypeError("a lazy sequence cannot be nested in a value; add | list")
    else:
        check_printable(value)


# -- the environment ----------------------------------------------------------------------------
# Callable attributes that could allocate without bound (a result far larger than the budget can see
# coming) or format with attribute access; the filters of the same names are bounded.
_UNSAFE_ATTRIBUTES = frozenset(
    {
        "format",
        "format_map",
        "center",
        "ljust",
        "rjust",
        "zfill",
        "expandtabs",
        "mro",
        "replace",
        "join",
        "translate",
        "maketrans",
    }  # fmt: skip
)


def _finalize(value: Any) -> str:
    """Every ``{{ }}`` written as text (into the output, or a captured block) is charged."""
    t = type(value)
    text = value if t is str else str(value) if t is int else to_text(value)
    render = _current_render()
    if render is not None:
        budget = render.budget
        budget.remaining -= len(text)
        if budget.remaining < 0:
            budget.too_large()
    return text


_current_render = _budget.RENDER.get  # bound once: finalize runs for every {{ }} written


def _ticking(items: Any, budget: _budget.Budget, static: int) -> Any:
    """A loop's items, checking the clock and charging the text the loop body writes, per iteration."""
    for n, item in enumerate(items):
        budget.remaining -= static
        if budget.remaining < 0:
            budget.too_large()
        if not n & 7:  # the clock every 8 iterations: a body is never long without a call or loop
            budget.tick()
        yield item


class PebbleEnvironment(ImmutableSandboxedEnvironment):
    code_generator_class = PebbleCodeGenerator
    intercepted_binops = frozenset({"*", "/", "%", "+"})

    def __init__(self) -> None:
        super().__init__(
            undefined=PebbleUndefined,
            autoescape=False,
            keep_trailing_newline=True,  # Pebble keeps the last newline (YAML block scalars)
            finalize=_finalize,
            cache_size=0,
            optimized=False,  # constant folding would run filters while a flow is validated, outside any budget
        )
        self._pebble_lexer = PebbleLexer(self)
        self.globals.clear()  # no range/lipsum/cycler/joiner/dict/namespace from Jinja
        for name in _filters.REMOVED_JINJA_FILTERS:
            self.filters.pop(name, None)
        self.filters.update(_filters.FILTERS)
        self.tests.update(
            {
                "null": _test_null,
                "empty": _test_empty,
                "json": _test_json,
                "map": _test_map,
            }
        )

    @property
    def lexer(self) -> PebbleLexer:  # type: ignore[override]
        return self._pebble_lexer

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return PebbleParser(self, source, name, filename).parse()

    # Pebble reads map entries, never map methods: outputs.task.values is the "values" key.
    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict or isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                return self.undefined(obj=obj, name=attribute)
        if isinstance(obj, Undefined):
            return obj  # a.b.c with a missing reports `a`, not `c`
        if obj is None:
            return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if type(obj) is dict or isinstance(obj, Mapping):
            try:
                return obj[argument]
            except (KeyError, TypeError):
                return self.undefined(obj=obj, name=str(argument))
        if isinstance(obj, Undefined):
            return obj
        if obj is None:
            return self.undefined(obj=obj, name=str(argument))
        if type(argument) is slice:
            return _charge(super().getitem(obj, argument))
        return super().getitem(obj, argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        # Every function, method and macro call: the clock is checked and what it returns is charged.
        return _charge(super().call(__context, __obj, *args, **kwargs))

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return attr not in _UNSAFE_ATTRIBUTES and super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> None:
        return None  # str.format is refused outright (see _UNSAFE_ATTRIBUTES)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            if type(left) is float or type(right) is float:
                return left * right  # a float stays a float: nothing to charge
            _check_repeat(left, right)
            return _charge(left * right)
        if operator == "+":
            if type(left) in _NUMBERS and type(right) in _NUMBERS:
                return left + right
            return _charge(left + right)
        if operator == "/":
            return _java_divide(left, right)
        if operator == "%":
            return _java_modulo(left, right)
        return super().call_binop(context, operator, left, right)

    # -- helpers the Pebble nodes compile to (see pebble.py) ------------------------------------
    def pebble_coalesce(self, left: Callable[[], Any], right: Callable[[], Any], undefined_only: bool) -> Any:
        try:
            value = left()
        except UndefinedError:
            return right()
        if isinstance(value, Undefined) or (value is None and not undefined_only):
            return right()
        return value

    def pebble_concat(self, left: Any, right: Any) -> str:
        left, right = to_text(left), to_text(right)
        _budget.check_result(len(left) + len(right))
        return _charge(left + right)

    def pebble_contains(self, container: Any, item: Any) -> bool:
        _fail_if_undefined(container)
        _fail_if_undefined(item)
        if container is None:
            return False
        if isinstance(container, str):
            return to_text(item) in container
        many = isinstance(item, list | tuple | set)  # `contains [a, b]` means all of them
        if isinstance(container, Mapping | list | tuple | set | frozenset):
            return all(i in container for i in item) if many else item in container
        raise TypeError(f"contains is not supported on {type(container).__name__}")

    def pebble_range(self, start: Any, end: Any) -> list[Any]:
        return _charge(_functions.range_(start, end))

    def pebble_iter(self, value: Any, static: int = 0) -> Any:
        if isinstance(value, Mapping):
            value = [Entry(k, v) for k, v in value.items()]
        budget = _budget.current()
        if budget is None or isinstance(value, Undefined):
            return value
        if type(value) in (list, tuple) and len(value) <= _SHORT_LOOP:
            # a short loop is charged at once: between two clock checks it runs its body a bounded
            # number of times, and a body's own loops, calls and filters check the clock themselves
            budget.charge(static * len(value))
            return value
        return _ticking(value, budget, static)

    def pebble_produced(self, value: Any) -> Any:
        """A filter's result or a literal list/map (see PebbleCodeGenerator): charged by its size."""
        return _charge(value)


_SHORT_LOOP = 256
_NUMBERS = frozenset({int, float})
_SMALL = frozenset({int, float, bool, type(None)})


def _charge(value: Any) -> Any:
    if type(value) in _SMALL and (type(value) is not int or value.bit_length() < 64):
        return value  # nothing was built
    budget = _budget.current()
    return value if budget is None else budget.charge_value(value)


def _test_null(value: Any) -> bool:
    _fail_if_undefined(value)
    return value is None


def _test_empty(value: Any) -> bool:
    _fail_if_undefined(value)
    return is_empty(value)


def _test_json(value: Any) -> bool:
    _fail_if_undefined(value)
    if not isinstance(value, str):
        return False
    try:
        _functions.from_json(value)
    except ValueError:
        return False
    return True


def _test_map(value: Any) -> bool:
    _fail_if_undefined(value)
    return isinstance(value, Mapping)


def _check_repeat(left: Any, right: Any) -> None:
    """Before ``*`` builds its result: a repeated text or list must fit the budget, a product of
    integers must stay printable."""
    if type(left) is int and type(right) is int or _is_integer(left) and _is_integer(right):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise SecurityError("the result of * would be an integer of more than 4,000 digits")
        return
    seq, times = (left, right) if isinstance(right, int) else (right, left)
    if isinstance(seq, str | bytes | list | tuple) and isinstance(times, int) and times > 0:
        budget = _budget.current()
        limit = budget.remaining if budget is not None else _budget.limits().max_output
        if _budget.size_of(seq, limit // times + 1) * times > limit:
            if budget is None:
                raise SecurityError(f"the result of * would exceed {limit:,} characters")
            budget.too_large()


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _java_divide(left: Any, right: Any) -> Any:
    """Pebble divides integers as Java longs do: truncating toward zero."""
    if _is_integer(left) and _is_integer(right):
        if right == 0:
            raise ZeroDivisionError("/ by zero")
        q = abs(left) // abs(right)
        return q if (left >= 0) == (right >= 0) else -q
    return left / right


def _java_modulo(left: Any, right: Any) -> Any:
    """Java's remainder (sign of the dividend); ``%`` never formats strings here."""
    if isinstance(left, str | bytes):
        raise SecurityError("the % operator only applies to numbers")
    if _is_integer(left) and _is_integer(right):
        if right == 0:
            raise ZeroDivisionError("/ by zero")
        r = abs(left) % abs(right)
        return r if left >= 0 else -r
    if isinstance(left, float) or isinstance(right, float):
        return math.fmod(left, right)
    return left % right


# -- compiled templates -------------------------------------------------------------------------------
_PATH, _EXPR, _PARTS, _TEMPLATE = "path", "expr", "parts", "template"
_MISSING = object()


_STATE = _budget.RENDER


class Compiled:
    """One compiled template: how to render it (``kind``) and the Jinja template behind it."""

    __slots__ = ("source", "kind", "path", "parts", "lineno", "_ast", "_jinja")

    def __init__(
        self,
        source: str,
        kind: str,
        ast: nodes.Template,
        lineno: int = 1,
        path: tuple[Any, ...] | None = None,
        parts: tuple[Any, ...] | None = None,
    ) -> None:
        self.source = source
        self.kind = kind
        self.path = path
        self.parts = parts
        self.lineno = lineno
        self._ast = ast
        self._jinja: Any = None

    @property
    def typed(self) -> bool:
        """Whether rendering keeps the native type (a single expression)."""
        return self.kind in (_PATH, _EXPR)


def _single_expression(body: list[nodes.Node]) -> nodes.Expr | None:
    if len(body) != 1 or not isinstance(body[0], nodes.Output):
        return None
    found = [n for n in body[0].nodes if not (isinstance(n, nodes.TemplateData) and not n.data.strip())]
    if len(found) == 1 and not isinstance(found[0], nodes.TemplateData):
        return found[0]
    return None


def _variable_path(expr: nodes.Node) -> tuple[Any, ...] | None:
    """``a.b[0]['c']`` as ``('a', 'b', 0, 'c')``; None for anything else."""
    keys: list[Any] = []
    while True:
        if isinstance(expr, nodes.Getattr):
            keys.append(expr.attr)
            expr = expr.node
        elif (
            isinstance(expr, nodes.Getitem)
            and isinstance(expr.arg, nodes.Const)
            and type(expr.arg.value) in (str, int)
        ):
            keys.append(expr.arg.value)
            expr = expr.node
        elif isinstance(expr, nodes.Name) and expr.ctx == "load":
            keys.append(expr.name)
            return tuple(reversed(keys))
        else:
            return None


def _lookup(variables: Mapping[str, Any], path: tuple[Any, ...]) -> Any:
    """The fast path: plain dict/list walking. Anything unusual returns _MISSING (Jinja decides)."""
    try:
        value = variables[path[0]]
    except (KeyError, TypeError):
        return _MISSING
    for key in path[1:]:
        t = type(value)
        if t is dict:
            value = value.get(key, _MISSING)
            if value is _MISSING:
                return _MISSING
        elif t is list and type(key) is int and -len(value) <= key < len(value):
            value = value[key]
        else:
            return _MISSING
    return value


def _template_line(exc: BaseException, template: Any, default: int) -> int:
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__jinja_template__") is template:
            line = template.get_corresponding_lineno(tb.tb_lineno)  # type: ignore[union-attr]
        tb = tb.tb_next
    return line or default


# -- the engine ------------------------------------------------------------------------------------
class ExpressionEngine:
    """Renders Kestra-style ``{{ }}`` expressions. Thread-safe; share one per process (:func:`get_engine`)."""

    def __init__(
        self,
        functions: Mapping[str, Callable[..., Any]] | None = None,
        filters: Mapping[str, Callable[..., Any]] | None = None,
    ) -> None:
        self.env = PebbleEnvironment()
        self.env.globals.update(_functions.PLAIN_FUNCTIONS)
        for name, fn in {**_functions.CONTEXT_FUNCTIONS, **(functions or {})}.items():
            self.env.globals[name] = self._with_ctx(fn)
        self.env.filters.update(filters or {})
        self.compile = lru_cache(maxsize=CACHE_SIZE)(self._compile)

    # -- public API -------------------------------------------------------------------------------
    def render(self, value: Any, variables: Mapping[str, Any], services: Services | None = None) -> Any:
        """Render strings inside ``value`` (dict keys and values, list items, recursively)."""
        if type(value) is str or isinstance(value, str):
            if "{" not in value or ("{{" not in value and "{%" not in value and "{#" not in value):
                return value
            return self._render(self.compile(value), variables, services, typed=True)
        if isinstance(value, dict):
            return {
                self.render_string(k, variables, services) if isinstance(k, str) else k: self.render(
                    v, variables, services
                )
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.render(v, variables, services) for v in value]
        return value

    def render_string(
        self, template: str, variables: Mapping[str, Any], services: Services | None = None
    ) -> str:
        """Render to text whatever the template is (a single expression's value is written as text)."""
        if not isinstance(template, str):
            return to_text(self.render(template, variables, services))
        if "{" not in template or ("{{" not in template and "{%" not in template and "{#" not in template):
            return template
        return self._render(self.compile(template), variables, services, typed=False)

    def validate(self, template: str) -> None:
        """Raise :class:`ExpressionError` when ``template`` does not parse (deploy-time check)."""
        if isinstance(template, str) and "{" in template:
            compiled = self.compile(template)
            if compiled.kind in (_PATH, _PARTS):
                self._jinja(compiled)

    @property
    def function_names(self) -> list[str]:
        return sorted(self.env.globals)

    @property
    def filter_names(self) -> list[str]:
        return sorted(self.env.filters)

    # -- compilation ----------------------------------------------------------------------------
    def _compile(self, source: str) -> Compiled:
        try:
            ast = self.env.parse(source)
        except TemplateSyntaxError as exc:
            raise ExpressionError(
                self._message(source, exc.lineno or 1, exc.message or str(exc), "parse")
            ) from None
        except (RecursionError, MemoryError):
            raise ExpressionError(
                self._message(source, 1, "the expression nests too deeply", "parse")
            ) from None
        expr = _single_expression(ast.body)
        if expr is not None:
            lineno = expr.lineno or 1
            typed_ast = nodes.Template(
                [nodes.Assign(nodes.Name(_RESULT, "store"), expr, lineno=lineno)], lineno=1
            )
            typed_ast.set_environment(self.env)
            path = _variable_path(expr)
            compiled = Compiled(source, _PATH if path else _EXPR, typed_ast, lineno, path=path)
            if not path:
                self._jinja(compiled)  # surface unknown filters/tests now, not at first render
            return compiled
        parts = self._parts(ast.body)
        compiled = Compiled(source, _PARTS if parts else _TEMPLATE, ast, parts=parts)
        if not parts:
            self._jinja(compiled)
        return compiled

    @staticmethod
    def _parts(body: list[nodes.Node]) -> tuple[Any, ...] | None:
        """``text {{ a.b }} text`` as ``('text ', ('a', 'b'), ' text')``, or None."""
        if len(body) != 1 or not isinstance(body[0], nodes.Output):
            return None
        parts: list[Any] = []
        for node in body[0].nodes:
            if isinstance(node, nodes.TemplateData):
                parts.append(node.data)
                continue
            path = _variable_path(node)
            if path is None:
                return None
            parts.append(path)
        return tuple(parts)

    def _jinja(self, compiled: Compiled) -> Any:
        template = compiled._jinja
        if template is None:
            try:
                code = self.env.compile(compiled._ast)
            except TemplateSyntaxError as exc:
                raise ExpressionError(
                    self._message(compiled.source, exc.lineno or 1, exc.message or str(exc), "parse")
                ) from None
            except (RecursionError, MemoryError, SyntaxError):  # Python's own nesting limits
                raise ExpressionError(
                    self._message(compiled.source, 1, "the expression nests too deeply", "parse")
                ) from None
            template = self.env.template_class.from_code(self.env, code, self.env.make_globals(None))
            compiled._jinja = template
        return template

    # -- rendering ------------------------------------------------------------------------------
    def _render(
        self, compiled: Compiled, variables: Mapping[str, Any], services: Services | None, typed: bool
    ) -> Any:
        kind = compiled.kind
        if kind is _PATH:
            value = _lookup(variables, compiled.path)  # type: ignore[arg-type]
            if value is not _MISSING:
                return value if typed else to_text(value)
        elif kind is _PARTS:
            out = []
            for part in compiled.parts:  # type: ignore[union-attr]
                if type(part) is str:
                    out.append(part)
                    continue
                value = _lookup(variables, part)
                if value is _MISSING:
                    break
                out.append(to_text(value))
            else:
                return "".join(out)
        value = self._render_jinja(compiled, variables, services)
        return value if typed or type(value) is str else to_text(value)

    def _render_jinja(
        self, compiled: Compiled, variables: Mapping[str, Any], services: Services | None
    ) -> Any:
        template = self._jinja(compiled)
        # A render nested in another (render(), a plugin function rendering) spends the outer budget.
        outer = _STATE.get()
        budget = _budget.Budget(_budget.limits()) if outer is None else outer.budget
        token = _STATE.set(_budget.Render(variables, services, budget))
        try:
            # Built directly: no copy of the variables, no set() of the globals per render.
            context = self.env.context_class(
                self.env,
                ChainMap(variables, self.env.globals),  # type: ignore[arg-type]
                None,
                template.blocks,  # type: ignore[arg-type]
            )
            if compiled.typed:
                for _ in template.root_render_func(context):
                    pass
                return _typed_result(context.vars[_RESULT])
            return "".join(template.root_render_func(context))
        except ExpressionError:
            raise
        except RecursionError:
            raise ExpressionError(
                self._message(compiled.source, compiled.lineno, "too much recursion")
            ) from None
        except Exception as exc:
            raise self._error(compiled, exc, template) from exc
        finally:
            _STATE.reset(token)

    def _error(self, compiled: Compiled, exc: Exception, template: Any) -> ExpressionError:
        line = _template_line(exc, template, compiled.lineno)
        if isinstance(exc, UndefinedVariableError):
            return ExpressionError(
                f"Unable to find `{exc.name}` used in the expression `{compiled.source}` at line {line}"
            )
        # Our own errors (and Jinja's) read well as they are; others need their type.
        detail = str(exc) if isinstance(exc, TemplateError | ValueError) else f"{type(exc).__name__}: {exc}"
        return ExpressionError(self._message(compiled.source, line, detail))

    @staticmethod
    def _message(source: str, line: int, detail: str, verb: str = "render") -> str:
        return f"Unable to {verb} the expression `{source}` at line {line}: {detail}"

    def _with_ctx(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Adapt ``fn(ctx: RenderCtx, *args)`` to a Jinja global."""
        engine = self

        @pass_context
        def call(context: Any, *args: Any, **kwargs: Any) -> Any:
            state = _STATE.get()
            variables: Mapping[str, Any] = state.variables if state else {}
            if context.vars:  # {% set %} values are visible to functions too
                variables = {**variables, **{k: v for k, v in context.vars.items() if k != _RESULT}}
            return fn(RenderCtx(variables, state.services if state else None, engine), *args, **kwargs)

        call.__name__ = getattr(fn, "__name__", "function")
        return call


# -- the process-wide engine ------------------------------------------------------------------------
_engine: ExpressionEngine | None = None
_engine_lock = threading.Lock()


def get_engine() -> ExpressionEngine:
    """The process-wide engine, with the functions and filters plugins register."""
    global _engine
    engine = _engine
    if engine is None:
        with _engine_lock:
            if _engine is None:
                from roost.plugins import get_plugins  # here, not at import: plugins import the model layer

                plugins = get_plugins()
                _engine = ExpressionEngine(
                    functions=plugins.named("register_expression_functions"),
                    filters=plugins.named("register_expression_filters"),
                )
            engine = _engine
    return engine


def reset_engine() -> None:
    """Forget the process-wide engine (tests, or after plugins changed)."""
    global _engine
    with _engine_lock:
        _engine = None


__all__ = [
    "Compiled",
    "Ctx",
    "ExpressionEngine",
    "ExpressionError",
    "RenderCtx",
    "Services",
    "get_engine",
    "reset_engine",
    "to_json",
    "to_text",
]
