"""The worker: runs runnable tasks (threads for blocking I/O; scripts spawn their own processes)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from roost.assets.model import Asset, AssetBundle


def outputs_dict(out: Any) -> dict[str, Any]:
    """A task's return value as the JSON-shaped mapping stored on its task run."""
    if out is None:
        return {}
    if isinstance(out, BaseModel):
        return out.model_dump(by_alias=True, mode="json", exclude_none=True)
    if isinstance(out, dict):
        return out
    raise TypeError(f"a task must return an Output, a dict or None, not {type(out).__name__}")


def collect_assets(task: Any, ctx: Any, out: Any, outputs: dict[str, Any]) -> list[AssetBundle]:
    """Declared assets (rendered with the task's outputs in scope) and, with enableAuto, the plugin's."""
    spec = getattr(task, "assets", None)
    if spec is None:
        return []
    bundles: list[AssetBundle] = []
    if spec.inputs or spec.outputs:
        scope = {"outputs": {**ctx.variables.get("outputs", {}), task.id: outputs}, "output": outputs}

        def declared(refs: list[Any]) -> list[Asset]:
            result = []
            for ref in refs:
                data = ctx.render(ref.model_dump(by_alias=True, exclude_none=True), **scope)
                result.append(Asset.model_validate(data))
            return result

        bundles.append(AssetBundle(inputs=declared(spec.inputs), outputs=declared(spec.outputs)))
    if spec.enable_auto:
        auto = list(task.auto_assets(ctx, out) or [])
        plugins = getattr(getattr(ctx, "runtime", None), "plugins", None)
        if plugins is not None:
            auto.extend(plugins.task_assets(task, ctx, out))
        bundles.extend(b if isinstance(b, AssetBundle) else AssetBundle.model_validate(b) for b in auto)
    return bundles
