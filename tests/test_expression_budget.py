"""Expressions have budgets: a render time limit and an output size limit, that no construct escapes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from roost.expr import budget
from roost.expr.budget import ExpressionLimits, set_limits
from roost.expr.engine import ExpressionEngine, ExpressionError
from roost.server.config import ConfigError, load_config

OUTPUT = "output size limit of 100,000 characters (ROOST_EXPRESSION_MAX_OUTPUT)"
TIME = "time limit of 0.3 s (ROOST_EXPRESSION_TIMEOUT)"


@pytest.fixture
def small() -> Iterator[ExpressionEngine]:
    """A small output size limit, so that each case fails fast; an engine of its own."""
    set_limits(ExpressionLimits(timeout=60, max_output=100_000))
    yield ExpressionEngine()
    set_limits(None)


@pytest.fixture
def quick() -> Iterator[ExpressionEngine]:
    """A short time limit and room enough in size that time runs out first."""
    set_limits(ExpressionLimits(timeout=0.3, max_output=10**10))
    yield ExpressionEngine()
    set_limits(None)


@pytest.mark.parametrize(
    "template",
    [
        "{% for i in range(0, 99999) %}{% for j in range(0, 99999) %}{% endfor %}{% endfor %}",
        "{% for i in 0..99999 %}{% for j in 0..99999 %}{{ j }}{% endfor %}{% endfor %}",
        "{% for i in range(0, 99999) %}{% for j in range(0, 99999) %}{% if j > i %}{% endif %}{% endfor %}{% endfor %}",
        # nested render() shares the budget of the render that called it
        "{{ render(\"{% for i in range(0, 99999) %}{{ render('{% for j in range(0, 99999) %}{% endfor %}') }}"
        '{% endfor %}") }}',
        "{% macro f(n) %}{% for i in range(0, 99999) %}{% endfor %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    ],
)
def test_a_render_stops_at_its_time_limit(quick, template):
    with pytest.raises(
        ExpressionError, match=r"took longer than its " + TIME.replace("(", r"\(").replace(")", r"\)")
    ):
        quick.render(template, {})


@pytest.mark.parametrize(
    "template",
    [
        # ~ doubling
        "{% set a = 'xxxxxxxxxx' %}{% set a = a ~ a %}{% set b = a ~ a ~ a ~ a ~ a ~ a ~ a ~ a %}"
        "{% set c = b ~ b ~ b ~ b ~ b ~ b ~ b ~ b %}{% set d = c ~ c ~ c ~ c ~ c ~ c ~ c ~ c %}"
        "{% set e = d ~ d ~ d ~ d ~ d ~ d ~ d ~ d %}{{ e | length }}",
        # replace, the filter with a map and Jinja's two-argument form, plain and regexp
        "{{ ('a' * 1000) | replace('a', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa') | replace('a', 'aaaaaaaaaaaaaaaaaaaaaaaaaaa') | length }}",
        "{{ ('a' * 1000) | replace({'a': 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'}) | length }}",
        "{{ ('a' * 1000) | replace({'a': 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'}, regexp=true) | length }}",
        "{{ ('a' * 1000) | regexReplace('a', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb') | length }}",
        # join: many items, or a long separator
        "{{ range(0, 99999) | join(',') | length }}",
        "{% set s = 'x' * 50000 %}{{ [1, 2, 3, 4] | join(s) | length }}",
        # * on text and on lists
        "{{ ('x' * 200000) | length }}",
        "{% set s = 'x' * 50000 %}{{ ([s] * 3) | length }}",
        # literals sharing one value: their JSON would be far larger than the template
        "{% set a = ['xxxxxxxxxx', 'xxxxxxxxxx', 'xxxxxxxxxx', 'xxxxxxxxxx', 'xxxxxxxxxx'] %}"
        "{% set b = [a, a, a, a, a, a, a, a, a, a] %}{% set c = [b, b, b, b, b, b, b, b, b, b] %}"
        "{% set d = [c, c, c, c, c, c, c, c, c, c] %}{% set e = [d, d, d, d, d, d, d, d, d, d] %}{{ e | length }}",
        "{% set a = {'k': 'xxxxxxxxxxxxxxxxxxxx'} %}{% set b = {'a': a, 'b': a, 'c': a, 'd': a} %}"
        "{% set c = {'a': b, 'b': b, 'c': b, 'd': b} %}{% set d = {'a': c, 'b': c, 'c': c, 'd': c} %}"
        "{% set e = {'a': d, 'b': d, 'c': d, 'd': d} %}{% set f = {'a': e, 'b': e, 'c': e, 'd': e} %}"
        "{% set g = {'a': f, 'b': f, 'c': f, 'd': f} %}{% set h = {'a': g, 'b': g, 'c': g, 'd': g} %}{{ h }}",
        # text written by a loop: static, expressions, captured in a block
        "{% for i in range(0, 99999) %}some static text{% endfor %}",
        "{% for i in range(0, 99999) %}{{ i }}{% endfor %}",
        "{% set x %}{% for i in range(0, 9999) %}{{ big }}{% endfor %}{% endset %}{{ x | length }}",
        # filters producing large lists, and texts built from them
        "{{ ('a,' * 40000) | split(',') | length }}",
        "{{ ('x' * 60000) | list | length }}",
        "{{ range(0, 99999) | map('string') | list | length }}",
        "{{ ('\\n' * 1000) | indent(200) | length }}",
        "{{ range(0, 9999) | toJson | length }}",
        # a variable written again and again
        "{% for i in range(0, 99999) %}{{ big }}{% endfor %}",
    ],
)
def test_a_render_stops_at_its_output_size_limit(small, template):
    with pytest.raises(ExpressionError, match=OUTPUT.replace("(", r"\(").replace(")", r"\)")):
        small.render(template, {"big": "y" * 20_000})


def test_everyday_templates_fit(small):
    rows = [{"id": i, "name": f"row {i}"} for i in range(200)]
    assert small.render("{% for r in rows %}{{ r.id }},{% endfor %}", {"rows": rows}).count(",") == 200
    assert small.render("{{ rows | toJson | length > 1000 }}", {"rows": rows}) is True
    assert small.render("{{ range(1, 3) | join('-') }}", {}) == "1-2-3"
    assert small.render("{{ 'ab' | replace({'a': 'x'}) }}", {}) == "xb"
    assert small.render("{{ 'a' * 3 }}", {}) == "aaa"
    # a passed-through variable is not built by the template: no size is charged for it
    assert small.render("{{ big }}", {"big": "y" * 500_000}) == "y" * 500_000


def test_integers_stay_printable(small):
    with pytest.raises(ExpressionError, match="integer of more than 4,000 digits"):
        small.render("{% set a = 99999999999 %}{% set b = a*a*a*a*a*a*a*a %}{% set c = b*b*b*b*b*b*b*b %}"
                     "{% set d = c*c*c*c*c*c*c*c %}{% set e = d*d*d*d*d*d*d*d %}{{ e }}", {})  # fmt: skip


def test_methods_that_could_outgrow_the_budget_unseen_are_refused(small):
    for method in ("replace('a', 'bb')", "join(['a'])", "translate({97: 'bb'})", "center(10)"):
        with pytest.raises(ExpressionError, match="unsafe"):
            small.render("{{ 'a'." + method + " }}", {})


def test_deep_nesting_and_recursion_are_errors_not_crashes(small):
    with pytest.raises(ExpressionError, match="nests too deeply"):
        small.compile("{{ " + "[" * 3000 + "]" * 3000 + " }}")
    with pytest.raises(ExpressionError, match="nests too deeply"):
        small.compile("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}")
    with pytest.raises(ExpressionError, match="too much recursion"):
        small.render("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", {})
    assert small.render("{{ 1 + 1 }}", {}) == 2  # the thread goes on


def test_compiling_never_runs_a_filter():
    calls = []

    def spy(value):
        calls.append(value)
        return value

    engine = ExpressionEngine(filters={"spy": spy})
    engine.validate("{{ 'constant' | spy }} and {{ 'more' | spy | upper }}")
    engine.validate("{{ 'constant' | spy }}")
    assert calls == []
    assert engine.render("{{ 'x' | spy }} {{ 'y' | spy }}", {}) == "x y"
    assert calls == ["x", "y"]


def test_a_budget_is_per_top_level_render(small):
    template = "{% for i in range(1, 800) %}{{ big }}{% endfor %}"  # 80,000 characters: fits once
    for _ in range(3):
        assert len(small.render(template, {"big": "y" * 100})) == 80_000
    assert budget.current() is None


def test_limits_come_from_the_environment_and_the_server_configuration(tmp_path):
    assert ExpressionLimits.from_env({}) == ExpressionLimits(timeout=5.0, max_output=32 * 1024 * 1024)
    env = {"ROOST_EXPRESSION_TIMEOUT": "1.5", "ROOST_EXPRESSION_MAX_OUTPUT": "1000"}
    assert ExpressionLimits.from_env(env) == ExpressionLimits(timeout=1.5, max_output=1000)
    with pytest.raises(ValueError, match="ROOST_EXPRESSION_TIMEOUT must be a number"):
        ExpressionLimits.from_env({"ROOST_EXPRESSION_TIMEOUT": "soon"})
    config = tmp_path / "roost.yaml"
    config.write_text(
        "limits:\n  expressions: {timeout: 2, maxOutputSize: 5000}\n"
        "  yaml: {maxSize: 9000, maxDepth: 20, maxValues: 500, maxAliases: 5}\n"
    )
    cfg = load_config(config, env={})
    assert cfg.expression_limits == ExpressionLimits(timeout=2.0, max_output=5000)
    assert (cfg.yaml_limits.max_chars, cfg.yaml_limits.max_depth, cfg.yaml_limits.max_nodes,
            cfg.yaml_limits.max_aliases) == (9000, 20, 500, 5)  # fmt: skip
    cfg = load_config(config, env={"ROOST_EXPRESSION_TIMEOUT": "7", "ROOST_YAML_MAX_DEPTH": "30"})
    assert cfg.expression_limits.timeout == 7.0 and cfg.yaml_limits.max_depth == 30  # the variable wins
    try:
        cfg.apply_limits()
        assert budget.limits().max_output == 5000
        from roost.flow import yaml

        assert yaml.limits().max_depth == 30
    finally:
        budget.set_limits(None)
        from roost.flow import yaml

        yaml.set_limits(None)
    for bad, message in [
        ("limits:\n  expressions: {timeout: -1}\n", "limits.expressions.timeout: expected a positive number"),
        ("limits:\n  yaml: {maxDepth: deep}\n", "limits.yaml.maxDepth: expected a positive integer"),
        ("limits:\n  yaml: {maxDeep: 3}\n", "limits.yaml.maxDeep: unknown limit"),
    ]:
        config.write_text(bad)
        with pytest.raises(ConfigError, match=message):
            load_config(config, env={})


def test_a_task_whose_expression_exceeds_a_limit_fails_naming_it(run_flow, roost_engine):
    set_limits(ExpressionLimits(timeout=0.3, max_output=10**10))
    try:
        ex = run_flow(
            """id: budget
