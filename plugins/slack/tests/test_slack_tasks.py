"""Every task against the fake Slack Web API, through slack_sdk over real HTTP."""

from __future__ import annotations

import json

import pytest
from fake_slack import BOT_TOKEN
from roost.testing import run_task
from roost_slack import canvases, chats, conversations, files, reactions, users
from slack_support import assert_no_secret

AUTO = {"assets": {"enableAuto": True}}


def stored(result) -> list[dict]:
    path = result.context.open_file(result.outputs["uri"])
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- messages ---------------------------------------------------------------------------------------
def test_post_text_converts_markdown_and_returns_the_timestamp(fake, creds):
    result = run_task(
        chats.Post,
        channel=fake.general,
        messageText="**Deploy** done, see [logs](https://x.example)",
        **creds,
    )
    ts = result.outputs["timestamp"]
    assert result.outputs["channel"] == fake.general
    msg = fake.messages[fake.general][-1]
    assert msg["ts"] == ts and msg["text"] == "*Deploy* done, see <https://x.example|logs>"
    assert fake.requests[-1].headers["Authorization"] == f"Bearer {BOT_TOKEN}"
    assert_no_secret(result)


def test_post_blocks_in_a_thread_with_channel_name(fake, creds):
    parent = fake.add_message(fake.general, "parent")
    payload = {
        "text": "fallback",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}],
    }
    result = run_task(chats.Post, channel="#general", timestamp=parent["ts"], payload=json.dumps(payload),
                      iconEmoji=":robot_face:", **creds)  # fmt: skip
    reply = fake.messages[fake.general][-1]
    assert reply["thread_ts"] == parent["ts"] and reply["blocks"] == payload["blocks"]
    assert reply["icon_emoji"] == ":robot_face:" and parent["reply_count"] == 1
    assert result.outputs["channel"] == fake.general


def test_payload_keys_win_and_message_text_may_be_json(fake, creds):
    other = fake.add_channel("ops")
    run_task(
        chats.Post,
        channel=fake.general,
        messageText=json.dumps({"channel": other, "text": "from json"}),
        **creds,
    )
    assert fake.messages[other][-1]["text"] == "from json"
    run_task(chats.Post, channel=fake.general, payload={"text": "a map payload"}, **creds)
    assert fake.messages[fake.general][-1]["text"] == "a map payload"


def test_post_needs_content_and_valid_payload(fake, creds):
    assert (
        "set messageText or payload"
        in run_task(chats.Post, channel=fake.general, raise_on_failure=False, **creds).error
    )
    bad = run_task(chats.Post, channel=fake.general, payload="{not json", raise_on_failure=False, **creds)
    assert "payload is not valid JSON" in bad.error
    blocks = run_task(
        chats.Post,
        channel=fake.general,
        payload='{"blocks": [{"no": "type"}]}',
        raise_on_failure=False,
        **creds,
    )
    assert blocks.error.startswith("Slack API chat.postMessage failed: invalid_blocks")


def test_update_and_delete(fake, creds):
    ts = run_task(chats.Post, channel=fake.general, messageText="v1", **creds).outputs["timestamp"]
    up = run_task(chats.Update, channel=fake.general, timestamp=ts, messageText="v2", **creds)
    assert up.outputs["timestamp"] == ts and fake.messages[fake.general][-1]["text"] == "v2"
    assert "edited" in fake.messages[fake.general][-1]
    run_task(chats.Delete, channel=fake.general, timestamp=ts, **creds)
    assert all(m["ts"] != ts for m in fake.messages[fake.general])
    gone = run_task(chats.Delete, channel=fake.general, timestamp=ts, raise_on_failure=False, **creds)
    assert gone.error.startswith("Slack API chat.delete failed: message_not_found")


def test_post_emits_the_channel_with_its_workspace(fake, creds):
    result = run_task(chats.Post, channel=fake.general, messageText="hi", **AUTO, **creds)
    (bundle,) = result.assets
    (asset,) = bundle.outputs
    assert asset.id == f"slack:channel:{fake.team_id}:{fake.general}"
    assert asset.metadata["teamId"] == fake.team_id and asset.metadata["team"] == fake.team
    assert asset.metadata["workspaceUrl"] == "https://roost-testing.slack.com/"


# -- channels ---------------------------------------------------------------------------------------
def test_create_archive_unarchive_channel(fake, creds):
    created = run_task(conversations.Create, name="incident-42", isPrivate=True, **AUTO, **creds)
    out = created.outputs
    assert out["name"] == "incident-42" and out["isPrivate"] is True and out["id"].startswith("G")
    (asset,) = created.assets[0].outputs
    assert asset.id == f"slack:channel:{fake.team_id}:{out['id']}" and asset.metadata["name"] == "incident-42"
    taken = run_task(conversations.Create, name="incident-42", raise_on_failure=False, **creds)
    assert (
        taken.error
        == "Slack API conversations.create failed: name_taken (a channel with this name already exists)"
    )
    archived = run_task(conversations.Archive, channel=out["id"], **AUTO, **creds)
    assert fake.channels[out["id"]]["is_archived"] is True
    assert archived.assets[0].outputs[0].metadata["isArchived"] is True
    blocked = run_task(chats.Post, channel=out["id"], messageText="x", raise_on_failure=False, **creds)
    assert "is_archived" in blocked.error
    run_task(conversations.Unarchive, channel=out["id"], **creds)
    assert fake.channels[out["id"]]["is_archived"] is False


