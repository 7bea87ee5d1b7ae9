"""The polling trigger on the real scheduler: what fires, once, across restarts of engine and store."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from roost.engine.engine import Engine
from roost.engine.scheduler import Scheduler, TriggerContext
from roost.store.db import Store
from trello_support import SECRETS

NS = "company.team"


def flow(board_id: str | None = None, lists: list[str] | None = None, interval: str = "PT5M") -> str:
    watch = f"    boardId: {board_id}\n" if board_id else ""
    if lists:
        watch += "    lists:\n" + "".join(f"      - {lst}\n" for lst in lists)
    return f"""id: cards
namespace: {NS}
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.count }}}} card(s), first {{{{ trigger.cards[0].cardName }}}} ({{{{ trigger.cards[0].action }}}})"
triggers:
  - id: watch
    type: io.kestra.plugin.trello.cards.Trigger
    apiKey: "{{{{ secret('TRELLO_API_KEY') }}}}"
    apiToken: "{{{{ secret('TRELLO_API_TOKEN') }}}}"
    apiBaseUrl: "{{{{ secret('TRELLO_URL') }}}}"
    interval: {interval}
{watch}"""


@pytest.fixture(autouse=True)
def trello_url(monkeypatch, trello):
    import base64

    monkeypatch.setenv("SECRET_TRELLO_URL", base64.b64encode(trello.url.encode()).decode())


def _open(home: Path) -> Engine:
    return Engine(Store.sqlite(home), home, workers=2)


@pytest.fixture
def engine(tmp_path):
    eng = _open(tmp_path / "home")
    yield eng
    eng.stop()
    eng.store.close()


def fired(engine: Engine) -> list[dict]:
    found, _ = engine.store.search_executions("main", namespace=NS, flow_id="cards", prefix=False, size=1000)
    return sorted((e["trigger"]["variables"] for e in found), key=lambda v: v["cards"][0]["lastActivity"])


def test_fires_for_new_and_updated_cards_once_each(trello, board, engine):
    old = trello.add_card(board.todo, "Old card", created=time.time() - 3600)
    fresh = trello.add_card(board.todo, "Fresh card")
    engine.deploy(flow(board_id=board.board["id"]))
    sched = Scheduler(engine)
    t0 = time.time()
    sched.tick(now=t0)  # first check: the cards active during the last interval (5 min)
    [first] = fired(engine)
    assert first["count"] == 1
    [card] = first["cards"]
    assert card == {
        "cardId": fresh["id"],
        "cardName": "Fresh card",
        "cardUrl": fresh["shortUrl"],
        "cardDescription": "",
        "lastActivity": fresh["dateLastActivity"],
        "action": "created",
        "listId": board.todo["id"],
        "boardId": board.board["id"],
    }
    sched.tick(now=t0 + 1)  # not due yet
    sched.tick(now=t0 + 301)  # due, nothing changed
    assert len(fired(engine)) == 1

    trello.touch(old["id"], name="Old card, renamed")
    new = trello.add_card(board.done, "Brand new")
    sched.tick(now=t0 + 602)
    second = fired(engine)[1]
    assert second["count"] == 2
    assert [(c["cardName"], c["action"]) for c in second["cards"]] == [
        ("Old card, renamed", "updated"),
        ("Brand new", "created"),
    ]
    assert second["cards"][1]["cardId"] == new["id"] and second["cards"][1]["listId"] == board.done["id"]
    sched.tick(now=t0 + 903)
    assert len(fired(engine)) == 2
    state = engine.store.get_trigger("main", NS, "cards", "watch")
    assert set(state["state"]["cards"]) == {old["id"], fresh["id"], new["id"]}
    assert not state.get("pending")


def test_lists_are_watched_and_archived_cards_forgotten(trello, board, engine):
    a = trello.add_card(board.todo, "In to-do", created=time.time() - 3600)
    trello.add_card(board.done, "In done", created=time.time() - 3600)
    engine.deploy(flow(lists=[board.todo["id"]]))
    sched = Scheduler(engine)
    t0 = time.time()
    sched.tick(now=t0)
    assert fired(engine) == []  # nothing active lately
    trello.touch(a["id"], desc="more")
    trello.touch(
        next(c for c in trello.cards.values() if c["name"] == "In done")["id"], desc="unwatched list"
    )
    sched.tick(now=t0 + 301)
    [only] = fired(engine)
    assert [c["cardName"] for c in only["cards"]] == ["In to-do"] and only["cards"][0]["action"] == "updated"
    trello.touch(a["id"], closed=True)  # archived: it leaves the list
    sched.tick(now=t0 + 602)
    assert len(fired(engine)) == 1
    assert a["id"] not in engine.store.get_trigger("main", NS, "cards", "watch")["state"]["cards"]


def test_no_double_fire_across_restarts(trello, board, tmp_path):
    """Real scheduler threads; the engine and its SQLite store are closed and reopened twice."""
    home = tmp_path / "home"
    running: list[tuple[Engine, Scheduler]] = []

    def up() -> Engine:
        eng = _open(home)
        eng.start()
        running.append((eng, Scheduler(eng, refresh=0.05).start()))
        return eng

    def down() -> None:
        eng, sched = running.pop()
        sched.stop()
        eng.stop()
        eng.store.close()

    def wait_for(eng: Engine, count: int) -> None:
        deadline = time.monotonic() + 15
        while len(fired(eng)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(fired(eng)) == count

    eng = _open(home)
    eng.deploy(flow(board_id=board.board["id"], interval="PT0.2S"))
    eng.store.close()
    try:
        eng = up()
        time.sleep(0.5)  # the first polls: nothing was active lately
        assert fired(eng) == []
        first = trello.add_card(board.todo, "While running")
        wait_for(eng, 1)
        time.sleep(0.8)  # several polls with nothing new
        down()

        stopped = trello.add_card(board.done, "While stopped")  # changes made while no scheduler runs
        trello.touch(first["id"], desc="edited while stopped")
        eng = up()
        wait_for(eng, 2)
        time.sleep(0.8)
        down()

        eng = up()  # a restart with nothing new fires nothing
        time.sleep(1.0)
        runs = fired(eng)
        assert len(runs) == 2
        assert [(c["cardName"], c["action"]) for c in runs[0]["cards"]] == [("While running", "created")]
        assert sorted((c["cardName"], c["action"]) for c in runs[1]["cards"]) == [
            ("While running", "updated"),
            ("While stopped", "created"),
        ]
        assert stopped["id"] in {c["cardId"] for c in runs[1]["cards"]}
        updates = [(c["cardId"], c["lastActivity"]) for r in runs for c in r["cards"]]
        assert len(set(updates)) == len(updates), "a card update fired twice"
        found, _ = eng.store.search_executions("main", namespace=NS, flow_id="cards", prefix=False, size=100)
        assert [e["state"]["current"] for e in found] == ["SUCCESS", "SUCCESS"]
    finally:
        while running:
            down()


class Crash(Exception):
    pass


class CrashingScheduler(Scheduler):
    """Dies right after saving what a poll decided, before starting it (a process killed there)."""

    def _start_pending(self, entry, trig, data, next_date):
        if data.get("pending"):
            raise Crash("killed between deciding and starting")
        super()._start_pending(entry, trig, data, next_date)


class CrashAfterStartScheduler(Scheduler):
    """Dies after starting the executions, before clearing what it decided."""

    def _save(self, entry, trig, data, next_date):
        if "executionId" in data and "pending" not in data:
            raise Crash("killed after starting, before saving")
        super()._save(entry, trig, data, next_date)


@pytest.mark.parametrize("crashing", [CrashingScheduler, CrashAfterStartScheduler])
def test_a_crash_around_starting_fires_once_after_a_restart(trello, board, tmp_path, crashing):
    home = tmp_path / "home"
    eng = _open(home)
    eng.deploy(flow(board_id=board.board["id"]))
    trello.add_card(board.todo, "Decided")
    t0 = time.time()
    crashing(eng).tick(now=t0)  # the tick logs the crash and goes on; the process would be dead
    state = eng.store.get_trigger("main", NS, "cards", "watch")
    assert len(state["pending"]) == 1
    assert len(fired(eng)) == (1 if crashing is CrashAfterStartScheduler else 0)
    eng.store.close()

    eng = _open(home)
    try:
        again = Scheduler(eng)
        again.tick(now=t0 + 1)  # not due, but a pending decision is started at once (once)
        [run] = fired(eng)
        assert [c["cardName"] for c in run["cards"]] == ["Decided"]
        again.tick(now=t0 + 301)  # the card was recorded with the decision: not again
        again.tick(now=t0 + 602)
        assert len(fired(eng)) == 1
        assert not eng.store.get_trigger("main", NS, "cards", "watch").get("pending")
    finally:
        eng.store.close()


def test_a_failed_poll_keeps_the_cursor_and_logs_no_secret(trello, board, engine, caplog):
    card = trello.add_card(board.todo, "Card", created=time.time() - 3600)
    engine.deploy(flow(board_id=board.board["id"]))
    sched = Scheduler(engine)
    t0 = time.time()
    sched.tick(now=t0)
    cursor = engine.store.get_trigger("main", NS, "cards", "watch")["state"]
    trello.touch(card["id"], name="Changed")
    trello.inject(401, "invalid token")
    with caplog.at_level(logging.ERROR, logger="roost.scheduler"):
        sched.tick(now=t0 + 301)
    assert fired(engine) == []
    assert engine.store.get_trigger("main", NS, "cards", "watch")["state"] == cursor
    [record] = [r for r in caplog.records if "failed to evaluate" in r.getMessage()]
    message = record.getMessage()
    assert "Trello API error on GET /boards/" in message and "(HTTP 401): invalid token" in message
    assert not any(secret in message for secret in SECRETS)
    sched.tick(now=t0 + 602)  # the next poll sees the change
    [run] = fired(engine)
    assert run["cards"][0]["cardName"] == "Changed"


def test_changing_what_is_watched_starts_a_new_cursor(trello, board, engine):
    trello.add_card(board.todo, "Old", created=time.time() - 3600)
    engine.deploy(flow(lists=[board.todo["id"]]))
    sched = Scheduler(engine)
    t0 = time.time()
    sched.tick(now=t0)
    engine.deploy(flow(lists=[board.todo["id"], board.done["id"]]))
    trello.add_card(board.done, "Recent")
    sched.tick(now=t0 + 301)
    [run] = fired(engine)  # the cards of the new list are not all "new": only the recently active one
    assert [c["cardName"] for c in run["cards"]] == ["Recent"]


def test_evaluate_directly_with_a_trigger_context(trello, board, engine):
    card = trello.add_card(board.todo, "Direct")
    flow_obj = engine.deploy(flow(board_id=board.board["id"]))
    [trig] = flow_obj.triggers
    ctx = TriggerContext(engine, "main", flow_obj, trig)
    result = trig.evaluate(ctx)
    assert result["count"] == 1 and result["cards"][0]["cardId"] == card["id"]
    assert ctx.state["cards"] == {card["id"]: card["dateLastActivity"]}
    again = TriggerContext(engine, "main", flow_obj, trig, state=ctx.state)
    assert trig.evaluate(again) is None


def test_trigger_needs_something_to_watch(engine):
    from roost.flow.build import FlowInvalid

    with pytest.raises(FlowInvalid, match="set boardId or lists"):
        engine.deploy(flow())