namespace: company.team
tasks:
  - id: slow
    type: io.kestra.plugin.core.log.Log
    message: "{% for i in range(0, 99999) %}{% for j in range(0, 99999) %}{% endfor %}{% endfor %}"
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: never
"""
        )
        assert ex.state.current == "FAILED"
        [run] = ex.task_runs
        assert run.task_id == "slow" and run.state.current == "FAILED"
        logs = " ".join(entry["message"] for entry in roost_engine.store.get_logs("main", ex.id))
        assert TIME in logs
        set_limits(ExpressionLimits(timeout=0.3, max_output=100_000))
        ex = run_flow(
            """id: budget_size
namespace: company.team
tasks:
  - id: big
    type: io.kestra.plugin.core.debug.Return
    format: "{{ range(0, 99999) | join(',') }}"
"""
        )
        assert ex.state.current == "FAILED"
        logs = " ".join(entry["message"] for entry in roost_engine.store.get_logs("main", ex.id))
        assert OUTPUT in logs
    finally:
        set_limits(None)


@pytest.mark.parametrize(
    "template",
    [
        "{{ (('x' * 3000) ~ '!') | regexMatch('(x+x+)+y') }}",
        "{{ (('x' * 3000) ~ '!') | regexReplace('(x+x+)+y', 'z') }}",
        "{{ (('x' * 3000) ~ '!') | replace({'(x+x+)+y': 'z'}, regexp=true) }}",
        "{{ (('x' * 3000) ~ '!') | split('(x+x+)+y') }}",
    ],
)
def test_catastrophic_regular_expressions_stop_at_the_time_limit(quick, template):
    with pytest.raises(ExpressionError, match=r"took longer than its time limit of 0.3 s"):
        quick.render(template, {})


@pytest.mark.parametrize(
    "program", ["[limit(100000000; repeat(1))] | length", "def f: f; f", "[range(100000000)] | length"]
)
def test_jq_runs_outside_the_process_and_stops_at_the_time_limit(quick, program):
    # jq holds the GIL in one C call: in process, this would freeze every thread of a server
    with pytest.raises(ExpressionError, match=r"took longer than its time limit of 0.3 s"):
        quick.render("{{ 1 | jq(p) }}", {"p": program})
    assert quick.render("{{ v | jq('.a[]') }}", {"v": {"a": [1, 2]}}) == [1, 2]  # a new helper takes over


def test_jq_results_count_against_the_output_size_limit():
    set_limits(ExpressionLimits(timeout=60, max_output=100_000))
    try:
        engine = ExpressionEngine()
        with pytest.raises(ExpressionError, match=OUTPUT.replace("(", r"\(").replace(")", r"\)")):
            engine.render("{{ 1 | jq('[range(200000)]') }}", {})
        with pytest.raises(ExpressionError, match="Failed to resolve JQ expression '.\\[': .*syntax error"):
            engine.render("{{ 1 | jq('.[') }}", {})
    finally:
        set_limits(None)
