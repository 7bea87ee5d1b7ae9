"""Pebble's and Kestra's filters, with their names and argument names.

Arguments keep Pebble's camelCase names so named arguments work unchanged:
``{{ d | date(format='yyyy', timeZone='UTC') }}``. A null input gives null,
as in Pebble, unless the filter says otherwise.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
from io import StringIO
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from jinja2 import Undefined

from roost.expr import dates
from roost.expr.budget import budget_for_call, check_result
from roost.expr.values import is_empty, to_json, to_text

MAX_INDENT = 10_000  # indent(10**9) must not allocate gigabytes


class FilterError(ValueError):
    """A filter got an argument it cannot work with."""


def _check(value: Any) -> None:
    if isinstance(value, Undefined):
        str(value)  # raises the undefined-variable error


def _string(value: Any) -> str:
    _check(value)
    return to_text(value)


# -- strings -------------------------------------------------------------------------------------
def abbreviate(value: Any, length: int) -> Any:
    if value is None:
        return None
    s = _string(value)
    if length < 0:
        raise FilterError("Invalid argument to abbreviate filter; must be greater than zero")
    if len(s) < length or len(s) <= 3:
        return s
    if length <= 3:
        return s[:length]
    return s[: length - 3] + "..."


def capitalize(value: Any) -> Any:
    if value is None:
        return None
    s = _string(value)
    return s[:1].upper() + s[1:]  # unlike Jinja's, leaves the rest untouched


def title(value: Any) -> Any:
    if value is None:
        return None
    out, upper_next = [], True
    for c in _string(value):
        if c.isspace():
            upper_next = True
        elif upper_next:
            c = c.upper()
            upper_next = False
        out.append(c)
    return "".join(out)


def lower(value: Any) -> Any:
    return None if value is None else _string(value).lower()


def upper(value: Any) -> Any:
    return None if value is None else _string(value).upper()


def trim(value: Any) -> Any:
    return None if value is None else _string(value).strip()


def replace(value: Any, replace_pairs: Any = None, new: Any = None, regexp: bool = False) -> Any:
    """Kestra's ``replace({'a': 'b'}, regexp=false)``; Jinja's ``replace('a', 'b')`` also works."""
    if value is None:
        return None
    if replace_pairs is None:
        raise FilterError("The argument 'replace_pairs' is required.")
    if isinstance(replace_pairs, Mapping):
        pairs = [(str(k), to_text(v)) for k, v in replace_pairs.items()]
    else:
        if new is None:
            raise FilterError("replace expects a map of replacements, or an old and a new string")
        pairs = [(to_text(replace_pairs), to_text(new))]

    def one(s: str) -> str:
        for old, repl in pairs:
            if regexp:
                s = _regex_sub(old, repl, s)
            else:
                if len(repl) > len(old):  # the result's size is known before it is built
                    check_result(len(s) + s.count(old) * (len(repl) - len(old)))
                s = s.replace(old, repl)
        return s

    return _deep_strings(value, one)


def _deep_strings(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_deep_strings(v, fn) for v in value]
    return fn(_string(value))


class _Regex:
    """A compiled pattern whose every use stops at the render's deadline: backtracking can take
    exponential time inside one C call, where no hook of the sandbox runs (``regex`` has timeouts)."""

    __slots__ = ("pattern",)

    def __init__(self, pattern: str) -> None:
        import regex

        try:
            self.pattern = regex.compile(pattern)
        except regex.error as exc:
            raise FilterError(f"invalid regular expression {pattern!r}: {exc}") from None

    def _run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        budget = budget_for_call()
        try:
            return getattr(self.pattern, method)(*args, timeout=max(budget.time_left(), 0.001), **kwargs)
        except TimeoutError:
            budget.timed_out()

    def search(self, s: str) -> Any:
        return self._run("search", s)

    def match(self, s: str) -> Any:
        return self._run("match", s)

    def sub(self, repl: Any, s: str) -> str:
        return self._run("sub", repl, s)  # type: ignore[no-any-return]

    def split(self, s: str, maxsplit: int = 0) -> list[str]:
        return self._run("split", s, maxsplit=maxsplit)  # type: ignore[no-any-return]


@lru_cache(maxsize=256)
def _java_regex(pattern: str) -> _Regex:
    return _Regex(pattern)


def _java_replacement(repl: str) -> Callable[[Any], str]:
    """Java's replacement syntax: ``$1`` / ``${name}`` for groups, ``\\$`` for a dollar.

    Parsed once into text and group references, so each match costs a join, not a re-parse."""
    parts: list[str | int] = []  # text, or a group (by number or name: str group names are tagged)
    names: dict[int, str] = {}
    text: list[str] = []
    i = 0
    while i < len(repl):
        c = repl[i]
        if c == "\\" and i + 1 < len(repl):
            text.append(repl[i + 1])
            i += 2
        elif c == "$" and i + 1 < len(repl) and repl[i + 1] == "{":
            end = repl.index("}", i)
            parts.append("".join(text))
            text = []
            names[len(parts)] = repl[i + 2 : end]
            parts.append(0)
            i = end + 1
        elif c == "$" and i + 1 < len(repl) and repl[i + 1].isdigit():
            parts.append("".join(text))
            text = []
            parts.append(int(repl[i + 1]))
            i += 2
        else:
            text.append(c)
            i += 1
    parts.append("".join(text))
    if len(parts) == 1:
        literal = str(parts[0])
        return lambda _m: literal

    def expand(m: Any) -> str:
        out = []
        for at, part in enumerate(parts):
            if type(part) is str:
                out.append(part)
            else:
                out.append(m.group(names.get(at, part)) or "")
        return "".join(out)

    return expand


def _regex_sub(regex: str, replacement: str, s: str) -> str:
    """``re.sub`` with Java's replacement syntax, failing as soon as its result outgrows the budget."""
    expand = _java_replacement(replacement)
    written = len(s)

    def bounded(m: Any) -> str:
        nonlocal written
        out = expand(m)
        written += len(out)
        check_result(written)
        return out

    return _java_regex(regex).sub(bounded, s)


