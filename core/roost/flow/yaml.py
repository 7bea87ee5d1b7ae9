"""YAML reading that remembers where every value came from.

libyaml (PyYAML's C parser) composes nodes with line marks; we turn them into
plain dicts and lists plus a map from YAML path to line, rejecting duplicate
keys, so that every validation error can name its line.
"""

from __future__ import annotations

import codecs
import math
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

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
# YAML 1.2 (and JSON, and Kestra) read 1e3 and 1.5e3 as numbers; PyYAML's 1.1 rules want a dot and a sign.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)
_LOADER = _Loader
# first character -> (tag, pattern) of the implicit resolvers: resolving a plain scalar is hot
_RESOLVERS: dict[str, list[tuple[str, re.Pattern[str]]]] = {
    first: list(resolvers)
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
    if first is not None
}
_DECIMAL = re.compile(r"[-+]?(?:[1-9][0-9]{0,17}|0)")


# -- limits ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class YamlLimits:
    """Bounds on one YAML document: YAML is untrusted input (billion laughs, deep nesting...)."""

    max_chars: int = 2 * 1024 * 1024
    """Characters in one file or request body."""
    max_depth: int = 100
    """Nesting of maps and lists, aliases expanded."""
    max_nodes: int = 100_000
    """Values (scalars, maps and lists) in one document, aliases expanded."""
    max_aliases: int = 100
    """Alias uses (``*name``) in one document."""

    ENV: ClassVar[dict[str, str]] = {
        "max_chars": "ROOST_YAML_MAX_CHARS",
        "max_depth": "ROOST_YAML_MAX_DEPTH",
        "max_nodes": "ROOST_YAML_MAX_NODES",
        "max_aliases": "ROOST_YAML_MAX_ALIASES",
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, base: YamlLimits | None = None) -> YamlLimits:
        env = os.environ if env is None else env
        values = {}
        for name, var in cls.ENV.items():
            raw = env.get(var)
            if raw:
                try:
                    values[name] = int(raw)
                except ValueError:
                    raise ValueError(f"{var} must be an integer, got {raw!r}") from None
                if values[name] < 1:
                    raise ValueError(f"{var} must be at least 1, got {raw!r}")
        return replace(base or cls(), **values)


_limits: YamlLimits | None = None


def limits() -> YamlLimits:
    """The limits in force: :func:`set_limits`, else ``ROOST_YAML_*`` variables, else the defaults."""
    global _limits
    if _limits is None:
        _limits = YamlLimits.from_env()
    return _limits


def set_limits(new: YamlLimits | None) -> None:
    """Set the process-wide limits (the server's configuration); None reads the environment again."""
    global _limits
    _limits = new


# -- building data from libyaml's events --------------------------------------------------------------
_CORE = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_CORE + t for t in ("str", "int", "float", "bool", "null"))
_TIMESTAMP, _BINARY, _MERGE, _VALUE = (_CORE + t for t in ("timestamp", "binary", "merge", "value"))
_MAP_TAGS = frozenset({None, "!", _CORE + "map", _CORE + "set"})
_SEQ_TAGS = frozenset({None, "!", _CORE + "seq", _CORE + "omap", _CORE + "pairs"})
MAX_INT_DIGITS = 1000  # as Jackson's maxNumberLength; Python refuses to print past 4,300 digits


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


