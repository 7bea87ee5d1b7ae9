"""Reading dbt's artifacts: ``run_results.json`` into outputs, ``manifest.json`` into table assets.

Pure functions over the parsed JSON, so they are tested without running dbt.

Asset conventions follow Kestra's dbt plugin: every table dbt builds (models,
seeds, snapshots) is an ``io.kestra.plugin.ee.assets.Table`` whose id is
``<database>.<schema>.<alias>``; each one is emitted in its own bundle whose
inputs are its parents from the manifest's ``parent_map`` (or the node's
``depends_on.nodes``): other models, seeds, snapshots and sources. Ephemeral
models have no table: lineage passes through them to their own parents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ConfigDict, Field
from roost import Asset, AssetBundle, Output

TABLE = "io.kestra.plugin.ee.assets.Table"
PRODUCED = frozenset({"model", "seed", "snapshot"})

# dbt node statuses, grouped as Kestra's dbt plugin groups them.
SUCCESS = frozenset({"success", "pass", "run"})
FAILED = frozenset({"error", "fail", "runtime_error"})
WARNED = frozenset({"warn", "partial success"})
SKIPPED = frozenset({"skipped", "no-op"})


class ArtifactError(ValueError):
    """An artifact exists but cannot be understood."""


# -- run_results.json -----------------------------------------------------------------------------


class DocumentedOutput(Output):
    """Outputs whose attribute docstrings become their schema descriptions."""

    model_config = ConfigDict(use_attribute_docstrings=True)


class NodeResult(DocumentedOutput):
    """The result of one dbt node (model, seed, snapshot, test...) in ``run_results.json``."""

    unique_id: str
    """dbt unique id of the node, such as ``model.shop.orders``."""
    resource_type: str | None = None
    """Kind of node (``model``, ``seed``, ``snapshot``, ``test``, ``unit_test``, ``operation``...)."""
    status: str
    """dbt status: ``success``, ``error``, ``skipped``, ``pass``, ``fail``, ``warn``..."""
    execution_time: float | None = None
    """Seconds dbt spent on the node."""
    message: str | None = None
    """dbt's message for the node (``OK``, ``INSERT 3``, the database error...)."""
    failures: int | None = None
    """Failing rows of a test."""
    adapter_response: dict[str, Any] = Field(default_factory=dict)
    """What the database answered (``rows_affected``, ``_message``, ``code``...)."""
    relation_name: str | None = None
    """The relation the node built or read, as dbt quotes it."""

    @property
    def failed(self) -> bool:
        return self.status in FAILED

    @property
    def warned(self) -> bool:
        return self.status in WARNED

    @property
    def is_test(self) -> bool:
        return self.unique_id.startswith(("test.", "unit_test."))

    @property
    def is_hook(self) -> bool:
        return self.unique_id.startswith("operation.")


class SlowNode(DocumentedOutput):
    """One of the slowest nodes of a run."""

    unique_id: str
    """dbt unique id of the node."""
    execution_time: float
    """Seconds dbt spent on the node."""


class RunSummary(DocumentedOutput):
    """Counts of the non-test nodes (models, seeds, snapshots...) of the last dbt invocation."""

    total: int = 0
    """Non-test nodes executed."""
    success: int = 0
    """Nodes that succeeded."""
    error: int = 0
    """Nodes that errored."""
    warn: int = 0
    """Nodes that finished with a warning."""
    skipped: int = 0
    """Nodes that were skipped."""
    elapsed_time: float | None = None
    """Duration of the dbt invocation, in seconds, as dbt reports it."""
    command: str | None = None
    """The dbt command that wrote the results (``build``, ``run``, ``test``...)."""
    slowest: list[SlowNode] = Field(default_factory=list)
    """Up to three slowest nodes, slowest first."""


class TestSummary(DocumentedOutput):
    """Counts of the data and unit tests of the last dbt invocation."""

    __test__ = False  # not a pytest class

    total: int = 0
    """Tests executed."""
    passed: int = Field(0, alias="pass")
    """Tests that passed."""
    fail: int = 0
    """Tests that failed."""
    warn: int = 0
    """Tests that finished with a warning."""
    error: int = 0
    """Tests that errored before they could evaluate."""
    skipped: int = 0
    """Tests that were skipped."""


