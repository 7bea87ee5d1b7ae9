"""YAML reading that remembers where every value came from.

ruamel.yaml keeps line/column marks and rejects duplicate keys; we turn its
tree into plain dicts and lists plus a map from YAML path to line, so that
every validation error can name its line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError

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


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.allow_duplicate_keys = False
    return y


def _plain(node: Any, path: Path, lines: dict[Path, tuple[int, int]]) -> Any:
    if isinstance(node, CommentedMap):
        out = {}
        for key, value in node.items():
            child = (*path, str(key))
            try:
                ln, col = node.lc.key(key)
                lines[child] = (ln + 1, col + 1)
            except (KeyError, TypeError):
                pass
            out[str(key) if not isinstance(key, (int, float, bool)) else key] = _plain(value, child, lines)
        return out
    if isinstance(node, CommentedSeq):
        out_list = []
        for i, value in enumerate(node):
            child = (*path, i)
            try:
                ln, col = node.lc.item(i)
                lines[child] = (ln + 1, col + 1)
            except (KeyError, TypeError, IndexError):
                pass
            out_list.append(_plain(value, child, lines))
        return out_list
    if isinstance(node, str):
        return str(node)
    if hasattr(node, "__float__") and type(node).__name__ == "ScalarFloat":
        return float(node)
    if type(node).__name__ == "ScalarBoolean":
        return bool(node)
    if isinstance(node, int) and not isinstance(node, bool) and type(node) is not int:
        return int(node)
    return node


def _violation_from(exc: Exception) -> Violation:
    if isinstance(exc, DuplicateKeyError):
        mark = exc.problem_mark
        key = str(exc.problem).split('"')[1] if '"' in str(exc.problem) else str(exc.problem)
        return Violation(
            "", f"duplicate key '{key}'", mark.line + 1 if mark else None, mark.column + 1 if mark else None
        )
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        msg = " ".join(p for p in (exc.context, exc.problem) if p) or str(exc)
        return Violation(
            "", f"invalid YAML: {msg}", mark.line + 1 if mark else None, mark.column + 1 if mark else None
        )
    return Violation("", f"invalid YAML: {exc}")


def load_documents(source: str) -> list[Document | Violation]:
    """Every document of a (possibly multi-document) YAML text; a broken one becomes a Violation."""
    docs: list[Document | Violation] = []
    chunks = _split_documents(source)
    for offset, chunk in chunks:
        try:
            node = _yaml().load(chunk)
        except Exception as exc:
            v = _violation_from(exc)
            if v.line:
                v.line += offset
            docs.append(v)
            continue
        if node is None:
            continue
        lines: dict[Path, tuple[int, int]] = {}
        data = _plain(node, (), lines)
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
    import io

    y = YAML(typ="safe", pure=True)
    y.default_flow_style = False
    y.sort_base_mapping_type_on_output = False  # type: ignore[attr-defined,assignment]
    buf = io.StringIO()
    y.dump(data, buf)
    return buf.getvalue()
