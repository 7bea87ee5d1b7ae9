"""The standard type checks, Kestra's documented examples, and a flow on the real engine."""

from __future__ import annotations

import base64

from roost.testing.suite import TypeSuite
from roost_trello import cards
from trello_support import SECRETS

# Kestra's documented examples for its Trello tasks and trigger, as written on kestra.io.
KESTRA_CREATE = """
id: trello_create_card
namespace: company.team

tasks:
  - id: create_card
    type: io.kestra.plugin.trello.cards.Create
    apiKey: "{{ secret('TRELLO_API_KEY') }}"
    apiToken: "{{ secret('TRELLO_API_TOKEN') }}"
    name: "My New Card"
    listId: "5abbe4b7ddc1b351ef961414"
    desc: "This is the card description"
"""

KESTRA_UPDATE = """
id: trello_update_card
namespace: company.team

tasks:
  - id: update_card
    type: io.kestra.plugin.trello.cards.Update
    apiKey: "{{ secret('TRELLO_API_KEY') }}"
    apiToken: "{{ secret('TRELLO_API_TOKEN') }}"
    cardId: "5abbe4b7ddc1b351ef961414"
    name: "Updated Card Name"
    desc: "Updated description"
"""

KESTRA_MOVE = """
id: trello_move_card
namespace: company.team

tasks:
  - id: move_card
    type: io.kestra.plugin.trello.cards.Move
    apiKey: "{{ secret('TRELLO_API_KEY') }}"
    apiToken: "{{ secret('TRELLO_API_TOKEN') }}"
    cardId: "5abbe4b7ddc1b351ef961414"
    listId: "5abbe4b7ddc1b351ef961415"
"""

KESTRA_COMMENT = """
id: trello_add_comment
namespace: company.team

tasks:
  - id: add_comment
    type: io.kestra.plugin.trello.cards.Comment
    apiKey: "{{ secret('TRELLO_API_KEY') }}"
    apiToken: "{{ secret('TRELLO_API_TOKEN') }}"
    cardId: "5abbe4b7ddc1b351ef961414"
    text: "This is my comment on the card"
"""

KESTRA_TRIGGER = """
id: trello_card_monitor
namespace: company.team

tasks:
  - id: notify
    type: io.kestra.plugin.core.log.Log
    message: "Card {{ trigger.cards[0].cardName }} was {{ trigger.cards[0].action }}: {{ trigger.cards[0].cardUrl }}"

triggers:
  - id: card_trigger
    type: io.kestra.plugin.trello.cards.Trigger
    apiKey: "{{ secret('TRELLO_API_KEY') }}"
    apiToken: "{{ secret('TRELLO_API_TOKEN') }}"
    lists:
      - "5abbe4b7ddc1b351ef961414"
      - "5abbe4b7ddc1b351ef961415"
    interval: PT10M
"""

KESTRA_BOARD_TRIGGER = """
id: trello_board_monitor
namespace: company.team

tasks:
  - id: notify
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.count }} card(s) changed"

triggers:
  - id: board_trigger
    type: io.kestra.plugin.trello.cards.Trigger
    apiKey: "{{ secret('TRELLO_API_KEY') }}"
    apiToken: "{{ secret('TRELLO_API_TOKEN') }}"
    boardId: "5abbe4b7ddc1b351ef961416"
    interval: PT15M
"""

# An incident card's life: opened, commented with the run, moved to Done when the fix shipped.
INCIDENT = """
id: incident_card
namespace: company.team
inputs:
  - id: title
    type: STRING
  - id: todo
    type: STRING
  - id: done
    type: STRING
tasks:
  - id: open
    type: io.kestra.plugin.trello.cards.Create
    apiKey: "{{ secret('TRELLO_API_KEY') }}"
    apiToken: "{{ secret('TRELLO_API_TOKEN') }}"
    apiBaseUrl: "{{ secret('TRELLO_URL') }}"
    listId: "{{ inputs.todo }}"
    name: "{{ inputs.title }}"
    desc: "Opened by execution {{ execution.id }}"
    assets:
      enableAuto: true
  - id: note
    type: io.kestra.plugin.trello.cards.Comment
    apiKey: "{{ secret('TRELLO_API_KEY') }}"
    apiToken: "{{ secret('TRELLO_API_TOKEN') }}"
    apiBaseUrl: "{{ secret('TRELLO_URL') }}"
    cardId: "{{ outputs.open.cardId }}"
    text: "Fix deployed by {{ flow.id }}"
  - id: close
    type: io.kestra.plugin.trello.cards.Move
    apiKey: "{{ secret('TRELLO_API_KEY') }}"
    apiToken: "{{ secret('TRELLO_API_TOKEN') }}"
    apiBaseUrl: "{{ secret('TRELLO_URL') }}"
    cardId: "{{ outputs.open.cardId }}"
    listId: "{{ inputs.done }}"
    assets:
      enableAuto: true
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "card {{ outputs.open.card.shortUrl }} is in list {{ outputs.close.listId }}"
"""


class TestTrelloTypes(TypeSuite):
    types = (*cards.TASKS, *cards.TRIGGERS)
    examples = [
        KESTRA_CREATE,
        KESTRA_UPDATE,
        KESTRA_MOVE,
        KESTRA_COMMENT,
        KESTRA_TRIGGER,
        KESTRA_BOARD_TRIGGER,
        INCIDENT,
    ]


def test_incident_flow_on_the_engine(run_flow, roost_engine, trello, board, monkeypatch):
    monkeypatch.setenv("SECRET_TRELLO_URL", base64.b64encode(trello.url.encode()).decode())
    emitted = []
    store = roost_engine.asset_sink
    roost_engine.asset_sink = lambda job, ctx, bundles: (emitted.extend(bundles), store(job, ctx, bundles))
    ex = run_flow(
        INCIDENT, {"title": "Disk full on db-1", "todo": board.todo["id"], "done": board.done["id"]}
    )
    assert ex.state.current == "SUCCESS", [(tr.task_id, tr.state.current) for tr in ex.task_runs]
    [card] = trello.cards.values()
    assert card["name"] == "Disk full on db-1" and card["desc"] == f"Opened by execution {ex.id}"
    assert card["idList"] == board.done["id"] and card["badges"]["comments"] == 1
    assert trello.actions[0]["data"]["text"] == "Fix deployed by incident_card"
    logs = roost_engine.store.get_logs("main", ex.id)
    assert any(f"card {card['shortUrl']} is in list {board.done['id']}" in log["message"] for log in logs)
    assert not any(secret in log["message"] for log in logs for secret in SECRETS)
    assert [(a.id, a.metadata["listId"]) for b in emitted for a in b.outputs] == [
        (f"trello:card:{card['id']}", board.todo["id"]),
        (f"trello:card:{card['id']}", board.done["id"]),
    ]
    [stored] = roost_engine.assets.search("main")
    assert stored["id"] == f"trello:card:{card['id']}" and stored["metadata"]["listId"] == board.done["id"]