@dataclass
class RunResults:
    """``run_results.json`` made typed."""

    nodes: list[NodeResult]
    elapsed_time: float | None
    command: str | None

    @property
    def failed(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.failed]

    def summary(self) -> RunSummary:
        nodes = [n for n in self.nodes if not n.is_test and not n.is_hook]
        slow = sorted(
            (n for n in nodes if n.execution_time is not None), key=lambda n: -(n.execution_time or 0)
        )
        return RunSummary(
            total=len(nodes),
            success=sum(n.status in SUCCESS for n in nodes),
            error=sum(n.status in FAILED for n in nodes),
            warn=sum(n.status in WARNED for n in nodes),
            skipped=sum(n.status in SKIPPED for n in nodes),
            elapsed_time=self.elapsed_time,
            command=self.command,
            slowest=[
                SlowNode(unique_id=n.unique_id, execution_time=n.execution_time or 0.0) for n in slow[:3]
            ],
        )

    def test_summary(self) -> TestSummary:
        tests = [n for n in self.nodes if n.is_test]
        return TestSummary(
            total=len(tests),
            passed=sum(n.status in ("pass", "success") for n in tests),
            fail=sum(n.status == "fail" for n in tests),
            warn=sum(n.status == "warn" for n in tests),
            error=sum(n.status in ("error", "runtime_error") for n in tests),
            skipped=sum(n.status in SKIPPED for n in tests),
        )