def regex_match(value: Any, regex: str) -> bool:
    return value is not None and _java_regex(regex).search(_string(value)) is not None


def regex_extract(value: Any, regex: str, group: int = 0) -> Any:
    if value is None:
        return None
    m = _java_regex(regex).search(_string(value))
    return m.group(group) if m else None


def regex_replace(value: Any, regex: str, replacement: str) -> Any:
    if value is None:
        return None
    return _regex_sub(regex, replacement, _string(value))


def split(value: Any, delimiter: str, limit: int = 0) -> Any:
    """Java's ``String.split(regex, limit)``, which Pebble uses."""
    if value is None:
        return None
    s = _string(value)
    if delimiter is None:
        raise FilterError("missing delimiter parameter in split filter")
    if s == "":
        return [""]
    if len(delimiter) == 1 and delimiter not in ".$|()[{^?*+\\":
        parts = s.split(delimiter, limit - 1 if limit > 0 else -1)
    else:
        parts = _java_regex(delimiter).split(s, maxsplit=limit - 1 if limit > 0 else 0)
        first = _java_regex(delimiter).match(s)
        if parts and parts[0] == "" and first is not None and first.end() == 0:
            parts = parts[1:]  # a zero-width match at the start never yields a leading ""
    if limit == 0:
        while parts and parts[-1] == "":
            parts.pop()
    return parts


def substring_before(value: Any, separator: str) -> Any:
    if value is None:
        return None
    s = _string(value)
    if not s or separator is None:
        return s
    if separator == "":
        return ""
    pos = s.find(separator)
    return s if pos < 0 else s[:pos]


def substring_after(value: Any, separator: str) -> Any:
    if value is None:
        return None
    s = _string(value)
    if not s:
        return s
    if separator is None:
        return ""
    pos = s.find(separator)
    return "" if pos < 0 else s[pos + len(separator) :]


def substring_before_last(value: Any, separator: str) -> Any:
    if value is None:
        return None
    s = _string(value)
    if not s or not separator:
        return s
    pos = s.rfind(separator)
    return s if pos < 0 else s[:pos]


def substring_after_last(value: Any, separator: str) -> Any:
    if value is None:
        return None
    s = _string(value)
    if not s:
        return s
    if not separator:
        return ""
    pos = s.rfind(separator)
    if pos < 0 or pos == len(s) - len(separator):
        return ""
    return s[pos + len(separator) :]


def starts_with(value: Any, prefix: str) -> bool:
    return value is not None and _string(value).startswith(to_text(prefix))


def ends_with(value: Any, suffix: str) -> bool:
    return value is not None and _string(value).endswith(to_text(suffix))


