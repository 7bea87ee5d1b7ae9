"""No template may reach Python internals, run code, or exhaust memory.

Each payload must either raise ExpressionError or render something harmless:
never a class, a function, a module, a frame or a global namespace.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from roost.expr import ExpressionEngine, ExpressionError


class Services:
    namespace = "company.team"
    secret_values: set[str] = set()

    def secret(self, key: str) -> str:
        return "s3cr3t"

    def kv(self, key: str, namespace: str | None = None, error_on_missing: bool = True) -> Any:
        return None

    def read(self, path: str) -> str:
        return ""

    def file_uri(self, path: str) -> str:
        return ""

    def credential(self, key: str) -> str:
        return ""


VARIABLES = {"x": "text", "d": {"a": 1}, "l": [1, 2], "n": 1.5, "fn_name": "now"}
PWNED = Path("/tmp/roost-sandbox-pwned")

PAYLOADS = [
    # the classic class-hierarchy walk
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__base__.__subclasses__() }}",
    "{{ [].__class__ }}",
    "{{ {}.__class__ }}",
    "{{ (1).__class__.__subclasses__() }}",
    "{{ x.__class__.__init__.__globals__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c.__name__ }}{% endfor %}",
    "{% set s = ''.__class__ %}{{ s }}",
    # Jinja globals used to reach __globals__ (removed)
    "{{ cycler.__init__.__globals__.os.popen('touch /tmp/roost-sandbox-pwned').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('touch /tmp/roost-sandbox-pwned').read() }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ dict.__base__ }}",
    # Flask/Django-style objects and template internals
    "{{ request.application.__globals__.__builtins__.__import__('os').popen('id').read() }}",
    "{{ config.__class__.__init__.__globals__['os'] }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__dict__ }}",
    "{{ _context }}",
    "{{ context }}",
    "{{ environment }}",
    # our own functions and filters
    "{{ now.__globals__ }}",
    "{{ now.__code__.co_consts }}",
    "{{ range.__globals__['__builtins__'] }}",
    "{{ secret.__closure__ }}",
    "{{ render.__wrapped__ }}",
    "{{ printContext.__globals__ }}",
    "{{ printContext().__class__ }}",
    "{{ x.upper.__self__.__class__ }}",
    "{{ ''.join.__self__ }}",
    "{{ n.hex.__func__ }}",
    # str.format can read attributes: refused
    "{{ '{0.__class__}'.format(x) }}",
    "{{ '{0.__class__.__mro__}'.format(x) }}",
    "{{ '{.__init__.__globals__}'.format(now) }}",
    "{{ x.format_map(d) }}",
    "{{ x | format('%s') }}",
    # attr() and friends take attribute names from strings
    "{{ x | attr('__class__') }}",
    "{{ x | attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ x['__class__'] }}",
    "{{ x['\\x5f\\x5fclass\\x5f\\x5f'] }}",
    "{{ d['__class__'] }}",
    "{{ l | map(attribute='__class__') | list }}",
    "{{ l | selectattr('__class__') | list }}",
    "{{ l | sum(attribute='__class__') }}",
    "{{ l | groupby('__class__') }}",
    "{{ l | sort(attribute='__class__') }}",
    # mutation of the caller's data
    "{{ l.append(3) }}",
    "{{ l.pop() }}",
    "{{ d.update({'a': 2}) }}",
    "{{ d.clear() }}",
    "{{ d.setdefault('z', 1) }}",
    # generators, frames, code objects
    "{{ x.gi_frame }}",
    "{{ (l | map('string')).gi_frame.f_globals }}",
    "{% macro m() %}{% endmacro %}{{ m.__globals__ }}",
    "{% macro m() %}{% endmacro %}{{ m._func.__globals__ }}",
    # other templates and the file system
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}{{ os.system('id') }}",
    "{% from 'os' import system %}",
    "{% extends '/etc/passwd' %}",
    "{{ read.__globals__['open']('/etc/passwd').read() }}",
]


@pytest.fixture(scope="module")
def engine() -> ExpressionEngine:
    return ExpressionEngine()


_LEAK = re.compile(
    r"<class|<function|<module|<built-in|<frame|<code|<bound|<generator|__builtins__|object at 0x|Undefined"
)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_escape_payloads_fail_or_render_harmlessly(engine: ExpressionEngine, payload: str) -> None:
    variables = {**VARIABLES, "l": [1, 2], "d": {"a": 1}}
    try:
        out = engine.render(payload, variables, Services())
    except ExpressionError:
        pass
    else:
        assert not _LEAK.search(repr(out)), out
    assert variables["l"] == [1, 2] and variables["d"] == {"a": 1}
    assert not PWNED.exists()


MEMORY_BOMBS = [
    "{{ 'a' * 1000000000 }}",
    "{{ 1000000000 * 'a' }}",
    "{{ [0] * 1000000000 }}",
    "{{ 'a' ** 1000000000 }}",
    "{{ 10 ** 1000000000 }}",
    "{{ 'a'.ljust(1000000000) }}",
    "{{ 'a'.rjust(1000000000) }}",
    "{{ 'a'.center(1000000000) }}",
    "{{ 'a'.zfill(1000000000) }}",
    "{{ '\\t'.expandtabs(1000000000) }}",
    "{{ '%01000000000d' % 1 }}",
    "{{ '{:>1000000000}'.format(1) }}",
    "{{ 'a' | center(1000000000) }}",
    "{{ 'a\nb' | indent(1000000000) }}",
    "{{ 'a\nb' | nindent(1000000000) }}",
    "{{ range(0, 1000000000) | length }}",
    "{{ (0..1000000000) | length }}",
    "{% for i in range(0, 1000000000) %}{% endfor %}",
    "{{ nanoId(1000000000) }}",
]


@pytest.mark.parametrize("payload", MEMORY_BOMBS)
def test_memory_bombs_are_refused(engine: ExpressionEngine, payload: str) -> None:
    with pytest.raises(ExpressionError):
        engine.render(payload, VARIABLES)


def test_bounded_range_still_works(engine: ExpressionEngine) -> None:
    assert engine.render("{{ range(1, 100000) | length }}", {}) == 100000
    assert engine.render("{{ 'ab' * 3 }}", {}) == "ababab"


def test_services_are_not_reachable_from_templates(engine: ExpressionEngine) -> None:
    services = Services()
    for payload in ("{{ services }}", "{{ printContext() }}", "{{ _STATE }}", "{{ engine }}"):
        try:
            out = engine.render(payload, {"flow": {"id": "f"}}, services)
        except ExpressionError:
            continue
        assert out == {"flow": {"id": "f"}}  # printContext() shows variables only


def test_secret_values_come_only_from_the_secret_function(engine: ExpressionEngine) -> None:
    services = Services()
    services.secret_values = set()
    assert engine.render("{{ secret('K') }}", {}, services) == "s3cr3t"
    assert services.secret_values == {"s3cr3t"}


@pytest.mark.parametrize(
    "payload", ["{{ now }}", "x {{ secret }}", "{{ [now] }}", "{{ {'f': range} | toJson }}"]
)
def test_functions_are_not_values(engine: ExpressionEngine, payload: str) -> None:
    with pytest.raises(ExpressionError, match="cannot be used as a value"):
        engine.render(payload, {})


def test_lazy_jinja_sequences_are_listed(engine: ExpressionEngine) -> None:
    assert engine.render("{{ [1, 2] | map('string') }}", {}) == ["1", "2"]
    assert engine.render("x {{ [1, 2, 3] | select('odd') }}", {}) == "x [1,3]"