def test_list_follows_every_page(fake, creds):
    for i in range(450):
        fake.add_channel(f"c-{i:03d}")
    fake.add_channel("secret", private=True)
    result = run_task(conversations.List, **creds)
    assert result.outputs["size"] == 451  # general + 450 public; the private one is not asked for
    rows = stored(result)
    assert len({r["id"] for r in rows}) == 451 and rows[0]["name"] == "general"
    calls = [r.body.decode() for r in fake.requests if r.path.endswith("conversations.list")]
    assert len(calls) == 3 and "cursor" not in calls[0] and all("cursor=" in c for c in calls[1:])
    both = run_task(
        conversations.List, types=["public_channel", "private_channel"], excludeArchived=True, **creds
    )
    assert both.outputs["size"] == 452


def test_invite_kick_members_info(fake, creds):
    ada, grace = fake.user_id("ada"), fake.user_id("grace")
    out = run_task(conversations.Invite, channel=fake.general, users=[ada, grace], **creds).outputs
    assert out["id"] == fake.general and fake.members[fake.general][-2:] == [ada, grace]
    again = run_task(conversations.Invite, channel=fake.general, users=[ada], raise_on_failure=False, **creds)
    assert "already_in_channel" in again.error
    run_task(conversations.Kick, channel=fake.general, user=grace, **creds)
    members = run_task(conversations.Members, channel=fake.general, **creds)
    assert [r["memberId"] for r in stored(members)] == [fake.bot_user, ada]
    info = run_task(conversations.Info, channel=fake.general, **creds).outputs
    assert info["isGeneral"] is True and info["topic"]["value"] == ""


def test_history_rows_use_kestras_names(fake, creds):
    for i in range(5):
        fake.add_message(fake.general, f"m{i}")
    result = run_task(conversations.History, channel=fake.general, limit=2, **creds)
    rows = stored(result)
    assert result.outputs["size"] == 5 and [r["text"] for r in rows] == ["m4", "m3", "m2", "m1", "m0"]
    assert set(rows[0]) >= {"timestamp", "text", "user", "type"}


def test_join_leave_rename_topic_purpose(fake, creds):
    lobby = fake.add_channel("lobby", bot_member=False)
    post = run_task(chats.Post, channel=lobby, messageText="x", raise_on_failure=False, **creds)
    assert post.error.startswith("Slack API chat.postMessage failed: not_in_channel (the app is not a member")
    assert run_task(conversations.Join, channel=lobby, **creds).outputs["id"] == lobby
    assert run_task(conversations.Rename, channel=lobby, name="hall", **creds).outputs["name"] == "hall"
    topic = run_task(conversations.SetTopic, channel=lobby, topic="Today: deploys", **creds).outputs
    assert topic["value"] == "Today: deploys" and topic["creator"] == fake.bot_user
    purpose = run_task(conversations.SetPurpose, channel=lobby, purpose="Release talk", **creds).outputs
    assert purpose["value"] == "Release talk" and fake.channels[lobby]["purpose"]["value"] == "Release talk"
    run_task(conversations.Leave, channel=lobby, **creds)
    assert fake.bot_user not in fake.members[lobby]


# -- canvases -------------------------------------------------------------------------------------
def test_canvas_lifecycle_and_assets(fake, creds):
    created = run_task(canvases.Create, title="Runbook", documentContent={"type": "markdown", "markdown": "# Steps"},
                       **AUTO, **creds)  # fmt: skip
    canvas_id = created.outputs["canvasId"]
    assert fake.canvases[canvas_id]["markdown"] == "# Steps"
    assert created.assets[0].outputs[0].id == f"slack:canvas:{fake.team_id}:{canvas_id}"
    changes = [
        {"operation": "insert_at_end", "documentContent": {"type": "markdown", "markdown": "\n1. restart"}},
        {"operation": "rename", "title_content": {"type": "markdown", "markdown": "Runbook v2"}},
    ]
    run_task(canvases.Edit, canvasId=canvas_id, changes=changes, **creds)
    assert fake.canvases[canvas_id] == {
        "title": "Runbook v2",
        "markdown": "# Steps\n1. restart",
        "channel_id": None,
    }
    deleted = run_task(canvases.Delete, canvasId=canvas_id, **AUTO, **creds)
    assert canvas_id not in fake.canvases and deleted.assets[0].deleted[0].metadata["canvasId"] == canvas_id
    missing = run_task(canvases.Edit, canvasId=canvas_id, changes=changes, raise_on_failure=False, **creds)
    assert missing.error.startswith("Slack API canvases.edit failed: canvas_not_found")