def slugify(value: Any) -> Any:
    """Kestra's Slugify: whitespace to dashes, accents stripped, non-word dropped, lower case."""
    if value is None:
        return None
    s = re.sub(r"\s", "-", _string(value))
    s = unicodedata.normalize("NFD", s)
    s = re.sub(r"[^\w-]", "", s, flags=re.ASCII).replace("_", "-")
    s = re.sub(r"-{2,}", "-", s).strip("-")
    return s.lower()


def escape_char(value: Any, type: str) -> Any:
    if value is None:
        return None
    s = _string(value)
    kind = str(type).lower()
    if kind == "single":
        return s.replace("'", "\\'")
    if kind == "double":
        return s.replace('"', '\\"')
    if kind == "shell":
        return s.replace("'", "'\\''")
    raise FilterError(
        "The 'escapeChar' filter expects the value of 'type' to be either 'single', 'double', or 'shell'."
    )


def _indent(value: Any, amount: int, prefix: str, first_line: bool) -> Any:
    if value is None:
        return None
    s = _string(value)
    if not s:
        return s
    if not isinstance(amount, int) or amount < 0:
        raise FilterError("The indent filters expect a positive integer >=0 as argument 'amount'.")
    if amount * len(prefix) > MAX_INDENT:
        raise FilterError(f"The indent amount is limited to {MAX_INDENT} characters")
    newline = next((nl for nl in ("\r\n", "\n\r", "\n", "\r") if nl in s), "\n")
    pad = prefix * amount
    check_result(len(s) + (s.count(newline) + first_line) * len(pad))
    if first_line:
        s = newline + s
    return s.replace(newline, newline + pad)


def indent(value: Any, amount: int, prefix: str = " ") -> Any:
    """Indent every line but the first (it is assumed to be in place already)."""
    return _indent(value, amount, prefix, first_line=False)


def nindent(value: Any, amount: int, prefix: str = " ") -> Any:
    """Start with a newline, then indent every line."""
    return _indent(value, amount, prefix, first_line=True)


def nl2br(value: Any) -> Any:
    return None if value is None else _string(value).replace("\r\n", "<br />").replace("\n", "<br />")


def string(value: Any) -> Any:
    return None if value is None else _string(value)


# -- encodings and hashes ------------------------------------------------------------------------------
def base64encode(value: Any) -> Any:
    return None if value is None else base64.b64encode(_bytes(value)).decode("ascii")


def base64decode(value: Any) -> Any:
    if value is None:
        return None
    return base64.b64decode(_string(value), validate=True).decode("utf-8")


def urlencode(value: Any) -> Any:
    # java.net.URLEncoder: space to '+', only [A-Za-z0-9.-*_] kept.
    return None if value is None else quote_plus(_string(value), safe="*").replace("~", "%7E")


def urldecode(value: Any) -> Any:
    return None if value is None else unquote_plus(_string(value))


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else _string(value).encode("utf-8")


def _hasher(name: str) -> Callable[[Any], Any]:
    def digest(value: Any) -> Any:
        return None if value is None else hashlib.new(name, _bytes(value)).hexdigest()

    digest.__name__ = name
    return digest


# -- numbers -----------------------------------------------------------------------------------
def abs_(value: Any) -> Any:
    if value is None:
        return None
    _check(value)
    return abs(value)


def number(value: Any, type: str | None = None) -> Any:
    """Parse a string to a number (commons-lang ``NumberUtils.createNumber``)."""
    if value is None:
        return None
    _check(value)
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise FilterError(
            f"'number' filter can only be applied to String. Actual type was: {type_name(value)}"
        )
    kind = (type or "").upper()
    try:
        if kind == "INT":
            return _parse_int(text.rstrip("lL"))
        if kind == "LONG":
            return JavaLong(_parse_int(text.rstrip("lL")))
        if kind == "BIGINTEGER":
            return JavaBigInteger(_parse_int(text.rstrip("lL")))
        if kind == "FLOAT":
            return JavaFloat(float(text.rstrip("fFdD")))
        if kind == "DOUBLE":
            return float(text.rstrip("fFdD"))
        if kind == "BIGDECIMAL":
            return Decimal(text)
        if kind:
            raise FilterError(f"Unknown number type '{type}'")
        if re.fullmatch(r"[+-]?(0[xX][0-9a-fA-F]+|\d+)[lL]?", text):
            n = _parse_int(text.rstrip("lL"))
            if (
                text[-1:] in "lL" or not -(2**31) <= n < 2**31
            ):  # createNumber: Integer, then Long, then BigInteger
                return JavaLong(n) if -(2**63) <= n < 2**63 else JavaBigInteger(n)
            return n
        if text[-1:] in "dD":
            return float(text[:-1])
        if text[-1:] in "fF":
            return JavaFloat(float(text[:-1]))
        return _float_kind(text)
    except (ValueError, InvalidOperation):
        raise FilterError(f"{text} is not a valid number.") from None


