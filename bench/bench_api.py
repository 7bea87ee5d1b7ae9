"""API benchmark against a real ``roost server local`` process on a free loopback port.

Run alone: ``python bench/bench_api.py [--executions N] [--seconds S] [--rate R]``. One line per figure:

- executions/s through the API for a one-task flow (POST without wait, until every execution ended);
- the same with ``?wait=true`` requests (each answers when its execution ended);
- p50/p99/max end-to-end latency (POST ``?wait=true`` to its answer) at a fixed request rate (100/s by default),
  and how many requests took over 50 ms (a full garbage collection or a WAL checkpoint shows up there);
- p50/p99 of POST (create only) and GET execution at that rate.

The client is a minimal asyncio HTTP/1.1 client with keep-alive connections, so
that measuring costs the 2-core machine as little CPU as possible.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FLOW = """id: bench
namespace: bench.api
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "hello from {{ execution.id }}"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", ctype: str = "application/json"
    ) -> tuple[int, bytes]:
        try:
            return await self._request(method, path, body, ctype)
        except (
            ConnectionError,
            IndexError,
            asyncio.IncompleteReadError,
        ):  # the server closed an idle connection
            self.writer = None
            return await self._request(method, path, body, ctype)

    async def _request(self, method: str, path: str, body: bytes, ctype: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n"
        if body:
            head += f"Content-Type: {ctype}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        assert self.reader is not None
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length, chunked = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
            elif name.lower() == "transfer-encoding" and "chunked" in value:
                chunked = True
        if chunked:
            data = b""
            while True:
                size = int((await self.reader.readline()).strip(), 16)
                if size == 0:
                    await self.reader.readline()
                    break
                data += await self.reader.readexactly(size)
                await self.reader.readline()
            return status, data
        return status, await self.reader.readexactly(length)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def until_all_ended(port: int, timeout: float = 300) -> None:
    conn = Conn("127.0.0.1", port)
    path = "/api/v1/main/executions/search?size=1&filters%5Bstate%5D%5BIN%5D=CREATED,QUEUED,RUNNING"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = await conn.request("GET", path)
        if status == 200 and json.loads(body)["total"] == 0:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("executions did not end")


async def throughput(port: int, n: int, concurrency: int, wait: bool) -> float:
    path = "/api/v1/main/executions/bench.api/bench" + ("?wait=true" if wait else "")
    todo = iter(range(n))
    errors: list[str] = []

    async def client() -> None:
        conn = Conn("127.0.0.1", port)
        for _ in todo:
            status, body = await conn.request("POST", path)
            if status != 200:
                errors.append(body.decode()[:200])

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    if not wait:
        await until_all_ended(port)
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[0]}")
    return n / elapsed


async def fixed_rate(port: int, rate: float, seconds: float, path: str, method: str = "POST") -> list[float]:
    """Open loop: one request every 1/rate s on a pool of connections; returns latencies (s)."""
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(64):
        pool.put_nowait(Conn("127.0.0.1", port))
    latencies: list[float] = []
    failures: list[int] = []

    async def one(scheduled: float) -> None:
        conn = await pool.get()
        try:
            status, _ = await conn.request(method, path)
            if status != 200:
                failures.append(status)
            latencies.append(time.perf_counter() - scheduled)
        finally:
            pool.put_nowait(conn)

    tasks = []
    start = time.perf_counter()
    total = int(rate * seconds)
    for i in range(total):
        at = start + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(at)))
    await asyncio.gather(*tasks)
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed: {failures[:5]}")
    return latencies


async def run(port: int, args: argparse.Namespace) -> list[str]:
    conn = Conn("127.0.0.1", port)
    status, body = await conn.request("POST", "/api/v1/main/flows", FLOW.encode(), "application/x-yaml")
    assert status == 200, body
    await throughput(port, 200, 16, False)  # warm up: caches, connection pools, JIT of the templates
    lines = []
    rate = await throughput(port, args.executions, args.concurrency, False)
    lines.append(
        f"api executions/s (1-task flow, {args.executions} POSTs, {args.concurrency} connections, until all ended): {rate:.0f}"
    )
    rate = await throughput(port, args.executions // 2, args.concurrency, True)
    lines.append(f"api executions/s (POST ?wait=true, {args.concurrency} connections): {rate:.0f}")
    await until_all_ended(port)
    lat = await fixed_rate(port, args.rate, args.seconds, "/api/v1/main/executions/bench.api/bench?wait=true")
    lines.append(
        f"api end-to-end latency p50 at {args.rate:g}/s (POST ?wait=true until SUCCESS): {percentile(lat, 0.5) * 1000:.1f} ms"
    )
    lines.append(
        f"api end-to-end latency p99 at {args.rate:g}/s (POST ?wait=true until SUCCESS): {percentile(lat, 0.99) * 1000:.1f} ms"
    )
    over = sum(1 for x in lat if x > 0.05)
    lines.append(f"api end-to-end latency max at {args.rate:g}/s: {max(lat) * 1000:.1f} ms "
                 f"({over} of {len(lat)} requests over 50 ms)")  # fmt: skip
    await until_all_ended(port)
    lat = await fixed_rate(port, args.rate, args.seconds / 2, "/api/v1/main/executions/bench.api/bench")
    lines.append(f"api create latency p50/p99 at {args.rate:g}/s (POST, no wait): {percentile(lat, 0.5) * 1000:.1f} / "
                 f"{percentile(lat, 0.99) * 1000:.1f} ms")  # fmt: skip
    await until_all_ended(port)
    status, body = await conn.request("GET", "/api/v1/main/executions/search?size=1")
    ex_id = json.loads(body)["results"][0]["id"]
    lat = await fixed_rate(port, args.rate, args.seconds / 2, f"/api/v1/main/executions/{ex_id}", "GET")
    lines.append(f"api GET execution latency p50/p99 at {args.rate:g}/s: {percentile(lat, 0.5) * 1000:.1f} / "
                 f"{percentile(lat, 0.99) * 1000:.1f} ms")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--executions", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--url", help="Benchmark a running server instead of starting one (no auth).")
    args = parser.parse_args()
    if args.url:
        port = int(args.url.rsplit(":", 1)[1].strip("/"))
        for line in asyncio.run(run(port, args)):
            print(line, flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="roost-bench-") as tmp:
        port = free_port()
        env = {**os.environ, "ROOST_LOAD_PLUGINS": os.environ.get("ROOST_LOAD_PLUGINS", "")}
        log = Path(tmp) / "server.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "roost.cli.main", "server", "local", "--port", str(port),
                                     "--data-dir", str(Path(tmp) / "data")], stdout=out, stderr=subprocess.STDOUT, env=env)  # fmt: skip
            try:
                import urllib.request

                deadline = time.monotonic() + 30
                while True:
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                        break
                    except OSError:
                        if time.monotonic() > deadline or proc.poll() is not None:
                            raise SystemExit(f"server did not start:\n{log.read_text()}") from None
                        time.sleep(0.1)
                for line in asyncio.run(run(port, args)):
                    print(line, flush=True)
            finally:
                proc.terminate()
                proc.wait(15)


if __name__ == "__main__":
    main()


__all__: list[Any] = []
