"""What the AI Copilot costs Roost itself, model time aside (the app in process, a fake model answering at once).

Run alone: ``python bench/bench_ai.py [--repeat N]``. One line per figure: the installed-type catalogue
built cold (every plugin of the environment loaded), the system prompt built warm (rank + budget), the
validation of one generated flow, and a whole ``POST /ai/generate/flow`` (median of N, after one warm-up).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

FLOW = """id: bench
namespace: bench.ai
tasks:
  - id: fetch
    type: io.kestra.plugin.core.http.Request
    uri: https://example.com/data
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{ outputs.fetch.body }}"
"""


def median_ms(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    from fastapi.testclient import TestClient
    from roost.engine.engine import Engine
    from roost.plugins import get_plugins
    from roost.server import ServerState, create_app
    from roost.server.config import ServerConfig, parse_ai
    from roost.server.copilot import _flow_violations, rank, system_prompt, type_cards
    from roost.store.db import Store
    from roost.testing.llm import FakeLlm

    plugins = get_plugins()
    plugins.load_types()
    t0 = time.perf_counter()
    cards = type_cards(plugins)
    print(
        f"type catalogue, cold ({len(cards)} task and trigger types): {(time.perf_counter() - t0) * 1000:.0f} ms"
    )
    fake = FakeLlm(default=lambda body: f"```yaml\n{FLOW}```").start()
    config = ServerConfig(
        ai=parse_ai({"providers": [{"id": "m", "modelName": "m", "baseUrl": fake.openai_url}]})
    )
    prompt = "fetch a JSON document over HTTP every hour and log its body"
    assert config.ai is not None
    ms = median_ms(lambda: system_prompt(config.ai, rank(cards, prompt, FLOW), [], "bench.ai"), args.repeat)
    size = len(system_prompt(config.ai, rank(cards, prompt, FLOW), [], "bench.ai"))
    print(
        f"system prompt, warm (rank + {config.ai.context_budget}-character budget, {size} characters): {ms:.2f} ms"
    )
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Store.sqlite(Path(tmp)), Path(tmp), workers=2).start()
        state = ServerState(engine, config)
        client = TestClient(create_app(state))
        ms = median_ms(lambda: _flow_violations(state, "main", FLOW, ""), args.repeat)
        print(f"validation of one generated flow: {ms:.2f} ms")
        body = {"conversationId": "bench", "userPrompt": prompt, "yaml": FLOW}

        def generate() -> None:
            r = client.post("/api/v1/main/ai/generate/flow", json=body)
            assert r.status_code == 200, r.text

        ms = median_ms(generate, args.repeat)
        print(f"POST /ai/generate/flow, model answering at once (Roost's overhead per request): {ms:.1f} ms")
        engine.stop()
    fake.stop()


if __name__ == "__main__":
    sys.exit(main())