def _parse_int(text: str) -> int:
    body = text.lstrip("+-")
    n = int(body, 16) if body.lower().startswith("0x") else int(body, 10)
    return -n if text.startswith("-") else n


def number_format(value: Any, format: str | None = None) -> Any:
    """``java.text.DecimalFormat`` patterns: ``#,##0.00``, ``0.###``, ``#%``..."""
    if value is None:
        return None
    _check(value)
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise FilterError("The input for the 'NumberFormat' filter has to be a number.")
    return _decimal_format(Decimal(str(value)), format or "#,##0.###")


_PATTERN = re.compile(r"^(?P<prefix>[^#0,.]*)(?P<int>[#0,]*)(?:\.(?P<frac>[0#]*))?(?P<suffix>[^#0,.]*)$")


def _decimal_format(num: Decimal, pattern: str) -> str:
    positive = pattern.split(";")[0]
    m = _PATTERN.match(positive)
    if not m:
        raise FilterError(f"Unsupported number format '{pattern}'")
    prefix, int_part, frac, suffix = (
        m.group("prefix"),
        m.group("int"),
        m.group("frac") or "",
        m.group("suffix"),
    )
    prefix, suffix = prefix.replace("'", ""), suffix.replace("'", "")
    if "%" in prefix + suffix:
        num *= 100
    elif "\u2030" in prefix + suffix:
        num *= 1000
    min_int = int_part.replace(",", "").count("0")
    group = len(int_part) - int_part.rfind(",") - 1 if "," in int_part else 0
    min_frac, max_frac = frac.count("0"), len(frac)
    q = num.quantize(Decimal(1).scaleb(-max_frac), rounding=ROUND_HALF_EVEN)
    negative = q < 0
    digits = f"{abs(q):f}"
    whole, _, fraction = digits.partition(".")
    fraction = fraction.rstrip("0")
    fraction = fraction + "0" * (min_frac - len(fraction))
    whole = whole.lstrip("0").rjust(min_int, "0")
    if group:
        chunks: list[str] = []
        while len(whole) > group:
            chunks.insert(0, whole[-group:])
            whole = whole[:-group]
        whole = ",".join([whole, *chunks]) if whole else ",".join(chunks)
    if not whole and not fraction:
        whole = "0"
    text = whole + ("." + fraction if fraction else "")
    return ("-" if negative and text.strip("0.,") else "") + prefix + text + suffix


# -- collections -------------------------------------------------------------------------------
def default(value: Any, default: Any = None) -> Any:
    """Pebble's default: also for null, a blank string or an empty collection."""
    if isinstance(value, Undefined) or is_empty(value):
        return default
    return value


def length(value: Any) -> int:
    if value is None:
        return 0
    _check(value)
    if isinstance(value, str | Mapping | list | tuple | set | frozenset):
        return len(value)
    return len(to_text(value))


def first(value: Any) -> Any:
    if value is None:
        return None
    _check(value)
    if isinstance(value, str):
        return value[:1] or None
    items = list(value.values()) if isinstance(value, Mapping) else list(value)
    return items[0] if items else None


def last(value: Any) -> Any:
    if value is None:
        return None
    _check(value)
    if isinstance(value, str):
        return value[-1:] or None
    items = list(value.values()) if isinstance(value, Mapping) else list(value)
    return items[-1] if items else None


def join(value: Any, separator: str | None = None) -> Any:
    if value is None:
        return None
    _check(value)
    separator = separator or ""
    parts, size = [], 0
    for v in value:  # the result's size is checked as it grows, before it is built
        text = to_text(v)
        size += len(text) + len(separator)
        check_result(size)
        parts.append(text)
    return separator.join(parts)


