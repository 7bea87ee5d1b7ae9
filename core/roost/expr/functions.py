"""Kestra's expression functions: ``now()``, ``secret()``, ``kv()``, ``render()``...

Two kinds: *plain* functions (``uuid()``, ``range()``...) and *context*
functions, which take a :class:`~roost.expr.engine.RenderCtx` first (the
variables, the run-time services and the engine) -- the same shape plugin
functions registered through ``register_expression_functions`` have.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import socket
import uuid as _uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jinja2 import Undefined

from roost.expr import dates

if TYPE_CHECKING:
    from roost.expr.engine import RenderCtx, Services

MAX_RANGE = 100_000
MAX_RENDER_PASSES = 100  # Kestra's VariableRenderer.MAX_RENDERING_AMOUNT
_loads = json.loads  # from_json() takes an argument named "json", as in Kestra
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_NANOID = "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class FunctionError(ValueError):
    """A function was called with arguments it cannot work with."""


def _check(*values: Any) -> None:
    for value in values:
        if isinstance(value, Undefined):
            str(value)  # raises the undefined-variable error


# -- plain functions -------------------------------------------------------------------------------
def now(
    format: str | None = None,
    timeZone: str | None = None,
    existingFormat: str | None = None,
    locale: str | None = None,
) -> str:
    """The current date-time as ISO-8601 with offset (Kestra's ``iso`` format) unless ``format`` says otherwise."""
    tz = dates.zone(timeZone)
    return dates.format_date(datetime.now(tz), format, tz)


def uuid() -> str:
    return str(_uuid.uuid4())


def id_() -> str:
    """A short unique id like Kestra's IdUtils (FriendlyId: a random UUID in base62, up to 22 chars)."""
    n = _uuid.uuid4().int
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(_BASE62[r])
    return "".join(reversed(out)) or "0"


def nano_id(length: int = 21, alphabet: str = _NANOID) -> str:
    if not isinstance(length, int) or not 0 < length <= 1024:
        raise FunctionError("nanoId length must be between 1 and 1024")
    return "".join(secrets.choice(alphabet) for _ in range(length))


def random_int(lower: int, upper: int) -> int:
    """A random integer in [lower, upper) -- the upper bound is excluded, as in Kestra."""
    for name, value in (("lower", lower), ("upper", upper)):
        _check(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise FunctionError(f"The 'randomInt()' function expects an argument {name} of type Long.")
    if upper < lower:
        raise FunctionError("In 'randomInt()' upper is less than lower")
    if upper == lower:
        return lower
    return lower + secrets.randbelow(upper - lower)


def random_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def range_(start: Any, end: Any, increment: int = 1) -> list[Any]:
    """Pebble's range: the end is *included*; numbers or single characters; bounded in size."""
    _check(start, end, increment)
    if not isinstance(increment, int) or increment == 0:
        raise FunctionError("The increment of the range function must be a number different than 0")
    chars = isinstance(start, str) and isinstance(end, str)
    if chars:
        if len(start) != 1 or len(end) != 1:
            raise FunctionError(
                "Arguments of range function must be of type Number or String with a length of 1"
            )
        lo, hi = ord(start), ord(end)
    elif isinstance(start, int | float) and isinstance(end, int | float):
        lo, hi = int(start), int(end)
    else:
        raise FunctionError("Arguments of range function must be of type Number or String with a length of 1")
    size = max(0, (hi - lo) // increment + 1)
    if size > MAX_RANGE:
        raise FunctionError(
            f"The range function cannot produce more than {MAX_RANGE} elements, but this call would produce {size}."
        )
    values = range(lo, hi + (1 if increment > 0 else -1), increment)
    return [chr(v) for v in values] if chars else list(values)


def max_(*args: Any) -> Any:
    _check(*args)
    return max(args[0]) if len(args) == 1 and isinstance(args[0], list | tuple) else max(args)


def min_(*args: Any) -> Any:
    _check(*args)
    return min(args[0]) if len(args) == 1 and isinstance(args[0], list | tuple) else min(args)


def from_json(json: Any) -> Any:
    _check(json)
    if json is None:
        return None
    return _loads(json) if isinstance(json, str | bytes) else json


def from_yaml(yaml: Any) -> Any:
    _check(yaml)
    if yaml is None:
        return None
    from roost.flow.yaml import YamlError, load_data

    if not isinstance(yaml, str):
        raise FunctionError("The 'yaml' function expects a string")
    try:
        return load_data(yaml)  # bounded: the text may come from anywhere
    except YamlError as exc:
        raise FunctionError(f"The 'yaml' function cannot parse its argument: {exc}") from None


# -- context functions ------------------------------------------------------------------------------
def _services(ctx: RenderCtx, function: str) -> Services:
    if ctx.services is None:
        raise FunctionError(f"The '{function}' function needs run-time services, and none were given")
    return ctx.services


def _remember_secret(services: Services, value: Any) -> None:
    """Record a secret value so every log line can be masked."""
    known = getattr(services, "secret_values", None)
    if known is not None and hasattr(known, "add") and isinstance(value, str) and value:
        known.add(value)


def secret(ctx: RenderCtx, key: str, namespace: str | None = None, subkey: str | None = None) -> Any:
    _check(key, namespace, subkey)
    services = _services(ctx, "secret")
    value = services.secret(key) if namespace is None else services.secret(key, namespace=namespace)  # type: ignore[call-arg]
    _remember_secret(services, value)
    if subkey is not None:
        try:
            value = json.loads(value)[subkey]
        except (ValueError, TypeError, KeyError):
            raise FunctionError(f"The secret '{key}' has no subkey '{subkey}'") from None
        _remember_secret(services, value)
    return value


def credential(ctx: RenderCtx, key: str) -> Any:
    _check(key)
    services = _services(ctx, "credential")
    value = services.credential(key)
    _remember_secret(services, value)
    return value


def kv(ctx: RenderCtx, key: str, namespace: str | None = None, errorOnMissing: bool = True) -> Any:
    _check(key, namespace, errorOnMissing)
    return _services(ctx, "kv").kv(key, namespace=namespace, error_on_missing=bool(errorOnMissing))


def read(ctx: RenderCtx, path: str) -> Any:
    _check(path)
    return _services(ctx, "read").read(path)


def file_uri(ctx: RenderCtx, path: str) -> Any:
    _check(path)
    return _services(ctx, "fileURI").file_uri(path)


def print_context(ctx: RenderCtx) -> dict[str, Any]:
    """Every variable of the render, for debugging (a map, JSON when interpolated)."""
    return dict(ctx.variables)


def current_each_output(ctx: RenderCtx, outputs: Any) -> Any:
    """The output of the current ForEach iteration: ``outputs.task[value]``, nested per parent loop."""
    _check(outputs)
    if not isinstance(outputs, Mapping):
        raise FunctionError("The 'currentEachOutput' function expects an argument 'outputs' with type map.")
    for parent in reversed(ctx.variables.get("parents") or []):
        taskrun = parent.get("taskrun") if isinstance(parent, Mapping) else None
        if taskrun:
            outputs = outputs.get(taskrun.get("value"))
            if not isinstance(outputs, Mapping):
                raise FunctionError(f"No output for the iteration '{taskrun.get('value')}'")
    taskrun = ctx.variables.get("taskrun")
    if not isinstance(taskrun, Mapping):
        raise FunctionError("The 'currentEachOutput' function can only be used inside a ForEach")
    return outputs.get(taskrun.get("value"))


def render(ctx: RenderCtx, toRender: Any, recursive: bool = True) -> Any:
    """Render a value that itself holds expressions, with the same variables.

    Strings render to strings (as Kestra does); maps and lists render member by
    member. ``recursive`` (the default) renders again until nothing changes.
    """
    _check(toRender)
    if not isinstance(recursive, bool):
        raise FunctionError(
            "The 'render' function expects an optional argument 'recursive' with type boolean."
        )
    engine = ctx.engine

    def one(value: Any) -> Any:
        if isinstance(value, str):
            passes = 0
            while True:
                rendered = engine.render_string(value, ctx.variables, ctx.services)
                if not recursive or rendered == value:
                    return rendered
                passes += 1
                if passes > MAX_RENDER_PASSES:
                    raise FunctionError("Too many rendering attempts")
                value = rendered
        if isinstance(value, Mapping):
            return {one(k): one(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [one(v) for v in value]
        return value

    return one(toRender)


def render_once(ctx: RenderCtx, toRender: Any) -> Any:
    return render(ctx, toRender, recursive=False)


def error_logs(ctx: RenderCtx) -> list[dict[str, Any]]:
    """The ERROR log lines of the current execution (Kestra's ``errorLogs()``, for ``errors`` branches)."""
    fetch = getattr(_services(ctx, "errorLogs"), "error_logs", None)
    if fetch is None:
        raise FunctionError("The 'errorLogs' function can only be used during an execution")
    return list(fetch())


def tasks_with_state(ctx: RenderCtx, state: Any = None) -> list[dict[str, Any]]:
    """Task runs of the execution in ``state``: ``{taskId, state}`` (and ``value`` inside a ForEach)."""
    if state is None:
        raise FunctionError("The 'tasksWithState' function expects an argument 'state'.")
    _check(state)
    wanted = str(state).upper()
    found: list[dict[str, Any]] = []
    for task_id, entry in (ctx.variables.get("tasks") or {}).items():
        if not isinstance(entry, Mapping):
            continue
        for key, value in entry.items():
            if key == "state" and isinstance(value, str):
                if value.upper() == wanted:
                    found.append({"taskId": task_id, "state": value.upper()})
            elif isinstance(value, Mapping) and str(value.get("state", "")).upper() == wanted:
                found.append({"taskId": task_id, "state": wanted, "value": key})
    return found


def iteration_output(ctx: RenderCtx, taskId: Any = None, iteration: Any = None) -> Any:
    """The ``value`` output of one iteration of a task inside a loop (the previous one by default)."""
    _check(taskId, iteration)
    taskrun = ctx.variables.get("taskrun")
    if not isinstance(taskrun, Mapping) or taskrun.get("iteration") is None:
        raise FunctionError("The 'iterationOutput()' function should be used inside iterative tasks only")
    if iteration is None:
        index = int(taskrun["iteration"]) - 1
    else:
        try:
            index = int(str(iteration))
        except ValueError:
            raise FunctionError(
                f"The 'iteration' argument for 'iterationOutput' must be an integer, but got: {iteration}"
            ) from None
    if index < 0:
        raise FunctionError(f"Cannot fetch iteration {index}: no previous iteration exists.")
    if isinstance(taskId, Mapping):  # iterationOutput(outputs.task), as Kestra's documentation writes it
        target: Any = taskId
    else:
        task_id = taskId if taskId is not None else (ctx.variables.get("task") or {}).get("id")
        target = (ctx.variables.get("outputs") or {}).get(task_id)
        for parent in reversed(ctx.variables.get("parents") or []):
            value = (parent.get("taskrun") or {}).get("value") if isinstance(parent, Mapping) else None
            if value is not None and isinstance(target, Mapping):
                target = target.get(value)
    if not isinstance(target, Mapping):
        return None
    keys = list(target)
    if index >= len(keys):
        raise FunctionError(f"The provided index ({index}) is out of range. It refers to an iteration whose outputs "
                            f"do not exist yet. Maximum valid index is {len(keys) - 1}.")  # fmt: skip
    chosen = target[keys[index]]
    return chosen.get("value") if isinstance(chosen, Mapping) else None


def parent_output(ctx: RenderCtx, index: Any = None) -> Any:
    """The outputs of a parent task: the direct parent, or ``index`` counted from the outermost one."""
    parents = list(ctx.variables.get("parents") or [])
    if index is None:
        if not parents:
            return None
        parent = parents[0]
    else:
        if isinstance(index, bool) or not isinstance(index, int):
            raise FunctionError("The 'parentOutput' function expects an argument 'index' of type integer.")
        if index + 1 > len(parents):
            raise FunctionError(f"Invalid index: {index} for parents size: {len(parents)}")
        parent = list(reversed(parents))[index]
    task_id = (parent.get("task") or {}).get("id")
    value = (parent.get("taskrun") or {}).get("value")
    outputs = (ctx.variables.get("outputs") or {}).get(task_id)
    if not isinstance(outputs, Mapping):
        return None
    return outputs if value is None else outputs.get(value)


def _file_stat(ctx: RenderCtx, function: str, path: Any, namespace: Any) -> int | None:
    _check(path, namespace)
    if not isinstance(path, str) or not path:
        raise FunctionError(f"The '{function}' function expects an argument 'path'.")
    stat = getattr(_services(ctx, function), "file_size", None)
    if stat is None:
        raise FunctionError(f"The '{function}' function can only be used during an execution")
    size: int | None = stat(path, namespace)
    return size


def file_size(ctx: RenderCtx, path: Any = None, namespace: Any = None) -> int:
    size = _file_stat(ctx, "fileSize", path, namespace)
    if size is None:
        raise FunctionError(f"Unable to find the file '{path}'")
    return size


def file_exists(ctx: RenderCtx, path: Any = None, namespace: Any = None) -> bool:
    return _file_stat(ctx, "fileExists", path, namespace) is not None


def is_file_empty(ctx: RenderCtx, path: Any = None, namespace: Any = None) -> bool:
    size = _file_stat(ctx, "isFileEmpty", path, namespace)
    if size is None:
        raise FunctionError(f"Unable to find the file '{path}'")
    return size == 0


_KSUID_EPOCH = 1_400_000_000


def ksuid() -> str:
    """A K-Sortable Unique IDentifier: 4 bytes of seconds since 2014-05-13 then 16 random bytes, base62 (27 chars)."""
    import time

    n = int.from_bytes(int(time.time() - _KSUID_EPOCH).to_bytes(4, "big") + secrets.token_bytes(16), "big")
    out = []
    for _ in range(27):
        n, r = divmod(n, 62)
        out.append(_BASE62[r])
    return "".join(reversed(out))


def _local_date(value: Any, function: str) -> Any:
    """A date from an ISO date or date-time (a string or a date), as Kestra's DateUtils.parseLocalDate reads it."""
    from datetime import date

    _check(value)
    if value is None:
        raise FunctionError(f"The '{function}()' function expects a 'date' argument.")
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    text = str(value).strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FunctionError(f"The '{function}()' function could not parse 'date': {text!r}") from None


_DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")


def is_weekend(date: Any = None) -> bool:
    return _local_date(date, "isWeekend").weekday() >= 5


def day_of_week(date: Any = None) -> str:
    return _DAYS[_local_date(date, "dayOfWeek").weekday()]


def day_of_month(date: Any = None) -> int:
    return int(_local_date(date, "dayOfMonth").day)


def month_of_year(date: Any = None) -> int:
    return int(_local_date(date, "monthOfYear").month)


def hour_of_day(date: Any = None) -> int:
    return int(_local_date(date, "hourOfDay").hour)


def is_day_week_in_month(date: Any = None, dayOfWeek: Any = None, dayInMonth: Any = None) -> bool:
    """True when ``date`` is the FIRST/SECOND/THIRD/FOURTH/LAST ``dayOfWeek`` of its month."""
    from datetime import timedelta

    day = _local_date(date, "isDayWeekInMonth")
    _check(dayOfWeek, dayInMonth)
    wanted = str(dayOfWeek or "").upper()
    if wanted not in _DAYS:
        raise FunctionError(
            f"The 'isDayWeekInMonth()' function expects a day of week among {', '.join(_DAYS)}"
        )
    which = str(dayInMonth or "").upper()
    positions = {"FIRST": 0, "SECOND": 1, "THIRD": 2, "FOURTH": 3}
    if which != "LAST" and which not in positions:
        raise FunctionError(
            "The 'isDayWeekInMonth()' function expects a dayInMonth among FIRST, SECOND, THIRD, FOURTH, LAST"
        )
    if _DAYS[day.weekday()] != wanted:
        return False
    if which == "LAST":
        return bool((day + timedelta(days=7)).month != day.month)
    return (day.day - 1) // 7 == positions[which]


def is_public_holiday(date: Any = None, countryCode: Any = None, subDivision: Any = None) -> bool:
    """A public holiday of ``countryCode`` (ISO 3166-1 alpha-2), optionally of a sub-division (``DE-BY`` or ``BY``)."""
    day = _local_date(date, "isPublicHoliday")
    _check(countryCode, subDivision)
    if not countryCode:
        raise FunctionError("The 'isPublicHoliday()' function expects a 'countryCode' argument.")
    return public_holiday(day.date(), str(countryCode), str(subDivision) if subDivision else None)


def public_holiday(day: Any, country: str, subdivision: str | None = None) -> bool:
    import holidays

    code = country.upper()
    sub = subdivision.upper().removeprefix(code + "-") if subdivision else None
    try:
        calendar = holidays.country_holidays(code, subdiv=sub, years=day.year)
    except NotImplementedError:
        raise FunctionError(f"No public holiday calendar for country '{country}'") from None
    except ValueError as exc:
        raise FunctionError(f"Unknown sub-division '{subdivision}' of country '{country}': {exc}") from None
    return day in calendar


def _aes_key(key: Any) -> bytes:
    """A 16/24/32-byte base64 key is used as is (Kestra's format); any other string is hashed to 32 bytes."""
    if not isinstance(key, str) or not key:
        raise FunctionError("An encryption key is required")
    try:
        raw = base64.b64decode(key, validate=True)
        if len(raw) in (16, 24, 32):
            return raw
    except ValueError:
        pass
    return hashlib.sha256(key.encode("utf-8")).digest()


def _key_and_text(ctx: RenderCtx, key: Any, text: Any, function: str) -> tuple[bytes, str]:
    _check(key, text)
    if text is None:  # encrypt('value'): the server's key, as in Kestra before keys were named
        key, text = getattr(ctx.services, "encryption_key", None), key
        if not key:
            raise FunctionError(f"The '{function}' function needs a key: {function}(key, value)")
    if not isinstance(text, str):
        raise FunctionError(f"The '{function}' function expects a string")
    return _aes_key(key), text


def encrypt(ctx: RenderCtx, key: Any, string: Any = None) -> str:
    """AES-256-GCM, 12-byte random IV prepended, base64 -- the layout of Kestra's CryptoService."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aes_key, text = _key_and_text(ctx, key, string, "encrypt")
    iv = os.urandom(12)
    return base64.b64encode(iv + AESGCM(aes_key).encrypt(iv, text.encode("utf-8"), None)).decode("ascii")


def decrypt(ctx: RenderCtx, key: Any, encrypted: Any = None) -> str:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aes_key, text = _key_and_text(ctx, key, encrypted, "decrypt")
    try:
        raw = base64.b64decode(text, validate=True)
        plain = AESGCM(aes_key).decrypt(raw[:12], raw[12:], None).decode("utf-8")
    except (ValueError, InvalidTag):
        raise FunctionError("Unable to decrypt the value: wrong key or corrupted data") from None
    if ctx.services is not None:
        _remember_secret(ctx.services, plain)
    return plain


PLAIN_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "now": now,
    "uuid": uuid,
    "id": id_,
    "nanoId": nano_id,
    "randomInt": random_int,
    "randomPort": random_port,
    "range": range_,
    "max": max_,
    "min": min_,
    "fromJson": from_json,
    "json": from_json,
    "jsonDecode": from_json,
    "yaml": from_yaml,
    "ksuid": ksuid,
    "isWeekend": is_weekend,
    "isPublicHoliday": is_public_holiday,
    "isDayWeekInMonth": is_day_week_in_month,
    "dayOfWeek": day_of_week,
    "dayOfMonth": day_of_month,
    "monthOfYear": month_of_year,
    "hourOfDay": hour_of_day,
}

CONTEXT_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "secret": secret,
    "credential": credential,
    "kv": kv,
    "read": read,
    "fileURI": file_uri,
    "printContext": print_context,
    "fetchContext": print_context,
    "currentEachOutput": current_each_output,
    "render": render,
    "renderOnce": render_once,
    "encrypt": encrypt,
    "decrypt": decrypt,
    "errorLogs": error_logs,
    "tasksWithState": tasks_with_state,
    "iterationOutput": iteration_output,
    "parentOutput": parent_output,
    "fileSize": file_size,
    "fileExists": file_exists,
    "isFileEmpty": is_file_empty,
}
