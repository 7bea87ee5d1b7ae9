"""Asset identity and the bundles tasks emit.

An asset is identified by (namespace, id, type). A task emits
:class:`AssetBundle` objects: each keeps its own inputs and outputs so lineage
edges run only from a bundle's inputs to that bundle's outputs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

AssetEventType = Literal["CREATED", "UPDATED", "DELETED", "USED"]

TABLE = "io.kestra.plugin.ee.assets.Table"
EXTERNAL = "io.kestra.core.models.assets.External"
VM = "io.kestra.plugin.ee.assets.VM"

# Kestra's predefined asset types by their short names: ``assetType: TABLE`` (the seed's Set and
# FreshnessTrigger) and ``assetType: io.kestra.plugin.ee.assets.Table`` (its EventTrigger and the
# plugins' automatic assets) name one type, stored and compared under its class name.
PREDEFINED = {
    "TABLE": TABLE,
    "DATASET": "io.kestra.plugin.ee.assets.Dataset",
    "FILE": "io.kestra.plugin.ee.assets.File",
    "VM": VM,
    "EXTERNAL": EXTERNAL,
}


def canonical_asset_type(value: str) -> str:
    """The class name of a predefined asset type given by its short name (any case); others unchanged."""
    return PREDEFINED.get(value.strip().upper(), value) if isinstance(value, str) else value


def asset_type_spellings(value: str) -> list[str]:
    """Every spelling of one type (to match assets stored before types were canonical)."""
    canonical = canonical_asset_type(value)
    short = [k for k, v in PREDEFINED.items() if v == canonical]
    return [canonical, *short, *(s.capitalize() for s in short), *(s.lower() for s in short)]


class Asset(BaseModel):
    """An asset a task created, changed or used."""

    # defer_build: most runs emit no asset; the schema is built on first use, not at every start-up
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", defer_build=True
    )

    id: str
    type: str = EXTERNAL
    """A predefined type (``TABLE`` or ``io.kestra.plugin.ee.assets.Table``, stored as the latter) or any text."""
    namespace: str | None = None
    """Defaults to the namespace of the flow that emitted it."""
    display_name: str | None = None
    description: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created: datetime | None = None
    updated: datetime | None = None

    @field_validator("type")
    @classmethod
    def _canonical_type(cls, value: str) -> str:
        return canonical_asset_type(value)


class AssetBundle(BaseModel):
    """One emission: what a piece of work read (inputs) and wrote (outputs)."""

    model_config = ConfigDict(defer_build=True)

    inputs: list[Asset] = Field(default_factory=list)
    outputs: list[Asset] = Field(default_factory=list)
    deleted: list[Asset] = Field(default_factory=list)
    """Assets the work removed (a DELETED event each; history and lineage stay)."""