def parse_run_results(data: Any) -> RunResults:
    """Type the content of ``run_results.json``; raises :class:`ArtifactError` when it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ArtifactError("not a dbt run_results.json: no 'results' list")
    nodes = []
    for raw in data["results"]:
        if not isinstance(raw, dict) or not raw.get("unique_id"):
            continue
        uid = str(raw["unique_id"])
        adapter = raw.get("adapter_response")
        failures = raw.get("failures")
        nodes.append(
            NodeResult(
                unique_id=uid,
                resource_type=uid.split(".", 1)[0] if "." in uid else None,
                status=str(raw.get("status") or "unknown").lower(),
                execution_time=_float(raw.get("execution_time")),
                message=raw.get("message") if isinstance(raw.get("message"), str) else None,
                failures=int(failures) if isinstance(failures, int | float) else None,
                adapter_response=adapter if isinstance(adapter, dict) else {},
                relation_name=raw.get("relation_name") if isinstance(raw.get("relation_name"), str) else None,
            )
        )
    args = data.get("args") if isinstance(data.get("args"), dict) else {}
    command = args.get("which")
    return RunResults(nodes, _float(data.get("elapsed_time")), str(command) if command else None)


def result_line(node: NodeResult) -> str:
    """The log line of one node: ``model.shop.orders => success in 0.12s: OK``."""
    line = f"{node.unique_id} => {node.status}"
    if node.execution_time is not None:
        line += f" in {node.execution_time:.2f}s"
    if node.failures:
        line += f" ({node.failures} failure{'s' if node.failures != 1 else ''})"
    if node.message and node.message.strip():
        line += f": {node.message.strip()}"
    return line


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# -- manifest.json --------------------------------------------------------------------------------


@dataclass
class TableNode:
    """A node of the manifest that is (or reads) a table."""

    unique_id: str
    asset: Asset
    parents: list[str] = field(default_factory=list)
    produced: bool = True
    ephemeral: bool = False


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _asset_id(database: str | None, schema: str | None, name: str | None, fallback: str) -> str:
    parts = [p for p in (database, schema, name) if p]
    return ".".join(parts) if parts else fallback


def _meta(*sources: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for src in sources:
        if isinstance(src, dict):
            merged.update(src)
    return merged


def table_nodes(manifest: Any) -> dict[str, TableNode]:
    """Every model, seed, snapshot and source of a manifest, keyed by unique id."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("nodes"), dict):
        raise ArtifactError("not a dbt manifest.json: no 'nodes' mapping")
    metadata = manifest.get("metadata") if isinstance(manifest.get("metadata"), dict) else {}
    system = _text(metadata.get("adapter_type"))
    parent_map = manifest.get("parent_map") if isinstance(manifest.get("parent_map"), dict) else {}
    found: dict[str, TableNode] = {}

    for key, node in manifest["nodes"].items():
        if not isinstance(node, dict):
            continue
        kind = str(node.get("resource_type") or "").lower()
        if kind not in PRODUCED:
            continue
        uid = _text(node.get("unique_id")) or str(key)
        config = node.get("config") if isinstance(node.get("config"), dict) else {}
        database, schema = _text(node.get("database")), _text(node.get("schema"))
        name = _text(node.get("alias")) or _text(node.get("name")) or uid
        materialization = _text(config.get("materialized"))
        parents = parent_map.get(uid)
        if not isinstance(parents, list):
            depends = node.get("depends_on") if isinstance(node.get("depends_on"), dict) else {}
            parents = depends.get("nodes") if isinstance(depends.get("nodes"), list) else []
        meta = _meta(node.get("meta"), config.get("meta"))
        core = {
            "system": system,
            "database": database,
            "schema": schema,
            "name": name,
            "resource_type": kind,
            "materialization": materialization,
            "unique_id": uid,
            "package_name": _text(node.get("package_name")),
        }
        tags = [t for t in (node.get("tags") or []) if isinstance(t, str)]
        if tags:
            core["tags"] = tags
        asset = Asset(
            id=_asset_id(database, schema, name, uid),
            type=TABLE,
            display_name=_text(node.get("name")) or name,
            description=_text(node.get("description")),
            metadata={**meta, **{k: v for k, v in core.items() if v is not None}},
        )
        found[uid] = TableNode(
            uid, asset, [str(p) for p in parents], produced=True, ephemeral=materialization == "ephemeral"
        )

    sources = manifest.get("sources") if isinstance(manifest.get("sources"), dict) else {}
    for key, src in sources.items():
        if not isinstance(src, dict):
            continue
        uid = _text(src.get("unique_id")) or str(key)
        config = src.get("config") if isinstance(src.get("config"), dict) else {}
        database, schema = _text(src.get("database")), _text(src.get("schema"))
        name = _text(src.get("identifier")) or _text(src.get("name")) or uid
        meta = _meta(src.get("source_meta"), src.get("meta"), config.get("meta"))
        core = {
            "system": system,
            "database": database,
            "schema": schema,
            "name": name,
            "resource_type": "source",
            "source_name": _text(src.get("source_name")),
            "unique_id": uid,
            "package_name": _text(src.get("package_name")),
        }
        asset = Asset(
            id=_asset_id(database, schema, name, uid),
            type=TABLE,
            display_name=f"{src.get('source_name')}.{src.get('name')}" if src.get("source_name") else name,
            description=_text(src.get("description")),
            metadata={**meta, **{k: v for k, v in core.items() if v is not None}},
        )
        found[uid] = TableNode(uid, asset, [], produced=False)
    return found


def _inputs(uid: str, nodes: dict[str, TableNode], seen: set[str]) -> list[str]:
    """Parents of ``uid`` that are tables, looking through ephemeral models."""
    out: list[str] = []
    for parent in nodes[uid].parents:
        if parent in seen or parent not in nodes:
            continue
        seen.add(parent)
        if nodes[parent].ephemeral:
            out.extend(_inputs(parent, nodes, seen))
        else:
            out.append(parent)
    return out


def asset_bundles(manifest: Any) -> list[AssetBundle]:
    """One bundle per table dbt builds: its parents (models, seeds, snapshots, sources) as inputs."""
    nodes = table_nodes(manifest)
    bundles = []
    for uid in sorted(nodes):
        node = nodes[uid]
        if not node.produced or node.ephemeral:
            continue
        parents = _inputs(uid, nodes, {uid})
        bundles.append(
            AssetBundle(
                inputs=[nodes[p].asset.model_copy(deep=True) for p in parents],
                outputs=[node.asset.model_copy(deep=True)],
            )
        )
    return bundles