class _Problem(Exception):
    """A document that cannot become data; one violation at ``mark``."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message, self.mark = message, mark
        self.path: Path = ()


class _Frame:
    """A map or list being built: its path, its anchor, and (for a map) the key waiting for a value."""

    __slots__ = (
        "value",
        "path",
        "anchor",
        "start_nodes",
        "height",
        "key",
        "key_mark",
        "merges",
        "merge_line",
    )

    def __init__(self, value: Any, path: Path, anchor: str | None, start_nodes: int) -> None:
        self.value = value
        self.path = path
        self.anchor = anchor
        self.start_nodes = start_nodes
        self.height = 1
        self.key: Any = _NO_KEY
        self.key_mark: Any = None
        self.merges: list[Any] | None = None
        self.merge_line = (0, 0)


_NO_KEY = object()  # a map waiting for its next key
_MERGE_KEY = object()  # the key was <<
_CONSUMED = object()  # an alias used as a key


class _Builder:
    """Turns libyaml's event stream into plain data and a line map, within :class:`YamlLimits`.

    Events rather than composed nodes: nothing is built past a limit, an alias costs the size of
    what it expands to, and no recursion follows the document's nesting.
    """

    def __init__(self, source: str, lim: YamlLimits) -> None:
        self.loader = _LOADER(source)
        self.lim = lim
        self.lines: dict[Path, tuple[int, int]] = {}
        self.nodes = 0
        self.aliases = 0
        # anchor -> (value, nodes it expands to, its height)
        self.anchors: dict[str, tuple[Any, int, int]] = {}
        self.open_anchors: set[str] = set()

    def build(self) -> Any:
        loader = self.loader
        try:
            return self._run(loader)
        finally:
            loader.dispose()

    def _run(self, loader: Any) -> Any:
        stack: list[_Frame] = []
        try:
            return self._events(loader, stack)
        except _Problem as problem:
            problem.path = _current_path(stack)[:8]  # where a deep structure starts is enough
            raise

    def _events(self, loader: Any, stack: list[_Frame]) -> Any:
        get = loader.get_event
        lim = self.lim
        max_nodes = lim.max_nodes
        lines = self.lines
        ScalarEvent = yaml.ScalarEvent  # noqa: N806 (a local for speed)
        result: Any = None
        documents = 0
        while True:
            ev = get()
            cls = ev.__class__
            if cls is ScalarEvent:
                self.nodes += 1
                if self.nodes > max_nodes:
                    self._count(0, ev.start_mark)
                if stack:
                    parent = stack[-1]
                    mark = ev.start_mark
                    if type(parent.value) is list:
                        lines[(*parent.path, len(parent.value))] = (mark.line + 1, mark.column + 1)
                    elif parent.key is _NO_KEY:
                        key = ev.value
                        if ev.anchor is None and (key != "<<" or ev.tag is not None):
                            if key in parent.value:  # the common case, inline
                                raise _Duplicate(key, mark.line + 1, mark.column + 1)
                            parent.key = key
                            parent.key_mark = mark
                            lines[(*parent.path, key)] = (mark.line + 1, mark.column + 1)
                        else:
                            self._key(parent, ev)
                        continue
                # quoted or block text (the usual case) needs no resolving
                value = ev.value if ev.tag is None and not ev.implicit[0] else self._scalar(ev)
                if ev.anchor is not None:
                    self.anchors[ev.anchor] = (value, 1, 0)
            elif cls is yaml.MappingStartEvent or cls is yaml.SequenceStartEvent:
                is_map = cls is yaml.MappingStartEvent
                if ev.tag not in (_MAP_TAGS if is_map else _SEQ_TAGS):
                    kind = "map" if is_map else "list"
                    raise _Problem(f"unsupported YAML tag '{_short_tag(ev.tag)}' on a {kind}", ev.start_mark)
                if stack and stack[-1].key is _NO_KEY and type(stack[-1].value) is dict:
                    raise _Problem("a map key must be a plain value (text or a number), not a map or list",
                                   ev.start_mark)  # fmt: skip
                if len(stack) >= lim.max_depth:
                    raise _Problem(f"the document nests deeper than {lim.max_depth} levels", ev.start_mark)
                self._count(1, ev.start_mark)
                path = self._child_path(stack, ev.start_mark)
                if ev.anchor is not None:
                    self.open_anchors.add(ev.anchor)
                stack.append(_Frame({} if is_map else [], path, ev.anchor, self.nodes))
                continue
            elif cls is yaml.MappingEndEvent or cls is yaml.SequenceEndEvent:
                frame = stack.pop()
                value = frame.value
                if frame.merges:
                    value = self._merged(frame)
                if frame.anchor is not None:
                    self.open_anchors.discard(frame.anchor)
                    self.anchors[frame.anchor] = (value, self.nodes - frame.start_nodes + 1, frame.height)
                if stack and stack[-1].height < frame.height + 1:
                    stack[-1].height = frame.height + 1
            elif cls is yaml.AliasEvent:
                value = self._alias(ev, stack)
                if value is _CONSUMED:
                    continue
            elif cls is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise _Problem("expected a single document, found another (separate documents with ---)",
                                   ev.start_mark)  # fmt: skip
                continue
            elif cls is yaml.StreamEndEvent:
                return result
            else:  # StreamStart, DocumentEnd
                continue
            # a finished value: into its parent, or the document's root
            if not stack:
                result = value
                continue
            parent = stack[-1]
            container = parent.value
            if type(container) is list:
                container.append(value)
            else:
                key = parent.key
                parent.key = _NO_KEY
                if key is _MERGE_KEY:
                    self._add_merge(parent, value, ev.start_mark)
                else:
                    container[key] = value

    def _count(self, n: int, mark: Any) -> None:
        self.nodes += n
        if self.nodes > self.lim.max_nodes:
            raise _Problem(
                f"the document holds more than {self.lim.max_nodes} values (aliases expanded)", mark
            )

    def _child_path(self, stack: list[_Frame], mark: Any) -> Path:
        """Path of the value starting at ``mark``, recording its line."""
        if not stack:
            return ()
        parent = stack[-1]
        if type(parent.value) is list:
            path = (*parent.path, len(parent.value))
            self.lines[path] = (mark.line + 1, mark.column + 1)
            return path
        key = parent.key
        return (*parent.path, key) if isinstance(key, str) else parent.path

    def _key(self, frame: _Frame, ev: Any) -> None:
        value = ev.value
        if ev.anchor is not None:
            self.anchors[ev.anchor] = (self._scalar(ev), 1, 0)
        if ev.tag is None and ev.implicit[0] and value == "<<":
            frame.key = _MERGE_KEY
            frame.key_mark = ev.start_mark
            return
        self._set_key(frame, value, ev.start_mark)

    def _set_key(self, frame: _Frame, key: str, mark: Any) -> None:
        # Keys stay text as written, as in Kestra (JSON objects have text keys): `1:` is "1".
        if key in frame.value:
            raise _Duplicate(key, mark.line + 1, mark.column + 1)
        frame.key = key
        frame.key_mark = mark
        self.lines[(*frame.path, key)] = (mark.line + 1, mark.column + 1)

    def _alias(self, ev: Any, stack: list[_Frame]) -> Any:
        self.aliases += 1
        name = ev.anchor
        if self.aliases > self.lim.max_aliases:
            raise _Problem(f"the document uses more than {self.lim.max_aliases} aliases", ev.start_mark)
        found = self.anchors.get(name)
        if found is None:
            if name in self.open_anchors:
                raise _Problem(f"the alias '*{name}' refers to a value that contains it (recursive data)",
                               ev.start_mark)  # fmt: skip
            raise _Problem(f"found undefined alias '*{name}'", ev.start_mark)
        value, size, height = found
        if stack and stack[-1].key is _NO_KEY and type(stack[-1].value) is dict:
            if not isinstance(value, str | int | float | bool) and value is not None:
                raise _Problem("a map key must be a plain value (text or a number), not a map or list",
                               ev.start_mark)  # fmt: skip
            self._count(1, ev.start_mark)
            self._set_key(stack[-1], _key_text(value), ev.start_mark)
            return _CONSUMED
        if len(stack) + height > self.lim.max_depth:
            raise _Problem(f"the document nests deeper than {self.lim.max_depth} levels (aliases expanded)",
                           ev.start_mark)  # fmt: skip
        self._count(size, ev.start_mark)
        self._child_path(stack, ev.start_mark)
        if stack and stack[-1].height < height + 1:
            stack[-1].height = height + 1
        return _copy(value) if height else value

    def _add_merge(self, frame: _Frame, value: Any, mark: Any) -> None:
        # YAML merge keys (<<): a map, or a list of maps where the first has precedence.
        if isinstance(value, dict):
            sources = [value]
        elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
            sources = list(reversed(value))
        else:
            raise _Problem("expected a map or a list of maps to merge with <<", frame.key_mark or mark)
        if frame.merges is None:
            frame.merges = []
            key_mark = frame.key_mark or mark
            frame.merge_line = (key_mark.line + 1, key_mark.column + 1)
        frame.merges.extend(sources)

    def _merged(self, frame: _Frame) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for source in frame.merges or ():
            out.update(source)
        for key in out:
            if key not in frame.value:
                self.lines[(*frame.path, key)] = frame.merge_line
        out.update(frame.value)  # keys written in the map win over merged ones
        return out

    def _scalar(self, ev: Any) -> Any:
        value = ev.value
        tag = ev.tag
        if tag is None or tag == "!":
            if not ev.implicit[0]:
                return value  # quoted, or a block scalar: text
            for candidate, pattern in _RESOLVERS.get(value[:1], ()):
                if pattern.match(value):
                    tag = candidate
                    break
            else:
                return value  # text
            if tag == _INT and _DECIMAL.fullmatch(value):
                return int(value)
        if tag in (_STR, _MERGE, _VALUE):
            return value
        if tag == _NULL:
            return None
        if tag == _BOOL:
            found = yaml.SafeLoader.bool_values.get(value.lower())
            if found is None:
                raise _Problem(f"invalid !!bool value {value!r}: expected true or false", ev.start_mark)
            return found
        node = yaml.ScalarNode(tag, value, ev.start_mark, ev.end_mark)
        if tag == _INT:
            if len(value) > MAX_INT_DIGITS:
                raise _Problem(f"integer too long: more than {MAX_INT_DIGITS} digits (quote it to keep it as text)",
                               ev.start_mark)  # fmt: skip
            try:
                number = self.loader.construct_yaml_int(node)
            except (ValueError, IndexError):
                raise _Problem(f"invalid !!int value {value!r}: expected an integer", ev.start_mark) from None
            if number.bit_length() > 3322:  # ~1,000 decimal digits (e.g. from a long 1:2:3 form)
                raise _Problem(f"integer too large: more than {MAX_INT_DIGITS} digits", ev.start_mark)
            return number
        if tag == _FLOAT:
            try:
                number = self.loader.construct_yaml_float(node)
            except (ValueError, IndexError):
                raise _Problem(f"invalid !!float value {value!r}: expected a number", ev.start_mark) from None
            if not math.isfinite(number):
                raise _Problem(f"{value!r} is not a finite number: infinity and NaN cannot be stored as JSON "
                               "(quote the value to keep it as text)", ev.start_mark)  # fmt: skip
            return number
        if tag == _TIMESTAMP:
            # Kept as the text written (Kestra reads dates as strings), but it must be a real date.
            try:
                self.loader.construct_yaml_timestamp(node)
            except (ValueError, AttributeError, OverflowError, TypeError) as exc:
                detail = f": {exc}" if isinstance(exc, ValueError) else ""
                raise _Problem(f"invalid date or timestamp {value!r}{detail} (quote it to keep it as text)",
                               ev.start_mark) from None  # fmt: skip
            return value
        if tag == _BINARY:
            raise _Problem("binary values (!!binary) are not supported: a flow holds text (use a base64 string)",
                           ev.start_mark)  # fmt: skip
        raise _Problem(f"unsupported YAML tag '{_short_tag(tag)}'", ev.start_mark)


def _current_path(stack: list[_Frame]) -> Path:
    """Path of the value being read when a problem was found."""
    if not stack:
        return ()
    top = stack[-1]
    if type(top.value) is list:
        return (*top.path, len(top.value))
    return (*top.path, top.key) if isinstance(top.key, str) else top.path


def _key_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def _copy(value: Any) -> Any:
    """A copy of an aliased map or list, so that no two places of a document share one object."""
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy(v) for v in value]
    return value


class _Duplicate(Exception):
    def __init__(self, key: str, line: int, column: int) -> None:
        super().__init__(key)
        self.key, self.line, self.column = key, line, column


def _violation_from(exc: Exception) -> Violation:
    if isinstance(exc, _Duplicate):
        return Violation("", f"duplicate key '{exc.key}'", exc.line, exc.column)
    if isinstance(exc, _Problem):
        mark = exc.mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        return Violation(format_path(exc.path), exc.message, line, column)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        msg = " ".join(p for p in (exc.context, exc.problem) if p) or str(exc)
        return Violation(
            "", f"invalid YAML: {msg}", mark.line + 1 if mark else None, mark.column + 1 if mark else None
        )
    return Violation("", f"invalid YAML: {exc}")


def _too_large(source: str, lim: YamlLimits) -> Violation | None:
    if len(source) <= lim.max_chars:
        return None
    line = source.count("\n", 0, lim.max_chars) + 1
    return Violation(
        "", f"the document is too large: {len(source)} characters, the limit is {lim.max_chars}", line
    )


_recent: dict[tuple[str, YamlLimits], list[Document | Violation]] = {}
_recent_lock = threading.Lock()


def load_documents(source: str) -> list[Document | Violation]:
    """Every document of a (possibly multi-document) YAML text; a broken one becomes a Violation.

    The last few texts are remembered: a deploy reads one text several times (its namespace, the
    validation, the stored flow, the answer). Treat the documents returned as read-only."""
    lim = limits()
    key = (source, lim)
    found = _recent.get(key)
    if found is None:
        found = _load_documents(source, lim)
        with _recent_lock:
            if len(_recent) >= 8:
                _recent.pop(next(iter(_recent)))
            _recent[key] = found
    return list(found)


def _load_documents(source: str, lim: YamlLimits) -> list[Document | Violation]:
    big = _too_large(source, lim)
    if big is not None:
        return [big]
    docs: list[Document | Violation] = []
    for offset, chunk in _split_documents(source):
        builder = _Builder(chunk, lim)
        try:
            data = builder.build()
        except (yaml.YAMLError, _Duplicate, _Problem) as exc:
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


def load_data(source: str) -> Any:
    """The data of one YAML text (not a flow: a configuration, an input...), within the limits;
    raises :class:`YamlError`. An empty text is None."""
    lim = limits()
    big = _too_large(source, lim)
    if big is not None:
        raise YamlError(big)
    try:
        return _Builder(source, lim).build()
    except (yaml.YAMLError, _Duplicate, _Problem) as exc:
        raise YamlError(_violation_from(exc)) from None


def decode_source(data: bytes) -> str:
    """YAML bytes as text: UTF-8 (a BOM is dropped), or UTF-16/32 marked by a BOM, as YAML allows.
    Anything else raises :class:`YamlError` naming the line of the first byte that is not UTF-8."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(codec)
            except UnicodeDecodeError:
                break
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlError(
            Violation(
                "",
                f"the file is not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded",
                line,
                column,
            )  # fmt: skip
        ) from None


_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


_CONTENT = re.compile(r"^[ \t]*[^\s#]", re.M)


def _split_documents(source: str) -> list[tuple[int, str]]:
    """Split on ``---`` lines, remembering each chunk's line offset."""
    if "---" not in source:  # one document (or only comments): no need to look at each line
        return [(0, source)] if _CONTENT.search(source) else []
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
