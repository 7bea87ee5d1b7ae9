"""What an installed user gets: the wheel ships the registry catalogue; the `all` extra names the suite."""

from __future__ import annotations

import json
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_the_registry_catalogue(tmp_path: Path) -> None:
    from hatchling.builders.wheel import WheelBuilder

    wheel = next(iter(WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])))
    with zipfile.ZipFile(wheel) as zf:
        shipped = json.loads(zf.read("roost/registry_index.json"))
        metadata = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert shipped == json.loads((ROOT / "registry" / "index.json").read_text())
    # the suite extra resolves to this checkout's plugin folders
    plugins = sorted(p.parent.name for p in ROOT.glob("plugins/*/pyproject.toml"))
    for name in plugins:
        assert (
            f"roost-plugin-{name} @ file://" in metadata and f"/plugins/{name} ; extra == 'all'" in metadata
        )


def test_every_plugin_is_in_the_all_extra() -> None:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["all"]
    folders = {p.parent.name for p in ROOT.glob("plugins/*/pyproject.toml")}
    assert {entry.rsplit("/", 1)[-1] for entry in extra} == folders
