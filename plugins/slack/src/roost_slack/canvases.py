"""Canvases: create, edit, delete."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field
from roost import AssetBundle, Dynamic, RunContext

from roost_slack.base import Output, P, SlackTask, slack_asset


class Canvas(Output):
    """A canvas."""

    canvas_id: str
    """Canvas id (``F...``)."""


class Create(SlackTask, type=P + "canvases.Create"):
    """Create a canvas (``canvases.create``); needs the ``canvases:write`` scope.

    ``documentContent`` is ``{type: markdown, markdown: "..."}``; with ``channelId`` (a Roost
    extension, Slack's ``channel_id``) the canvas becomes that channel's tab.
    """

    title: Dynamic[str]
    """Title of the canvas."""
    document_content: Dynamic[dict[str, str]]
    """The content: ``type`` (``markdown``) and ``markdown``."""
    channel_id: Dynamic[str] | None = None
    """Channel whose canvas tab this becomes (Roost extension)."""

    Out: ClassVar[type[Canvas]] = Canvas

    def run(self, ctx: RunContext) -> Canvas:
        slack = self.client(ctx)
        data = slack.call("canvases.create", title=self.title, document_content=dict(self.document_content),
                          channel_id=self.channel_id)  # fmt: skip
        canvas_id = data.get("canvas_id")
        if not isinstance(canvas_id, str):
            raise slack.malformed("canvases.create", "no 'canvas_id' in the answer")
        ctx.logger.info("created canvas %s", canvas_id)
        return self.with_workspace(slack, Canvas(canvas_id=canvas_id))

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        if not out:
            return []
        return [AssetBundle(outputs=[slack_asset("canvas", out.canvas_id, out, self.title, title=self.title,
                                                 channelId=self.channel_id)])]  # fmt: skip


class Edit(SlackTask, type=P + "canvases.Edit"):
    """Change a canvas (``canvases.edit``).

    Each change has an ``operation`` (``insert_after``, ``insert_before``, ``insert_at_start``,
    ``insert_at_end``, ``replace``, ``delete``, ``rename``), a ``document_content`` or
    ``title_content`` (``documentContent``/``titleContent`` are accepted too) and, for section
    operations, a ``section_id`` (``sectionId``).
    """

    canvas_id: Dynamic[str]
    """Id of the canvas."""
    changes: Dynamic[list[dict[str, Any]]] = Field(min_length=1)
    """The changes, applied in order."""

    Out: ClassVar[type[Canvas]] = Canvas

    def run(self, ctx: RunContext) -> Canvas:
        slack = self.client(ctx)
        changes = [_snake(change) for change in self.changes]
        slack.call("canvases.edit", canvas_id=self.canvas_id, changes=changes)
        ctx.logger.info("applied %d change(s) to canvas %s", len(changes), self.canvas_id)
        return self.with_workspace(slack, Canvas(canvas_id=self.canvas_id))

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return [AssetBundle(outputs=[slack_asset("canvas", out.canvas_id, out)])] if out else []


def _snake(change: dict[str, Any]) -> dict[str, Any]:
    """Kestra's camelCase change keys as Slack names them."""
    names = {
        "documentContent": "document_content",
        "titleContent": "title_content",
        "sectionId": "section_id",
    }
    return {names.get(k, k): v for k, v in change.items()}


class Delete(SlackTask, type=P + "canvases.Delete"):
    """Delete a canvas for good (``canvases.delete``)."""

    canvas_id: Dynamic[str]
    """Id of the canvas."""

    Out: ClassVar[type[Canvas]] = Canvas

    def run(self, ctx: RunContext) -> Canvas:
        slack = self.client(ctx)
        slack.call("canvases.delete", canvas_id=self.canvas_id)
        ctx.logger.info("deleted canvas %s", self.canvas_id)
        return self.with_workspace(slack, Canvas(canvas_id=self.canvas_id))

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return [AssetBundle(deleted=[slack_asset("canvas", out.canvas_id, out)])] if out else []