def slice_(value: Any, fromIndex: int = 0, toIndex: int | None = None) -> Any:
    if value is None:
        return None
    _check(value)
    if not isinstance(value, str | list | tuple):
        raise FilterError(
            f"Slice filter can only be applied to String, List and array inputs. Actual type was: {type_name(value)}"
        )
    size = len(value)
    end = size if toIndex is None else toIndex
    if fromIndex < 0:
        raise FilterError("fromIndex must be greater than 0")
    if end > size:
        raise FilterError(f"toIndex must be smaller than input size: {size}")
    if toIndex is not None and fromIndex >= end:
        raise FilterError("toIndex must be greater than fromIndex")
    out = value[fromIndex:end]
    return list(out) if isinstance(out, tuple) else out


def sort(value: Any) -> Any:
    if value is None:
        return None
    _check(value)
    return sorted(value)


def rsort(value: Any) -> Any:
    if value is None:
        return None
    _check(value)
    return sorted(value, reverse=True)


def reverse(value: Any) -> Any:
    if value is None:
        return None
    _check(value)
    if isinstance(value, str):
        return value[::-1]
    return list(reversed(list(value)))


def merge(value: Any, items: Any) -> Any:
    if value is None:
        if items is None:
            raise FilterError("The two arguments to be merged are null")
        return items
    if items is None:
        return value
    _check(value)
    _check(items)
    if isinstance(value, Mapping):
        if isinstance(items, Mapping):
            return {**value, **items}
        if isinstance(items, list | tuple):
            return {**value, **{i: i for i in items}}
        raise FilterError("Currently, only Maps and Lists can be merged with a Map.")
    if isinstance(value, list | tuple):
        if isinstance(items, Mapping):
            return [*value, *({k: v} for k, v in items.items())]
        if isinstance(items, list | tuple):
            return [*value, *items]
        raise FilterError("Currently, only Maps and Lists can be merged with a List.")
    raise FilterError("The object being filtered is not a Map/List/Array")


def keys(value: Any) -> Any:
    if value is None:
        return None
    _check(value)
    if isinstance(value, Mapping):
        return list(value.keys())
    if isinstance(value, list | tuple):
        return list(range(len(value)))
    raise FilterError(
        f"'keys' filter can only be applied to List, Map, Array. Actual type was: {type_name(value)}"
    )


def values(value: Any) -> Any:
    if value is None:
        return None
    _check(value)
    if isinstance(value, Mapping):
        return list(value.values())
    raise FilterError(f"'values' filter can only be applied to Map. Actual type was: {type_name(value)}")


def chunk(value: Any, size: int) -> Any:
    if value is None:
        return None
    _check(value)
    if not isinstance(value, list | tuple):
        raise FilterError(f"'chunk' filter can only be applied to List. Actual type was: {type_name(value)}")
    if not isinstance(size, int) or size <= 0:
        raise FilterError("'chunk' filter expects a positive argument 'size'.")
    return [list(value[i : i + size]) for i in range(0, len(value), size)]


def distinct(value: Any) -> Any:
    if value is None:
        return None
    _check(value)
    if not isinstance(value, list | tuple):
        raise FilterError(f"Input must be a list, but received : {type_name(value)}")
    out: list[Any] = []
    seen: set[Any] = set()
    for item in value:
        try:
            if item in seen:
                continue
            seen.add(item)
        except TypeError:  # unhashable (map, list): compare by equality
            if item in out:
                continue
        out.append(item)
    return out


def flatten(value: Any) -> Any:
    if value is None:
        return None
    _check(value)
    if not isinstance(value, list | tuple):
        raise FilterError("The 'flatten' filter can only be applied to lists.")
    out: list[Any] = []
    for item in value:
        out.extend(item) if isinstance(item, list | tuple) else out.append(item)
    return out


# -- structured data -----------------------------------------------------------------------------------
def to_json_filter(value: Any) -> str:
    _check(value)
    return to_json(value)


def from_json(value: Any) -> Any:
    if value is None:
        return None
    _check(value)
    if not isinstance(value, str | bytes):
        return value  # already structured
    return json.loads(value)


def jq(value: Any, expression: str) -> Any:
    """Apply a jq expression; like Kestra, always a list of results.

    The program runs in a helper process (:mod:`roost.expr.jq_runner`): jq cannot be interrupted
    and holds the GIL, so in this process one program could freeze every thread."""
    from roost.expr import jq_runner

    if value is None:
        return None
    _check(value)
    text = value if isinstance(value, str) else to_json(value)
    budget = budget_for_call()
    try:
        return jq_runner.run(expression, text, budget)
    except jq_runner.JqTimeout:
        budget.timed_out()
    except jq_runner.JqTooLarge:
        budget.too_large()
    except jq_runner.JqError as exc:
        raise FilterError(f"Failed to resolve JQ expression '{expression}': {exc}") from None


