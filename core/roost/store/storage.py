"""Internal storage: files produced by tasks and FILE inputs, addressed by ``kestra://`` URIs.

A URI is ``kestra:///<namespace path>/<flow>/executions/<execution>/...``; its key (the part after
``kestra:///``) is normalised by one rule for every backend (:func:`storage_key`: relative, no ``..``,
no empty segment, no NUL), and each tenant has its own storage, so no URI reaches another tenant's
files. Backends stream: ``put`` takes bytes, a path or a binary stream, ``open_read`` returns a binary
stream, and nothing in between holds a whole file in memory. The built-in backend is
:class:`LocalStorage` (a folder per tenant); others (S3...) come from plugins through the
``register_storage_backends`` hook and are chosen by configuration (:func:`storage_factory`).
"""

from __future__ import annotations

import io
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol, runtime_checkable

SCHEME = "kestra://"
COPY_CHUNK = 1 << 20  # bytes per read when a stream is copied


class StorageError(Exception):
    """A URI is malformed or escapes its root, or the backend failed; the message says which."""


class StorageNotFound(StorageError):
    """No file is stored at the URI."""


class StorageOutside(StorageError):
    """A URI's file lies outside the folder it was asked within (links resolved, for local files)."""


class StorageUnavailable(StorageError):
    """The backend cannot be reached or refuses the request (down, wrong credentials, no bucket)."""


@runtime_checkable
class Storage(Protocol):
    """What an internal-storage backend provides, for one tenant. ``within`` (a key prefix, such as an
    execution's folder) makes a read fail with :class:`StorageOutside` unless the file lies inside it."""

    def put(self, key: str, data: bytes | BinaryIO | Path) -> str:
        """Store ``data`` at ``key`` (streamed; readers never see half a file); returns its URI."""
        ...

    def open_read(self, uri: str, within: str | None = None) -> BinaryIO:
        """A binary stream of the file (close it); :class:`StorageNotFound` when there is none."""
        ...

    def size(self, uri: str, within: str | None = None) -> int: ...

    def exists(self, uri: str) -> bool: ...

    def list(self, prefix: str) -> list[str]:
        """The URIs of every file under the key ``prefix`` (a folder), sorted."""
        ...

    def delete(self, uri: str) -> bool: ...

    def delete_prefix(self, key: str) -> int:
        """Delete every file under the key ``key`` (a folder, or one file); returns how many."""
        ...


def storage_key(key: str) -> str:
    """The normalised form of a storage key; :class:`StorageError` when it could leave its root."""
    if "\0" in key:
        raise StorageError(f"invalid storage path {key!r}: it contains a NUL byte")
    parts = PurePosixPath("/" + key.lstrip("/")).parts[1:]
    if any(p in ("..", "") for p in parts) or not parts:
        raise StorageError(f"invalid storage path {key!r}: it must be a relative path without '..'")
    return str(PurePosixPath(*parts))


def _safe_key(key: str) -> PurePosixPath:
    return PurePosixPath(storage_key(key))


def uri_key(uri: str) -> str:
    if not isinstance(uri, str) or not uri.startswith(SCHEME):
        raise StorageError(f"not an internal-storage URI: {uri!r} (expected {SCHEME}/...)")
    return storage_key(uri[len(SCHEME) :])


def key_uri(key: str) -> str:
    return SCHEME + "/" + storage_key(key)


def key_within(key: str, within: str | None) -> bool:
    """True when ``key`` lies inside the folder ``within`` (both normalised keys), or no folder is asked."""
    return within is None or key.startswith(storage_key(within) + "/")


def read_all(storage: Storage, uri: str, within: str | None = None) -> bytes:
    """The whole file in memory: for small files only (configuration, JSON); stream the others."""
    with storage.open_read(uri, within) as stream:
        return stream.read()


