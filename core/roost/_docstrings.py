"""Attribute docstrings of pydantic models, read from one parse of each module.

On Python < 3.13 pydantic (``use_attribute_docstrings``) finds a model's source by walking the
stack and resolving every frame's file, then tokenises and parses the class again: about 3 ms per
model, a fifth of ``roost flow run``'s start-up. Parsing each module once and looking the class up
by its qualified name gives the same docstrings. Anything this cannot place for certain (a class
defined twice under one name, source that cannot be read) goes to pydantic's own extraction.
"""

from __future__ import annotations

import ast
import linecache
import sys
from collections.abc import Callable
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=64)
def _classes(filename: str) -> dict[str, list[ast.ClassDef]]:
    tree = ast.parse("".join(linecache.getlines(filename)))
    found: dict[str, list[ast.ClassDef]] = {}

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                found.setdefault(prefix + child.name, []).append(child)
                walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                walk(child, f"{prefix}{child.name}.<locals>.")
            elif isinstance(child, ast.stmt | ast.excepthandler | ast.match_case):
                walk(child, prefix)  # classes under if/try/with keep the enclosing name

    walk(tree, "")
    return found


def _from_module(cls: type[Any]) -> dict[str, str] | None:
    from pydantic._internal._docs_extraction import DocstringVisitor

    module = sys.modules.get(cls.__module__)
    filename = getattr(module, "__file__", None)
    if not filename or not filename.endswith(".py"):
        return None
    try:
        candidates = _classes(filename).get(cls.__qualname__, [])
    except (OSError, SyntaxError, ValueError):
        return None
    if len(candidates) != 1:
        return None
    visitor = DocstringVisitor()
    visitor.generic_visit(candidates[0])
    return visitor.attrs


def _install() -> None:
    """Route pydantic's attribute-docstring extraction through the per-module parse (Python < 3.13)."""
    if sys.version_info >= (3, 13):  # pydantic reads the class's own line number there: already quick
        return
    from pydantic._internal import _fields

    original: Callable[..., dict[str, str]] | None = getattr(_fields, "extract_docstrings_from_cls", None)
    if original is None or getattr(original, "__roost__", False):
        return

    def extract(cls: type[Any], use_inspect: bool = False) -> dict[str, str]:
        found = _from_module(cls)
        return original(cls, use_inspect=use_inspect) if found is None else found

    extract.__roost__ = True  # type: ignore[attr-defined]
    _fields.extract_docstrings_from_cls = extract


_install()
