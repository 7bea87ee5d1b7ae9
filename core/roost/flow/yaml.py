"""YAML reading that remembers where every value came from.

libyaml (PyYAML's C parser) composes nodes with line marks; we turn them into
plain dicts and lists plus a map from YAML path to line, rejecting duplicate
keys, so that every validation error can name its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


@dataclass
class Violation:
    """One problem in a flow: where (YAML path and line) and what was expected."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.path or '<root>'}: {self.message}{where}"

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "message": self.message, "line": self.line, "column": self.column}


@dataclass
class Document:
    """A parsed YAML document: plain data plus the line of every path."""

    data: Any
    lines: dict[Path, tuple[int, int]] = field(default_factory=dict)
    source: str = ""

    def line_of(self, path: Path) -> int | None:
        """Line of ``path``, or of its closest ancestor that has one."""
        while True:
            pos = self.lines.get(path)
            if pos is not None:
                return pos[0]
            if not path:
                return 1  # the document itself starts on its first line
            path = path[:-1]


class YamlError(Exception):
    def __init__(self, violation: Violation) -> None:
        super().__init__(str(violation))
        self.violation = violation


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's C parser (when the wheel has it), resolving scalars as YAML 1.2 does: only
    true/false are booleans, so ``message: yes`` stays the string a user meant."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_LOADER = _Loader


class _Constructor:
    """Turns composed nodes into plain data, recording each path's line and rejecting duplicate keys."""

    def __init__(self) -> None:
        self.loader = _LOADER("")
        self.lines: dict[Path, tuple[int, int]] = {}

    def build(self, node: yaml.Node, path: Path) -> Any:
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # YAML merge keys (<<)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                # keys are strings, as Jackson reads them (Switch ``cases: {1: [...]}`` has the case "1")
                name = _key_text(self.loader.construct_object(key_node, deep=True))
                child = (*path, name)
                mark = key_node.start_mark
                if name in out:
                    raise _Duplicate(name, mark.line + 1, mark.column + 1)
                self.lines[child] = (mark.line + 1, mark.column + 1)
                out[name] = self.build(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                child = (*path, i)
                self.lines[child] = (item.start_mark.line + 1, item.start_mark.column + 1)
                items.append(self.build(item, child))
            return items
        return self.loader.construct_object(node, deep=True)


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


class _Duplicate(Exception):
    def __init__(self, key: str, line: int, column: int) -> None:
        super().__init__(key)
        self.key, self.line, self.column = key, line, column


def _violation_from(exc: Exception) -> Violation:
    if isinstance(exc, _Duplicate):
        return Violation("", f"duplicate key '{exc.key}'", exc.line, exc.column)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        msg = " ".join(p for p in (exc.context, exc.problem) if p) or str(exc)
        return Violation(
            "", f"invalid YAML: {msg}", mark.line + 1 if mark else None, mark.column + 1 if mark else None
        )
    return Violation("", f"invalid YAML: {exc}")


def load_documents(source: str) -> list[Document | Violation]:
    """Every document of a (possibly multi-document) YAML text; a broken one becomes a Violation."""
    docs: list[Document | Violation] = []
    for offset, chunk in _split_documents(source):
        try:
            node = yaml.compose(chunk, Loader=_LOADER)
            if node is None:
                continue
            builder = _Constructor()
            data = builder.build(node, ())
        except (yaml.YAMLError, _Duplicate) as exc:
            v = _violation_from(exc)
            if v.line:
                v.line += offset
            docs.append(v)
            continue
        lines = builder.lines
        if offset:
            lines = {k: (ln + offset, col) for k, (ln, col) in lines.items()}
        docs.append(Document(data, lines, chunk))
    return docs


def load_document(source: str) -> Document:
    """Exactly one document; raises :class:`YamlError` on bad YAML."""
    docs = [d for d in load_documents(source)]
    if not docs:
        raise YamlError(
            Violation("", "the document is empty: expected a flow with at least id and namespace")
        )
    first = docs[0]
    if isinstance(first, Violation):
        raise YamlError(first)
    return first


def _split_documents(source: str) -> list[tuple[int, str]]:
    """Split on ``---`` lines, remembering each chunk's line offset."""
    chunks: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for i, line in enumerate(source.splitlines(keepends=True)):
        if line.rstrip() == "---" or line.startswith("--- "):
            if any(s.strip() and not s.lstrip().startswith("#") for s in current):
                chunks.append((start, "".join(current)))
            current = []
            start = i + 1
            rest = line[4:] if line.startswith("--- ") else ""
            if rest.strip():
                current.append(rest)
            continue
        current.append(line)
    if any(s.strip() and not s.lstrip().startswith("#") for s in current):
        chunks.append((start, "".join(current)))
    return chunks


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