# -- files ----------------------------------------------------------------------------------------
def test_upload_v2_flow_shares_in_channel_and_thread(fake, creds, tmp_path):
    parent = fake.add_message(fake.general, "report below")
    data = bytes(range(256)) * 40

    def upload(**props):
        from roost.engine.context import Runtime

        runtime = Runtime.in_memory(tmp_path)
        uri = runtime.storage.put("company/team/test/executions/test/report.bin", data)
        return run_task(files.Upload, runtime=runtime, **{"from": uri}, **props)

    result = upload(filename="report.bin", title="Report", channels=[fake.general], timestamp=parent["ts"],
                    initialComment="here", **AUTO, **creds)  # fmt: skip
    fid = result.outputs["id"]
    stored_file = fake.files[fid]
    assert stored_file["data"] == data and stored_file["channels"] == [fake.general]
    assert stored_file["thread_ts"] == parent["ts"] and stored_file["initial_comment"] == "here"
    assert result.outputs["title"] == "Report" and result.outputs["permalink"].endswith("/report.bin")
    paths = [r.path for r in fake.requests]
    assert paths[-4:-1] == [
        "/api/files.getUploadURLExternal",
        f"/upload/v1/{fid}",
        "/api/files.completeUploadExternal",
    ]
    ids = {a.id for a in result.assets[0].outputs}
    assert ids == {f"slack:file:{fake.team_id}:{fid}", f"slack:channel:{fake.team_id}:{fake.general}"}
    info = run_task(files.Info, fileId=fid, **creds).outputs
    assert info["size"] == len(data) and info["channels"] == [fake.general]
    run_task(files.Delete, fileId=fid, **creds)
    assert fid not in fake.files


def test_upload_to_a_channel_the_app_is_not_in(fake, creds, tmp_path):
    from roost.engine.context import Runtime

    lobby = fake.add_channel("lobby", bot_member=False)
    runtime = Runtime.in_memory(tmp_path)
    uri = runtime.storage.put("company/team/test/executions/test/a.txt", b"abc")
    result = run_task(files.Upload, runtime=runtime, filename="a.txt", channels=[lobby], raise_on_failure=False,
                      **{"from": uri}, **creds)  # fmt: skip
    assert result.state == "FAILED" and result.error.startswith(
        "Slack API files.completeUploadExternal failed: not_in_channel"
    )


def test_upload_refused_by_the_upload_url(fake, creds, tmp_path):
    from roost.engine.context import Runtime

    runtime = Runtime.in_memory(tmp_path)
    uri = runtime.storage.put("company/team/test/executions/test/a.txt", b"abc")
    fake.inject(500, "upload backend down", path=r"^/upload/v1/", content_type="text/plain")
    result = run_task(
        files.Upload, runtime=runtime, filename="a.txt", raise_on_failure=False, **{"from": uri}, **creds
    )
    assert "refused the upload" in result.error and "HTTP 500" in result.error
    assert_no_secret(result)


# -- reactions and users --------------------------------------------------------------------------
def test_reactions_add_get_remove(fake, creds):
    ts = fake.add_message(fake.general, "ship it")["ts"]
    run_task(reactions.Add, channel=fake.general, timestamp=ts, name=":rocket:", **creds)
    dup = run_task(
        reactions.Add, channel=fake.general, timestamp=ts, name="rocket", raise_on_failure=False, **creds
    )
    assert dup.error.startswith("Slack API reactions.add failed: already_reacted")
    got = run_task(reactions.Get, channel=fake.general, timestamp=ts, **creds)
    assert stored(got) == [{"name": "rocket", "count": 1, "users": [fake.bot_user], "url": None}]
    run_task(reactions.Remove, channel=fake.general, timestamp=ts, name="rocket", **creds)
    assert fake.messages[fake.general][-1]["reactions"] == []


def test_reactions_get_needs_an_item():
    with pytest.raises(Exception, match="set channel and timestamp"):
        reactions.Get.model_validate(
            {"id": "r", "type": reactions.Get.type_id, "token": "x", "channel": "C1"}
        )


def test_users_lookup_and_info(fake, creds):
    found = run_task(users.LookupByEmail, email=" Ada@Example.com ", **creds).outputs
    assert found["name"] == "ada" and found["profile"]["email"] == "ada@example.com"
    assert found["teamId"] == fake.team_id and found["profile"]["realName"] == "Ada Lovelace"
    info = run_task(users.Info, user=found["id"], **creds).outputs
    assert info["realName"] == "Ada Lovelace" and info["tz"] == "Europe/London"
    nobody = run_task(users.LookupByEmail, email="nobody@example.com", raise_on_failure=False, **creds)
    assert (
        nobody.error
        == "Slack API users.lookupByEmail failed: users_not_found (no user has this e-mail address or id)"
    )
