"""The server components, alone or together, over one store.

=============  ===========================================================================================
component      what runs in the process
=============  ===========================================================================================
local          everything (API, executor with its worker pool, scheduler) on embedded SQLite in a data
               folder; in-process queue. The one-command setup.
standalone     everything, over ``--db-url`` (SQLite file or PostgreSQL); the executor also takes the
               messages other processes leave in the store's ``queue_messages`` table.
webserver      the API only: executions it creates, kills, resumes or restarts become messages in the
               store for the executor process; ``?wait`` and the live views poll the store.
executor       the executor loop over the store's queue, with its worker pool (task runs execute here) or,
               with ``--no-local-workers``, dispatching task runs to ``worker`` processes.
worker         runs task runs claimed from the store's ``worker_jobs`` (``roost.engine.remote``).
scheduler      Schedule, Flow and polling triggers (``roost.engine.scheduler``); executions it starts
               become messages in the store. Of several scheduler processes one is active at a time.
=============  ===========================================================================================

Any number of executor (and standalone) processes may share a store: each works on the executions it
leases (``roost.store.cluster.Leases``) and takes over those of an executor that stopped renewing.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import signal
import threading
from pathlib import Path
from typing import Any

from roost.server.config import ServerConfig

log = logging.getLogger("roost.server")

COMPONENTS = ("local", "standalone", "webserver", "executor", "worker", "scheduler")


def open_store(db_url: str | None, data_dir: Path, *, exclusive: bool = False) -> Any:
    """The store, checked writable (:class:`roost.store.db.StoreError` says why not). ``exclusive``: the
    embedded SQLite of ``local`` is this process's alone (no ``-shm`` file another process could truncate)."""
    from roost.store.db import Store, StoreError

    where = db_url or str(data_dir / "roost.db")
    try:
        if db_url:
            if db_url.startswith("postgres://"):
                db_url = "postgresql+psycopg://" + db_url[len("postgres://") :]
            elif db_url.startswith("postgresql://"):
                db_url = "postgresql+psycopg://" + db_url[len("postgresql://") :]
            elif "://" not in db_url:
                db_url = f"sqlite:///{Path(db_url).resolve()}"
            store = Store(db_url)
        else:
            store = Store.sqlite(data_dir, exclusive=exclusive)
        store.check_writable()
    except Exception as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip()
        if "locked" in reason and not db_url:
            reason += " (another Roost process uses this data folder)"
        if isinstance(exc, ImportError) and "psycopg" in reason:
            reason += ' (PostgreSQL needs the driver: pip install "roost[postgres]")'
        raise StoreError(f"cannot write the store {where}: {reason}") from None
    return store


def check_folder(path: Path) -> None:
    """Create ``path`` and write a file in it, so that an unwritable data folder is reported at start-up."""
    from roost.store.db import StoreError

    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".roost-write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StoreError(f"cannot write the folder {path}: {exc.strerror or exc}") from None


def build_engine(component: str, *, data_dir: Path, db_url: str | None = None, workers: int = 8,
                 credentials: Any = None, tenants: tuple[str, ...] | None = None, storage: Any = None,
                 secrets: Any = None, ignore_executions: set[str] | None = None,
                 ignore_flows: set[str] | None = None, local_workers: bool = True, lease_timeout: float = 30.0,
                 worker_timeout: float = 15.0) -> Any:  # fmt: skip
    """The engine of a component. Executors over a store lease their executions (``lease_timeout``: how
    long a dead executor's executions wait before another takes them over); without ``local_workers``
    task runs go to worker processes, declared dead after ``worker_timeout`` seconds without heartbeat."""
    for folder in (data_dir, data_dir / "storage", data_dir / "work"):
        check_folder(folder)
    store = open_store(db_url, data_dir, exclusive=component == "local")
    try:
        engine = _engine(component, store, data_dir, workers, credentials, tenants, storage, secrets,
                         ignore_executions, ignore_flows, local_workers, lease_timeout, worker_timeout)  # fmt: skip
        check_storage(engine)
        if component != "local":
            check_shared_storage_of(engine)
    except BaseException:
        store.close()
        raise
    return engine


