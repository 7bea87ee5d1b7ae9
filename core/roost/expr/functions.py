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
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(yaml)


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
}
