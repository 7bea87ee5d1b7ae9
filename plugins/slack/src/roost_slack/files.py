"""Files: upload (Slack's v2 flow), info, delete."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field
from roost import AssetBundle, Dynamic, RunContext

from roost_slack.base import File, Output, P, SlackTask, as_text, file, slack_asset


class Uploaded(Output):
    """The file Slack stored."""

    id: str
    """File id (``F...``)."""
    title: str | None = None
    """Title."""
    name: str | None = None
    """File name."""
    permalink: str | None = None
    """Link to the file in Slack."""
    permalink_public: str | None = None
    """Public link, when shared publicly."""
    url_private: str | None = None
    """Download URL (needs the token)."""


class Upload(SlackTask, type=P + "files.Upload"):
    """Upload a file from internal storage and share it (Slack's v2 flow).

    ``files.getUploadURLExternal`` gives an upload URL, the bytes go there, and
    ``files.completeUploadExternal`` shares the file in ``channels`` (in a thread with
    ``timestamp``). Needs the ``files:write`` scope.
    """

    from_: Dynamic[str] = Field(alias="from")
    """Internal-storage URI of the file (``{{ outputs.task.uri }}``, a FILE input...)."""
    channels: Dynamic[list[str]] | None = None
    """Channel ids to share the file in; none keeps it private to the uploader."""
    filename: Dynamic[str]
    """Name of the file in Slack."""
    title: Dynamic[str] | None = None
    """Title of the file."""
    alt_txt: Dynamic[str] | None = None
    """Description of an image for screen readers."""
    snippet_type: Dynamic[str] | None = None
    """Syntax of a text snippet (``python``, ``javascript``...)."""
    timestamp: Dynamic[str] | None = None
    """A message's ``timestamp``: the file is shared as a reply in its thread."""
    initial_comment: Dynamic[str] | None = None
    """Message posted with the file (Roost extension, Slack's ``initial_comment``)."""

    Out: ClassVar[type[Uploaded]] = Uploaded

    def run(self, ctx: RunContext) -> Uploaded:
        data = ctx.read_file(self.from_)
        slack = self.client(ctx)
        method = "files.upload (v2)"
        result = slack.run(method, lambda: slack.web.files_upload_v2(
            file=data, filename=self.filename, title=self.title, alt_txt=self.alt_txt, snippet_type=self.snippet_type,
            channels=list(self.channels) if self.channels else None, thread_ts=self.timestamp,
            initial_comment=self.initial_comment))  # fmt: skip
        files = result.get("files")
        if not isinstance(files, list) or not files:
            raise slack.malformed("files.completeUploadExternal", "no 'files' in the answer")
        up = file(slack, "files.completeUploadExternal", files[0])
        ctx.logger.info("uploaded %s (%d bytes) as file %s", self.filename, len(data), up.id)
        out = Uploaded(id=up.id, title=up.title, name=up.name or self.filename, permalink=up.permalink,
                       permalink_public=up.permalink_public, url_private=up.url_private)  # fmt: skip
        return self.with_workspace(slack, out)

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        if not out:
            return []
        channels = [slack_asset("channel", c, out) for c in self.channels or []]
        return [AssetBundle(outputs=[slack_asset("file", out.id, out, out.name, name=out.name, title=out.title,
                                                 permalink=out.permalink), *channels])]  # fmt: skip


class Info(SlackTask, type=P + "files.Info"):
    """Fetch a file's details (``files.info``)."""

    file_id: Dynamic[str]
    """Id of the file."""

    Out: ClassVar[type[File]] = File

    def run(self, ctx: RunContext) -> File:
        slack = self.client(ctx)
        data = slack.call("files.info", file=self.file_id)
        return self.with_workspace(slack, file(slack, "files.info", data.get("file")))

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return (
            [AssetBundle(inputs=[slack_asset("file", out.id, out, out.name, name=out.name)])] if out else []
        )


class Deleted(Output):
    """The file removed."""

    file_id: str
    """Id of the file."""


class Delete(SlackTask, type=P + "files.Delete"):
    """Delete a file (``files.delete``)."""

    file_id: Dynamic[str]
    """Id of the file."""

    Out: ClassVar[type[Deleted]] = Deleted

    def run(self, ctx: RunContext) -> Deleted:
        slack = self.client(ctx)
        slack.call("files.delete", file=self.file_id)
        ctx.logger.info("deleted file %s", self.file_id)
        return self.with_workspace(slack, Deleted(file_id=as_text(self.file_id) or ""))

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return [AssetBundle(deleted=[slack_asset("file", out.file_id, out)])] if out else []