def check_storage(engine: Any) -> None:
    """Stop at start-up when the configured internal storage cannot be written (a missing bucket, wrong
    credentials, an endpoint down), as for the store and the data folder."""
    from roost.store.db import StoreError
    from roost.store.storage import StorageError

    storage = engine.runtime("main").storage
    probe = getattr(storage, "check_writable", None)
    if callable(probe):
        try:
            probe()
        except StorageError as exc:
            raise StoreError(f"cannot write the internal storage {storage}: {exc}") from None


def check_shared_storage_of(engine: Any) -> None:
    """Processes sharing a store must share the internal storage too: a file a worker writes is read by
    the API and by other workers (``roost.store.cluster.check_shared_storage``)."""
    from roost.store.cluster import StorageMismatch, check_shared_storage
    from roost.store.db import StoreError
    from roost.store.storage import StorageNotFound, key_uri, read_all

    storage = engine.runtime("main").storage
    marker = ".roost/storage-id"

    def read() -> str | None:
        try:
            return read_all(storage, key_uri(marker)).decode().strip() or None
        except StorageNotFound:
            return None

    def write(ident: str) -> None:
        storage.put(marker, ident.encode())

    try:
        check_shared_storage(engine.store, read, write, str(storage))
    except StorageMismatch as exc:
        raise StoreError(str(exc)) from None


def _engine(component: str, store: Any, data_dir: Path, workers: int, credentials: Any,
            tenants: tuple[str, ...] | None, storage: Any, secrets: Any,
            ignore_executions: set[str] | None = None, ignore_flows: set[str] | None = None,
            local_workers: bool = True, lease_timeout: float = 30.0, worker_timeout: float = 15.0) -> Any:  # fmt: skip
    from roost.engine.engine import Engine
    from roost.engine.queue import InProcessQueue, StoreQueue
    from roost.plugin_defaults import defaults_dir
    from roost.store.defaults import StoredDefaults

    leases = None
    if component == "local":
        queue: Any = InProcessQueue()
    else:
        if component in ("standalone", "executor"):
            from roost.store.cluster import Leases, process_id

            leases = Leases(store, owner=process_id(), ttl=lease_timeout)
        queue = StoreQueue(store, consume=component in ("standalone", "executor"), leases=leases)
    defaults = StoredDefaults(store)  # versioned in the store; the ROOST_PLUGIN_DEFAULTS folder is imported
    engine = Engine(store, data_dir, queue=queue, workers=workers, credentials=credentials, defaults=defaults,
                    storage=storage, secrets=secrets, ignore_executions=ignore_executions,
                    ignore_flows=ignore_flows, leases=leases, keep_ended=0)  # fmt: skip
    if leases is not None and not local_workers:
        from roost.engine.remote import RemoteTaskQueue

        engine.tasks = RemoteTaskQueue(engine, heartbeat_timeout=worker_timeout)
    defaults.attach(engine, folder=defaults_dir(), tenants=sorted({"main", *(tenants or ())}))
    return engine


