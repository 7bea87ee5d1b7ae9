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
executor       the executor loop and its worker pool (task runs execute here), over the store's queue.
worker         the same as ``executor`` for now: task runs are not yet dispatched to separate workers.
scheduler      Schedule, Flow and polling triggers (``roost.engine.scheduler``); executions it starts
               become messages in the store.
=============  ===========================================================================================

Run only one executor (or standalone/local) per store: executions in flight are
held in that process's memory.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

from roost.server.config import ServerConfig

log = logging.getLogger("roost.server")

COMPONENTS = ("local", "standalone", "webserver", "executor", "worker", "scheduler")


def open_store(db_url: str | None, data_dir: Path) -> Any:
    from roost.store.db import Store

    if db_url:
        if db_url.startswith("postgres://"):
            db_url = "postgresql+psycopg://" + db_url[len("postgres://") :]
        elif db_url.startswith("postgresql://"):
            db_url = "postgresql+psycopg://" + db_url[len("postgresql://") :]
        elif "://" not in db_url:
            db_url = f"sqlite:///{Path(db_url).resolve()}"
        return Store(db_url)
    return Store.sqlite(data_dir)


def build_engine(
    component: str, *, data_dir: Path, db_url: str | None = None, workers: int = 8, credentials: Any = None
) -> Any:
    from roost.engine.engine import Engine
    from roost.engine.queue import InProcessQueue, StoreQueue
    from roost.plugin_defaults import defaults_for

    data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(db_url, data_dir)
    if component == "local":
        queue: Any = InProcessQueue()
    else:
        queue = StoreQueue(store, consume=component in ("standalone", "executor", "worker"))
    return Engine(store, data_dir, queue=queue, workers=workers, credentials=credentials,
                  defaults=lambda _tenant, namespace: defaults_for(namespace))  # fmt: skip


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
          workers: int = 8, ready: Any = None) -> None:  # fmt: skip
    """Run one component until SIGINT/SIGTERM."""
    if component not in COMPONENTS:
        raise ValueError(f"unknown component {component!r}: expected one of {', '.join(COMPONENTS)}")
    config = config or ServerConfig()
    config.apply_limits()
    engine = build_engine(
        component, data_dir=data_dir, db_url=db_url, workers=workers, credentials=config.credentials
    )
    runs_executor = component in ("local", "standalone", "executor", "worker")
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
            if ready is not None:
                ready()
            while not stop.wait(1):
                pass
    finally:
        if scheduler is not None:
            scheduler.stop()
        if runs_executor:
            engine.stop()
        engine.store.close()


def _serve_http(engine: Any, config: ServerConfig, component: str, runs_executor: bool, ready: Any) -> None:
    import uvicorn

    from roost.server.app import create_app
    from roost.server.state import ServerState

    state = ServerState(engine, config, executor_running=runs_executor, component=component)
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
                                           access_log=False, timeout_graceful_shutdown=3, **kw))  # fmt: skip
    if ready is not None:
        orig = server.startup

        async def startup(*a: Any, **k: Any) -> None:
            await orig(*a, **k)
            ready()

        server.startup = startup  # type: ignore[method-assign]
    server.run()