def yaml(value: Any) -> str:
    """YAML like Kestra's Jackson mapper: no document marker, minimal quotes, indented lists."""
    if value is None:
        return "null"
    _check(value)
    from ruamel.yaml import YAML

    dumper = YAML(typ="rt", pure=True)
    dumper.indent(mapping=2, sequence=4, offset=2)
    dumper.default_flow_style = False
    dumper.width = 1 << 20  # never split long lines
    out = StringIO()
    dumper.dump(json.loads(to_json(value)), out)
    text = out.getvalue()
    return text[: -len("...\n")] if text.endswith("\n...\n") else text


# -- dates -----------------------------------------------------------------------------------------
def date(
    value: Any,
    format: str | None = None,
    timeZone: str | None = None,
    existingFormat: str | None = None,
    locale: str | None = None,
) -> Any:
    if value is None:
        return None
    _check(value)
    tz = dates.zone(timeZone)
    return dates.format_date(dates.to_datetime(value, tz, existingFormat), format, tz)


def date_add(
    value: Any,
    amount: int,
    unit: str,
    format: str | None = None,
    timeZone: str | None = None,
    existingFormat: str | None = None,
    locale: str | None = None,
) -> Any:
    if value is None:
        return None
    _check(value)
    tz = dates.zone(timeZone)
    moved = dates.add(dates.to_datetime(value, tz, existingFormat), int(amount), str(unit))
    return dates.format_date(moved, format, tz)


