"""Asset identity and the bundles tasks emit.

An asset is identified by (namespace, id, type). A task emits
:class:`AssetBundle` objects: each keeps its own inputs and outputs so lineage
edges run only from a bundle's inputs to that bundle's outputs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

AssetEventType = Literal["CREATED", "UPDATED", "DELETED", "USED"]

TABLE = "io.kestra.plugin.ee.assets.Table"
EXTERNAL = "io.kestra.core.models.assets.External"
VM = "io.kestra.plugin.ee.assets.VM"


class Asset(BaseModel):
    """An asset a task created, changed or used."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    id: str
    type: str = EXTERNAL
    namespace: str | None = None
    """Defaults to the namespace of the flow that emitted it."""
    display_name: str | None = None
    description: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created: datetime | None = None
    updated: datetime | None = None


class AssetBundle(BaseModel):
    """One emission: what a piece of work read (inputs) and wrote (outputs)."""

    inputs: list[Asset] = Field(default_factory=list)
    outputs: list[Asset] = Field(default_factory=list)
    deleted: list[Asset] = Field(default_factory=list)
    """Assets the work removed (a DELETED event each; history and lineage stay)."""