def download(storage: Storage, uri: str, target: Path, within: str | None = None) -> Path:
    """Copy the file to a local path, streaming (for the tools that need a file on disk)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with storage.open_read(uri, within) as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst, COPY_CHUNK)
    return target


class LocalStorage:
    """Files under one root folder, one folder per tenant."""

    kind = "local"

    def __init__(self, root: Path | str, tenant: str = "main") -> None:
        self.root = Path(root).resolve() / tenant
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalStorage({self.root})"

    def _path(self, key: str) -> Path:
        path = (self.root / _safe_key(key)).resolve()
        if self.root not in path.parents:
            raise StorageError(f"storage path {key!r} escapes the storage root")
        return path

    def put(self, key: str, data: bytes | BinaryIO | Path) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            if isinstance(data, bytes | bytearray | memoryview):
                tmp.write_bytes(data)
            elif isinstance(data, Path):
                shutil.copyfile(data, tmp)
            else:
                with tmp.open("wb") as fh:
                    shutil.copyfileobj(data, fh, COPY_CHUNK)
            os.replace(tmp, path)  # readers never see half a file
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return key_uri(key)

    def get(self, uri: str) -> bytes:
        return self.local_path(uri).read_bytes()

    def local_path(self, uri: str, within: str | None = None) -> Path:
        """The file of ``uri``; with ``within`` (a key prefix such as an execution's folder), its real
        path — every symbolic link resolved — must lie inside that folder, not merely inside the root:
        a link in storage never serves another execution's file."""
        path = self._path(uri_key(uri))
        if within is not None:
            folder = self.root / _safe_key(within)
            if folder not in path.parents:
                raise StorageOutside(f"{uri} is not a file of {within}")
        if not path.is_file():
            raise StorageNotFound(f"no file in internal storage at {uri}")
        return path

    def open_read(self, uri: str, within: str | None = None) -> BinaryIO:
        return self.local_path(uri, within).open("rb")

    def size(self, uri: str, within: str | None = None) -> int:
        return self.local_path(uri, within).stat().st_size

    def exists(self, uri: str) -> bool:
        try:
            return self._path(uri_key(uri)).is_file()
        except StorageError:
            return False

    def list(self, prefix: str) -> list[str]:
        folder = self._path(prefix)
        if folder.is_file():
            return [key_uri(prefix)]
        if not folder.is_dir():
            return []
        found = []
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.endswith(".tmp"):
                found.append(key_uri(str(path.relative_to(self.root))))
        return sorted(found)

    def delete(self, uri: str) -> bool:
        path = self._path(uri_key(uri))
        if path.is_file():
            path.unlink()
            return True
        return False

    def delete_prefix(self, key: str) -> int:
        path = self._path(key)
        if path.is_dir():
            count = sum(1 for p in path.rglob("*") if p.is_file())
            shutil.rmtree(path)
            return count
        if path.is_file():
            path.unlink()
            return 1
        return 0


def execution_prefix(namespace: str, flow_id: str, execution_id: str) -> str:
    return f"{namespace.replace('.', '/')}/{flow_id}/executions/{execution_id}"


# -- backends by configuration ------------------------------------------------------------------------
STORAGE_ENV = "ROOST_STORAGE"
"""For local runs: the ``storage:`` configuration as a file path or the YAML/JSON itself."""


class StorageConfigError(ValueError):
    """The storage configuration is malformed; the message names the configuration path."""


class LocalBackend:
    """The built-in ``local`` backend: ``basePath`` (default: the data folder's ``storage``), a folder per tenant."""

    @staticmethod
    def check(config: Any) -> Path:
        unknown = sorted(set(config) - {"basePath", "base-path", "data_dir"})
        if unknown:
            raise StorageConfigError(f"{config.path}: unknown propert{'ies' if len(unknown) > 1 else 'y'} "
                                     f"{', '.join(unknown)} (known: basePath)")  # fmt: skip
        base = config.get("basePath") or config.get("base-path") or config.get("data_dir")
        if not isinstance(base, str) or not base.strip():
            raise StorageConfigError(f"{config.path}.basePath: expected a folder path")
        return Path(base).expanduser()

    def __call__(self, config: Any) -> LocalStorage:
        return LocalStorage(self.check(config), config.tenant or "main")


def storage_factory(
    config: Mapping[str, Any] | None,
    data_dir: Path,
    *,
    plugins: Any = None,
    environ: Mapping[str, str] | None = None,
) -> Callable[[str], Storage]:
    """A function from a tenant id to its storage, from the ``storage:`` configuration (Kestra's shape:
    ``type`` and a section named after it, e.g. ``{type: s3, s3: {bucket: ...}}``; ``tenants: {id: {...}}``
    overrides it per tenant). ``None``: ``ROOST_STORAGE``, else local storage under ``data_dir``. The
    configuration is checked here (types known, settings valid); each tenant's storage is built on first use."""
    env = os.environ if environ is None else environ
    if config is None:
        raw = env.get(STORAGE_ENV, "")
        if not raw.strip():
            return lambda tenant: LocalStorage(data_dir / "storage", tenant)
        from roost.credentials.store import load_text_or_file

        config = _unwrap(load_text_or_file(raw, STORAGE_ENV), "storage")
        source = STORAGE_ENV
    else:
        source = "storage"
    from roost.credentials.base import CredentialConfig, CredentialConfigError
    from roost.credentials.store import scoped_sections

    if plugins is None:
        from roost.plugins import get_plugins

        plugins = get_plugins()
    factories = plugins.named("register_storage_backends")
    by_tenant: dict[str | None, tuple[str, dict[str, Any], str]] = {}
    try:
        sections = list(scoped_sections(config, source, what="storage settings", namespaces=False,
                                        error=StorageConfigError))  # fmt: skip
    except CredentialConfigError as exc:
        raise StorageConfigError(str(exc)) from None
    for tenant, _ns, section, path in sections:
        if not section:
            continue
        by_tenant[tenant] = backend_section(section, path, factories, "storage")
    if None not in by_tenant:
        by_tenant[None] = ("local", {}, source)

    def settings(type_name: str, data: dict[str, Any], path: str, tenant: str) -> CredentialConfig:
        if type_name == "local" and not (data.get("basePath") or data.get("base-path")):
            data = {**data, "data_dir": str(data_dir / "storage")}
        return CredentialConfig(type_name, data, type=type_name, path=path, tenant=tenant, environ=environ,
                                secrets=_bootstrap_secrets(), label=f"storage '{type_name}'")  # fmt: skip

    for tenant, (type_name, data, path) in by_tenant.items():  # check every section now, with a probe tenant
        _build(factories[type_name], settings(type_name, data, path, tenant or "main"), path, check_only=True)

    def for_tenant(tenant: str) -> Storage:
        type_name, data, path = by_tenant.get(tenant) or by_tenant[None]
        return _build(factories[type_name], settings(type_name, data, path, tenant), path)

    return for_tenant


def _unwrap(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    inner = config.get(name)
    return inner if isinstance(inner, Mapping) and len(config) == 1 else config


def backend_section(section: Mapping[str, Any], path: str, factories: Mapping[str, Any], what: str,
                     error: type[Exception] = StorageConfigError) -> tuple[str, dict[str, Any], str]:  # fmt: skip
    """(type, its settings, their path) from ``{type: x, x: {...}}``; flat settings next to ``type`` are accepted."""
    known = ", ".join(sorted(factories)) or "none registered"
    type_name = section.get("type")
    if not isinstance(type_name, str) or not type_name.strip():
        raise error(f"{path}.type: required (one of {known})")
    type_name = type_name.strip().lower()
    if type_name not in factories:
        raise error(f"{path}.type: unknown {what} backend {type_name!r} (installed: {known}; "
                    f"a plugin registers it through register_{what}_backends)")  # fmt: skip
    nested = section.get(type_name)
    flat = {k: v for k, v in section.items() if k not in ("type", type_name)}
    if nested is not None and not isinstance(nested, Mapping):
        raise error(f"{path}.{type_name}: expected a mapping of settings")
    if nested is not None and flat:
        raise error(
            f"{path}: put the settings under {type_name}: (found {', '.join(sorted(flat))} beside it)"
        )
    return type_name, dict(nested or flat), f"{path}.{type_name}" if nested is not None else path


def _bootstrap_secrets() -> Any:
    """Backend configurations resolve ``{{ secret('X') }}`` through the environment backend (``SECRET_X``):
    a secret backend cannot depend on itself, nor storage on a backend configured after it."""
    from roost.secret_backends import EnvSecrets

    return EnvSecrets()


def _build(factory: Any, config: Any, path: str, check_only: bool = False) -> Any:
    from roost.credentials.base import CredentialConfigError, CredentialError

    try:
        if check_only:
            _check(factory, config)
            return None
        backend = factory(config)
    except (StorageConfigError, StorageError):
        raise
    except (CredentialConfigError, CredentialError) as exc:
        raise StorageConfigError(str(exc)) from None
    except Exception as exc:
        raise StorageConfigError(f"{path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(backend, Storage):
        raise StorageConfigError(f"{path}: the {config.type!r} backend returned no Storage")
    return backend


def _check(factory: Any, config: Any) -> None:
    """Validate a backend's settings without connecting: the factory's ``check(config)`` when it has one."""
    check = getattr(factory, "check", None)
    if callable(check):
        check(config)


class BodyStream(io.RawIOBase):
    """A readable binary stream over ``read(n)``/``close()`` (an HTTP response body, say), whose errors
    become :class:`StorageUnavailable` with ``describe(exc)`` as the message."""

    def __init__(self, body: Any, describe: Callable[[Exception], str]) -> None:
        self._body = body
        self._describe = describe

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            chunk = self._body.read(len(buffer))
        except Exception as exc:
            raise StorageUnavailable(self._describe(exc)) from None
        n = len(chunk)
        buffer[:n] = chunk
        return n

    def close(self) -> None:
        if not self.closed:
            try:
                self._body.close()
            finally:
                super().close()