class QueryStringMask(logging.Filter):
    """Masks query-string values in a log record (``?token=abc`` → ``?token=***``): request lines of
    uvicorn's access log and of HTTP clients carry tokens and signatures there. Arguments are masked
    one by one, so formatters that read them (uvicorn's access formatter) still work."""

    _QUERY = re.compile(r"([?&][^=&\s\"'#]*)=[^&\s\"'#]*")

    def mask(self, text: str) -> str:
        return self._QUERY.sub(r"\1=***", text) if "?" in text else text

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self.mask(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                a if isinstance(a, int | float) or a is None or "?" not in str(a) else self.mask(str(a))
                for a in record.args
            )
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """The server's log: third-party request logging (httpx, httpcore, urllib3) only from WARNING, and
    query strings masked in every line."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("httpx", "httpcore", "urllib3", "hpack", "botocore", "requests"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, QueryStringMask) for f in handler.filters):
            handler.addFilter(QueryStringMask())


def start_scheduler(engine: Any) -> Any:
    try:
        from roost.engine.scheduler import Scheduler
    except ImportError:
        log.warning("no scheduler in this build (roost.engine.scheduler is missing): triggers will not fire")
        return None
    scheduler = Scheduler(engine)
    scheduler.start()
    return scheduler


def serve(component: str, *, data_dir: Path, db_url: str | None = None, config: ServerConfig | None = None,
          workers: int = 8, ready: Any = None, ignore_executions: set[str] | None = None,
          ignore_flows: set[str] | None = None, local_workers: bool = True, lease_timeout: float = 30.0,
          worker_timeout: float = 15.0, worker_group: str | None = None) -> None:  # fmt: skip
    """Run one component until SIGINT/SIGTERM."""
    if component not in COMPONENTS:
        raise ValueError(f"unknown component {component!r}: expected one of {', '.join(COMPONENTS)}")
    config = config or ServerConfig()
    config.apply_limits()
    engine = build_engine(component, data_dir=data_dir, db_url=db_url, workers=workers,
                          credentials=config.credentials, tenants=config.tenants, storage=config.storage,
                          secrets=config.secret, ignore_executions=ignore_executions,
                          ignore_flows=ignore_flows, local_workers=local_workers, lease_timeout=lease_timeout,
                          worker_timeout=worker_timeout)  # fmt: skip
    if ignore_executions or ignore_flows:
        log.warning("ignoring every message of executions %s and flows %s", sorted(ignore_executions or ()),
                    sorted(ignore_flows or ()))  # fmt: skip
    if component == "worker":
        _serve_worker(engine, workers, worker_group, ready)
        return
    runs_executor = component in ("local", "standalone", "executor")
    runs_scheduler = component in ("local", "standalone", "scheduler")
    runs_api = component in ("local", "standalone", "webserver")
    scheduler = None
    if runs_executor:
        engine.start()
    if runs_scheduler:
        scheduler = start_scheduler(engine)
    try:
        if runs_api:
            _serve_http(engine, config, component, runs_executor, ready)
        else:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_a: stop.set())
            log.info("roost %s running over %s", component, engine.store.url)
            freeze_start_up()
            if ready is not None:
                ready()
            while not stop.wait(1):
                pass
    finally:
        if scheduler is not None:
            scheduler.stop()
        if runs_executor:
            engine.stop()
        else:
            engine.secrets.close()
        engine.store.close()


def freeze_start_up() -> None:
    """Keep what start-up built (modules, models, the app, the store's tables) out of the cyclic
    collector's sight. Otherwise every full collection rescans it all: a pause of every thread that
    made the tail of the API's latency (profiled at 100 requests/s: 0.2 s full collections, p99 of
    ``POST ?wait=true`` 180-220 ms; 30-55 ms once frozen). Garbage is collected first, not frozen."""
    gc.collect()
    gc.freeze()


def _serve_worker(engine: Any, threads: int, group: str | None, ready: Any) -> None:
    from roost.engine.remote import WorkerProcess

    process = WorkerProcess(engine, threads=threads, group=group)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_a: process.stop())
    log.info("roost worker running over %s", engine.store.url)
    if ready is not None:
        threading.Thread(target=lambda: process.started.wait() and ready(), daemon=True).start()
    try:
        process.run()
    finally:
        engine.store.close()


def _serve_http(engine: Any, config: ServerConfig, component: str, runs_executor: bool, ready: Any) -> None:
    import uvicorn

    from roost.server.app import create_app
    from roost.server.state import ServerState

    state = ServerState(engine, config, executor_running=runs_executor, component=component)
    try:  # credentials and roles live in the configuration file: a change between two starts is audited
        from roost.server.audit import record_configuration

        record_configuration(engine.store, config)
    except Exception:
        log.exception("cannot record the configuration's changes in the audit log")
    app = create_app(state)
    kw: dict[str, Any] = {}
    try:
        import httptools  # noqa: F401

        kw["http"] = "httptools"
    except ImportError:
        pass
    try:
        import uvloop  # noqa: F401

        kw["loop"] = "uvloop"
    except ImportError:
        pass
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_level="warning",
                                           access_log=config.access_log, timeout_graceful_shutdown=3, **kw))  # fmt: skip
    access = logging.getLogger("uvicorn.access")  # configured by uvicorn above: at log_level unless asked for
    access.addFilter(QueryStringMask())
    if config.access_log:
        access.setLevel(logging.INFO)
    if ready is not None:
        orig = server.startup

        async def startup(*a: Any, **k: Any) -> None:
            await orig(*a, **k)
            ready()

        server.startup = startup  # type: ignore[method-assign]
    freeze_start_up()
    server.run()
