"""Expression engine throughput: cached renders of typical templates, and compiles.

Run alone: ``python bench/bench_expressions.py``. One line per figure.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from roost.expr import ExpressionEngine

VARIABLES = {
    "flow": {"id": "hello", "namespace": "company.team"},
    "execution": {"id": "4wjtkzwVGBM9yKnjm3yv8r", "startDate": "2024-01-15T10:30:45.123456Z"},
    "inputs": {"name": "World", "count": 3, "region": "eu"},
    "outputs": {"fetch": {"body": {"items": [1, 2, 3]}, "code": 200}},
}


def rate(fn: Callable[[int], None], seconds: float = 1.0) -> float:
    """Calls per second of ``fn(i)``, measured over about ``seconds``."""
    fn(0)  # warm up (and fill the cache)
    n, start, batch = 0, time.perf_counter(), 1000
    while (elapsed := time.perf_counter() - start) < seconds:
        for i in range(batch):
            fn(n + i)
        n += batch
    return n / elapsed


def main() -> None:
    engine = ExpressionEngine()
    render = engine.render

    def cached(template: str) -> Callable[[int], None]:
        return lambda _i: render(template, VARIABLES)

    figures = {
        "expression renders/s (cached, single variable)": cached("{{ outputs.fetch.code }}"),
        "expression renders/s (cached, text with variables)": cached(
            "Flow {{ flow.namespace }}.{{ flow.id }} says hello to {{ inputs.name }}"
        ),
        "expression renders/s (cached, single expression with operators)": cached(
            "{{ inputs.count * 2 > 5 ? 'big' : 'small' }}"
        ),
        "expression renders/s (cached, mixed template with filters)": cached(
            "{{ inputs.name | upper }} has {{ outputs.fetch.body.items | length }} items"
            " in {{ inputs.region ?? 'us' }} since {{ execution.startDate | date('yyyy-MM-dd', timeZone='UTC') }}"
        ),
        "expression renders/s (cached, loop writing 100 items)": cached(
            "{% for i in range(1, 100) %}{{ i }},{% endfor %}"
        ),
        "expression renders/s (no expression, fast path)": cached("just a literal string"),
        "expression compiles/s": lambda i: engine.compile(
            f"{{{{ inputs.name | upper }}}} #{i} {{{{ inputs.count + {i} }}}}"
        ),
    }
    for label, fn in figures.items():
        print(f"{label}: {rate(fn):,.0f}")


if __name__ == "__main__":
    main()
