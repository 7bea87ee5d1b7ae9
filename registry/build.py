"""Build the plugin registry: the catalogue of the suite (package, version, types, JSON schemas, docs).

    python registry/build.py          # write registry/index.json and registry/schemas/
    python registry/build.py --check  # fail when the committed catalogue drifted from the plugins

Every plugin under plugins/ must be installed in the running environment.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = ROOT / "registry"


def build() -> dict[str, dict]:
    from roost.flow.schema import type_schema
    from roost.plugins import Plugins

    plugins = Plugins()
    plugins.load_types()
    by_dist = {info.distribution: info for info in plugins.info.values() if info.distribution}
    entries = []
    schemas: dict[str, dict] = {}
    for pyproject in sorted(ROOT.glob("plugins/*/pyproject.toml")):
        meta = tomllib.loads(pyproject.read_text())["project"]
        info = by_dist.get(meta["name"])
        if info is None:
            raise SystemExit(
                f"{meta['name']} is not installed (or failed to load): install every plugin first"
            )
        types = sorted(info.types)
        entries.append(
            {
                "package": meta["name"],
                "version": meta["version"],
                "description": meta.get("description", ""),
                "folder": str(pyproject.parent.relative_to(ROOT)),
                "plugin": info.name,
                "types": types,
            }
        )
        for tid in types:
            cls = plugins.types.get(tid) or plugins.task_runners.get(tid)
            schemas[tid] = {
                "package": meta["name"],
                "description": (cls.__doc__ or "").strip(),
                "schema": type_schema(cls),
            }
    return {"index": {"plugins": entries}, "schemas": schemas}


def suite_drift() -> list[str]:
    """Plugins missing from the root pyproject's `all` extra (pip) or its uv sources (uv, tox)."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extra = " ".join(root["project"]["optional-dependencies"]["all"])
    sources = root["tool"]["uv"]["sources"]
    missing = []
    for pyproject in sorted(ROOT.glob("plugins/*/pyproject.toml")):
        name = tomllib.loads(pyproject.read_text())["project"]["name"]
        folder = pyproject.parent.relative_to(ROOT)
        if f"{name} @ {{root:uri}}/{folder}" not in extra or name not in sources:
            missing.append(name)
    return missing


def main() -> int:
    missing = suite_drift()
    if missing:
        print(
            f"pyproject.toml: add {', '.join(missing)} to the `all` extra and [tool.uv.sources]",
            file=sys.stderr,
        )
        return 1
    built = build()
    index_text = json.dumps(built["index"], indent=2, sort_keys=True) + "\n"
    schema_text = json.dumps(built["schemas"], indent=1, sort_keys=True) + "\n"
    targets = {REGISTRY / "index.json": index_text, REGISTRY / "schemas.json": schema_text}
    if "--check" in sys.argv:
        drift = [
            str(p.relative_to(ROOT)) for p, text in targets.items() if not p.exists() or p.read_text() != text
        ]
        if drift:
            print(
                f"registry drift in {', '.join(drift)}: run python registry/build.py and commit",
                file=sys.stderr,
            )
            return 1
        print("registry is up to date")
        return 0
    for path, text in targets.items():
        path.write_text(text)
    print(f"wrote {len(built['index']['plugins'])} plugins, {len(built['schemas'])} types")
    return 0


if __name__ == "__main__":
    sys.exit(main())