def _epoch(value: Any, timeZone: str | None, existingFormat: str | None) -> tuple[int, int]:
    _check(value)
    dt = dates.to_datetime(value, dates.zone(timeZone), existingFormat)
    seconds = int(dt.timestamp() // 1)
    return seconds, dt.microsecond


def timestamp(value: Any, timeZone: str | None = None, existingFormat: str | None = None) -> Any:
    return None if value is None else _epoch(value, timeZone, existingFormat)[0]


def timestamp_milli(value: Any, timeZone: str | None = None, existingFormat: str | None = None) -> Any:
    if value is None:
        return None
    s, us = _epoch(value, timeZone, existingFormat)
    return s * 1000 + us // 1000


def timestamp_micro(value: Any, timeZone: str | None = None, existingFormat: str | None = None) -> Any:
    if value is None:
        return None
    s, us = _epoch(value, timeZone, existingFormat)
    return s * 1_000_000 + us


def timestamp_nano(value: Any, timeZone: str | None = None, existingFormat: str | None = None) -> Any:
    if value is None:
        return None
    s, us = _epoch(value, timeZone, existingFormat)
    return str(s * 1_000_000_000 + us * 1000)  # Kestra returns this one as a string


def type_name(value: Any) -> str:
    return type(value).__name__


_ION_SYMBOL = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_ION_RESERVED = frozenset({"null", "true", "false", "nan"})


def to_ion(value: Any) -> str:
    """Kestra's ``toIon``: the value as Ion text (maps as structs, floats as Ion floats, date-times as timestamps)."""
    _check(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return "nan" if value != value else ("+inf" if value > 0 else "-inf")
        return repr(value).replace("e+", "e") + ("" if "e" in repr(value) else "e0")
    if isinstance(value, Decimal):
        return format(value, "f") + ("" if "." in format(value, "f") else ".")
    if isinstance(value, datetime.datetime):
        return value.isoformat().replace("+00:00", "Z") if value.tzinfo else value.isoformat() + "-00:00"
    if isinstance(value, Mapping):
        fields = []
        for key, item in value.items():
            name = str(key)
            label = (
                name
                if _ION_SYMBOL.match(name) and name not in _ION_RESERVED
                else json.dumps(name, ensure_ascii=False)
            )
            fields.append(f"{label}:{to_ion(item)}")
        return "{" + ",".join(fields) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_ion(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


class JavaFloat(float):
    """A float that Kestra's ``number`` filter would have typed ``java.lang.Float`` (``className`` says so)."""


class JavaLong(int):
    """An integer Kestra would hold as ``java.lang.Long`` although it fits an Integer."""


class JavaBigInteger(int):
    """An integer Kestra would hold as ``java.math.BigInteger``."""


def class_name(value: Any) -> Any:
    """The Java class Kestra would hold ``value`` as (Kestra's ``className``; Pebble literals are Longs)."""
    if value is None:
        return None
    _check(value)
    if isinstance(value, JavaFloat):
        return "java.lang.Float"
    if isinstance(value, JavaLong):
        return "java.lang.Long"
    if isinstance(value, JavaBigInteger):
        return "java.math.BigInteger"
    if isinstance(value, bool):
        return "java.lang.Boolean"
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return "java.lang.Integer"
        return "java.lang.Long" if -(2**63) <= value < 2**63 else "java.math.BigInteger"
    if isinstance(value, float):
        return "java.lang.Double"
    if isinstance(value, Decimal):
        return "java.math.BigDecimal"
    if isinstance(value, str):
        return "java.lang.String"
    if isinstance(value, dict):
        return "java.util.LinkedHashMap"
    if isinstance(value, list | tuple):
        return "java.util.ArrayList"
    if isinstance(value, datetime.datetime):
        return "java.time.ZonedDateTime"
    return type(value).__name__


def _float_kind(text: str) -> float:
    """NumberUtils.createNumber for a decimal: a Float when a float32 keeps every digit, else a Double."""
    import struct

    value = float(text)
    single = struct.unpack("f", struct.pack("f", value))[0] if abs(value) < 3.4e38 else None
    if (
        single is not None
        and (value == 0 or single != 0)
        and _shortest32(single) == repr(value).removesuffix(".0")
    ):
        return JavaFloat(value)
    return value


def _shortest32(single: float) -> str:
    import struct

    bits = struct.pack("f", single)
    for digits in range(1, 10):
        text = f"{single:.{digits}g}"
        if struct.pack("f", float(text)) == bits:
            return repr(float(text)).removesuffix(".0")
    return repr(single)


FILTERS: dict[str, Callable[..., Any]] = {
    "abbreviate": abbreviate,
    "abs": abs_,
    "base64decode": base64decode,
    "base64encode": base64encode,
    "capitalize": capitalize,
    "chunk": chunk,
    "className": class_name,
    "date": date,
    "dateAdd": date_add,
    "default": default,
    "distinct": distinct,
    "endsWith": ends_with,
    "escapeChar": escape_char,
    "first": first,
    "flatten": flatten,
    "fromJson": from_json,
    "jsonDecode": from_json,
    "indent": indent,
    "join": join,
    "jq": jq,
    "json": to_json_filter,
    "jsonEncode": to_json_filter,
    "keys": keys,
    "last": last,
    "length": length,
    "lower": lower,
    "md5": _hasher("md5"),
    "merge": merge,
    "nindent": nindent,
    "nl2br": nl2br,
    "number": number,
    "numberFormat": number_format,
    "regexExtract": regex_extract,
    "regexMatch": regex_match,
    "regexReplace": regex_replace,
    "replace": replace,
    "reverse": reverse,
    "rsort": rsort,
    "sha1": _hasher("sha1"),
    "sha256": _hasher("sha256"),
    "sha512": _hasher("sha512"),
    "slice": slice_,
    "slugify": slugify,
    "sort": sort,
    "split": split,
    "startsWith": starts_with,
    "string": string,
    "substringAfter": substring_after,
    "substringAfterLast": substring_after_last,
    "substringBefore": substring_before,
    "substringBeforeLast": substring_before_last,
    "timestamp": timestamp,
    "timestampMicro": timestamp_micro,
    "timestampMilli": timestamp_milli,
    "timestampNano": timestamp_nano,
    "title": title,
    "toIon": to_ion,
    "toJson": to_json_filter,
    "toString": string,
    "trim": trim,
    "uniq": distinct,
    "upper": upper,
    "urldecode": urldecode,
    "urlencode": urlencode,
    "values": values,
    "yaml": yaml,
}

# Jinja built-ins that are unsafe (memory bombs, sandbox surface) or meaningless here.
REMOVED_JINJA_FILTERS = (
    "attr",
    "batch",  # batch(10**9, fill) allocates the fill before anything can count it
    "center",
    "d",
    "e",
    "escape",
    "forceescape",
    "format",
    "pprint",
    "safe",
    "striptags",
    "urlize",
    "xmlattr",
    "wordwrap",
    "filesizeformat",
    "tojson",
)
