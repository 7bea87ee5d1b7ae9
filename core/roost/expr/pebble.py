"""Pebble syntax on top of Jinja2: a lexer, a parser and a code generator.

Rather than rewriting template text (fragile around strings and brackets), the
engine tokenizes and parses with Jinja's own machinery, extended where Pebble
differs:

* the lexer knows ``???``, ``??``, ``?`` and ``..``;
* expressions are parsed with Pebble's operator precedences (precedence
  climbing over Pebble's table: ``or`` 10, ``and`` 15, ``is``/``contains`` 20,
  comparisons 30, ``+ -`` 40, ``* / %`` 60, ``|`` 100, ``~`` 110,
  ``..``/``??``/``???`` 120, unary ``not``/``-``/``+`` 500), so
  ``a ?? b | date('yyyy')`` formats whichever side was chosen, exactly as in
  Kestra;
* ``cond ? a : b`` (Pebble's ternary), ``null``, ``equals``, ``contains``,
  ``{% elseif %}``, zero-based ``loop.index`` and map iteration yielding
  entries with ``key``/``value`` are supported;
* ``??``, ``???``, ``~``, ``contains`` and ``..`` compile to calls of
  ``environment.pebble_*`` helpers; the coalescing operators wrap both sides
  in lambdas so the right side is evaluated only when needed and an undefined
  left side is caught instead of raised.

Everything still goes through Jinja's sandboxed code generation: attribute
access, item access and calls are emitted exactly as Jinja does.
"""

from __future__ import annotations

import re
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.lexer import TOKEN_BLOCK_BEGIN, TOKEN_OPERATOR, TOKEN_VARIABLE_BEGIN, Lexer, _Rule
from jinja2.parser import Parser

# Token types the stock Jinja lexer does not produce.
COALESCE = "pebble_coalesce"  # ??
COALESCE_UNDEFINED = "pebble_coalesce_undefined"  # ???
QUESTION = "pebble_question"  # ? (ternary)
DOTDOT = "pebble_range"  # ..

_EXTRA_RULES = [
    _Rule(re.compile(r"\?\?\?"), COALESCE_UNDEFINED, None),
    _Rule(re.compile(r"\?\?"), COALESCE, None),
    _Rule(re.compile(r"\?"), QUESTION, None),
    _Rule(re.compile(r"\.\."), DOTDOT, None),
]


class PebbleLexer(Lexer):
    """Jinja's lexer plus Pebble's extra operator tokens inside ``{{ }}`` and ``{% %}``."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        for state in (TOKEN_BLOCK_BEGIN, TOKEN_VARIABLE_BEGIN):
            rules = self.rules[state]
            at = next(i for i, rule in enumerate(rules) if rule.tokens == TOKEN_OPERATOR)
            rules[at:at] = _EXTRA_RULES


# -- Pebble operators as nodes ---------------------------------------------------------------------
# Jinja forbids new node types, so a Pebble operator is a Call of an
# ExtensionAttribute carrying this identifier; PebbleCodeGenerator.visit_Call
# recognises it and emits ``environment.pebble_<op>(...)`` instead.
PEBBLE = "roost.pebble"


def pebble_call(op: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
    target = nodes.ExtensionAttribute(PEBBLE, op, lineno=lineno)
    return nodes.Call(target, args, [], None, None, lineno=lineno)


class PebbleCodeGenerator(CodeGenerator):
    """Jinja's code generator, plus Pebble's operators and the hooks of the render budget."""

    # Filters and literals report what they build, so the render's output size budget sees it.
    def visit_Filter(self, node: nodes.Filter, frame: Frame) -> None:
        self.write("environment.pebble_produced(")
        super().visit_Filter(node, frame)
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("environment.pebble_produced(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("environment.pebble_produced(")
        super().visit_Dict(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # an assignment target
            super().visit_Tuple(node, frame)
            return
        self.write("environment.pebble_produced(")
        super().visit_Tuple(node, frame)
        self.write(")")

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
        # Jinja would compute constant expressions (filters included) while compiling, outside any budget.
        if not isinstance(node, nodes.TemplateData):
            raise nodes.Impossible()
        return super()._output_child_to_const(node, frame, finalize)

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        target = node.node
        if not (isinstance(target, nodes.ExtensionAttribute) and target.identifier == PEBBLE):
            super().visit_Call(node, frame, forward_caller=forward_caller)
            return
        if target.name == "coalesce":
            # Lambdas keep both sides lazy: the left may raise on an undefined
            # value, the right may call secret()/kv() and must not run needlessly.
            left, right, undefined_only = node.args
            self.write("environment.pebble_coalesce((lambda: ")
            self.visit(left, frame)
            self.write("), (lambda: ")
            self.visit(right, frame)
            self.write(f"), {undefined_only.value!r})")  # type: ignore[attr-defined]
            return
        self.write(f"environment.pebble_{target.name}(")
        for i, arg in enumerate(node.args):
            if i:
                self.write(", ")
            self.visit(arg, frame)
        self.write(")")


# -- parser --------------------------------------------------------------------------------------
# Pebble's binary operator precedences (io.pebbletemplates CoreExtension + Kestra's Extension).
_TOKEN_OPS: dict[str, tuple[str, int]] = {
    "eq": ("eq", 30),
    "ne": ("ne", 30),
    "lt": ("lt", 30),
    "gt": ("gt", 30),
    "lteq": ("lteq", 30),
    "gteq": ("gteq", 30),
    "add": ("add", 40),
    "sub": ("sub", 40),
    "mul": ("mul", 60),
    "div": ("div", 60),
    "floordiv": ("floordiv", 60),
    "mod": ("mod", 60),
    "pipe": ("pipe", 100),
    "tilde": ("tilde", 110),
    DOTDOT: ("range", 120),
    COALESCE: ("coalesce", 120),
    COALESCE_UNDEFINED: ("coalesce_undefined", 120),
}
_NAME_OPS: dict[str, tuple[str, int]] = {
    "or": ("or", 10),
    "and": ("and", 15),
    "is": ("is", 20),
    "contains": ("contains", 20),
    "in": ("in", 20),
    "isIn": ("in", 20),
    "equals": ("eq", 30),
}
_COMPARE = {"eq", "ne", "lt", "gt", "lteq", "gteq", "in", "notin"}
_ARITH = {
    "add": nodes.Add,
    "sub": nodes.Sub,
    "mul": nodes.Mul,
    "div": nodes.Div,
    "floordiv": nodes.FloorDiv,
    "mod": nodes.Mod,
}
_UNARY_PRECEDENCE = 500
# Pebble's loop.index/revindex are zero-based; Jinja's zero-based twins end in 0.
_LOOP_ATTRS = {"index": "index0", "revindex": "revindex0"}


class PebbleParser(Parser):
    def parse_expression(self, with_condexpr: bool = True) -> nodes.Expr:
        node = self._binary(0)
        lineno = self.stream.current.lineno
        if self.stream.skip_if(QUESTION):  # Pebble: cond ? a : b (lowest precedence)
            then = self.parse_expression()
            self.stream.expect("colon")
            return nodes.CondExpr(node, then, self.parse_expression(), lineno=lineno)
        while with_condexpr and self.stream.skip_if("name:if"):  # Jinja: a if cond else b
            test = self._binary(0)
            else_ = self.parse_expression() if self.stream.skip_if("name:else") else None
            node = nodes.CondExpr(test, node, else_, lineno=lineno)
        return node

    def _binary_operator(self) -> tuple[str, int] | None:
        token = self.stream.current
        if token.type == "name":
            if token.value == "not" and self.stream.look().test("name:in"):
                return "notin", 20
            return _NAME_OPS.get(token.value)
        return _TOKEN_OPS.get(token.type)

    def _binary(self, min_precedence: int) -> nodes.Expr:
        left = self._unary()
        while True:
            operator = self._binary_operator()
            if operator is None or operator[1] < min_precedence:
                return left
            kind, precedence = operator
            lineno = self.stream.current.lineno
            if kind == "pipe":  # the right side of | is a filter invocation, not an expression
                left = self.parse_filter(left)  # type: ignore[assignment]
                continue
            if kind == "is":
                left = self.parse_test(left)
                continue
            next(self.stream)
            if kind == "notin":
                next(self.stream)
            right = self._binary(precedence + 1)  # all Pebble binary operators are left-associative
            left = _make_binary(kind, left, right, lineno)

    def _unary(self) -> nodes.Expr:
        token = self.stream.current
        if token.test("name:not"):
            next(self.stream)
            return nodes.Not(self._binary(_UNARY_PRECEDENCE), lineno=token.lineno)
        if token.type == "sub":
            next(self.stream)
            return nodes.Neg(self._binary(_UNARY_PRECEDENCE), lineno=token.lineno)
        if token.type == "add":
            next(self.stream)
            return nodes.Pos(self._binary(_UNARY_PRECEDENCE), lineno=token.lineno)
        return self.parse_postfix(self.parse_primary())

    def parse_primary(self, with_namespace: bool = False) -> nodes.Expr:
        token = self.stream.current
        if token.type == "name" and token.value == "null":
            next(self.stream)
            return nodes.Const(None, lineno=token.lineno)
        return super().parse_primary(with_namespace)

    def parse_subscript(self, node: nodes.Expr) -> nodes.Getattr | nodes.Getitem:
        result = super().parse_subscript(node)
        if (
            isinstance(result, nodes.Getattr)
            and isinstance(result.node, nodes.Name)
            and result.node.name == "loop"
            and result.attr in _LOOP_ATTRS
        ):
            result.attr = _LOOP_ATTRS[result.attr]
        return result

    def parse_for(self) -> nodes.For:
        node = super().parse_for()
        # Pebble iterates a map as entries (entry.key / entry.value), Jinja as keys. The loop also
        # spends the render budget: the clock, and the text its body writes, at each iteration.
        static = nodes.Const(_static_text(node.body), lineno=node.lineno)
        node.iter = pebble_call("iter", [node.iter, static], node.iter.lineno or node.lineno)  # type: ignore[list-item]
        return node

    def parse_if(self) -> nodes.If:
        """Jinja's ``if`` that also accepts Pebble's ``elseif``."""
        node = result = nodes.If(lineno=self.stream.expect("name:if").lineno)
        while True:
            node.test = self.parse_tuple(with_condexpr=False)
            node.body = self.parse_statements(("name:elif", "name:elseif", "name:else", "name:endif"))
            node.elif_ = []
            node.else_ = []
            token = next(self.stream)
            if token.test_any("name:elif", "name:elseif"):
                node = nodes.If(lineno=self.stream.current.lineno)
                result.elif_.append(node)
                continue
            if token.test("name:else"):
                result.else_ = self.parse_statements(("name:endif",), drop_needle=True)
            break
        return result

    # Kestra removes the tags that reach other templates; there is no loader anyway.
    def _no_loader(self) -> nodes.Node:
        token = self.stream.current
        self.fail(f"Encountered unknown tag '{token.value}'.", token.lineno)

    parse_extends = parse_include = parse_import = parse_from = _no_loader  # type: ignore[assignment]


def _static_text(body: list[nodes.Node]) -> int:
    """Characters of template text a loop body writes at each iteration (its own, not nested loops')."""
    total = 0
    stack: list[nodes.Node] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.TemplateData):
            total += len(node.data)
        elif not isinstance(node, nodes.For):  # a nested loop charges its own iterations
            stack.extend(node.iter_child_nodes())
    return total


def _make_binary(kind: str, left: nodes.Expr, right: nodes.Expr, lineno: int) -> nodes.Expr:
    if kind == "or":
        return nodes.Or(left, right, lineno=lineno)
    if kind == "and":
        return nodes.And(left, right, lineno=lineno)
    if kind in _COMPARE:
        return nodes.Compare(left, [nodes.Operand(kind, right, lineno=lineno)], lineno=lineno)
    if kind in _ARITH:
        return _ARITH[kind](left, right, lineno=lineno)
    if kind in ("coalesce", "coalesce_undefined"):
        flag = nodes.Const(kind == "coalesce_undefined", lineno=lineno)
        return pebble_call("coalesce", [left, right, flag], lineno)
    op = {"tilde": "concat", "contains": "contains", "range": "range"}[kind]
    return pebble_call(op, [left, right], lineno)
