"""The expression engine renders Kestra (Pebble) expressions the way Kestra 1.3 does."""

from __future__ import annotations

import base64
import re
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from roost.expr import ExpressionEngine, ExpressionError, RenderCtx, get_engine, mask, reset_engine


class FakeServices:
    """A small implementation of the Services protocol."""

    namespace = "company.team"

    def __init__(self, encryption_key: str | None = None) -> None:
        self.encryption_key = encryption_key
        self.secret_values: set[str] = set()
        self.kv_calls = 0
        self._secrets = {"API_KEY": "s3cr3t-value", "DB": '{"user": "admin", "password": "pa55word"}'}
        self._kv = {"config": {"retries": 3}, "company.other:flag": True}

    def secret(self, key: str, namespace: str | None = None) -> str:
        if key not in self._secrets:
            raise KeyError(f"Unable to find secret '{key}'")
        return self._secrets[key]

    def kv(self, key: str, namespace: str | None = None, error_on_missing: bool = True) -> Any:
        self.kv_calls += 1
        full = f"{namespace}:{key}" if namespace else key
        if full in self._kv:
            return self._kv[full]
        if error_on_missing:
            raise KeyError(
                f"The key '{key}' does not exist in the namespace '{namespace or self.namespace}'."
            )
        return None

    def read(self, path: str) -> str:
        return f"content of {path}"

    def file_uri(self, path: str) -> str:
        return f"kestra:///company/team/_files/{path}"

    def credential(self, key: str) -> str:
        return f"token-for-{key}"


VARIABLES: dict[str, Any] = {
    "flow": {"id": "hello", "namespace": "company.team"},
    "inputs": {"name": "World", "count": 3, "ratio": 0.5, "empty": "", "nothing": None, "flag": True},
    "outputs": {
        "fetch": {"values": [1, 2, 3], "items": {"a": 1}, "body": '{"id": 7, "tags": ["x", "y"]}'},
        "each": {"p1": {"a": "A1", "b": "B1"}},
    },
    "items": [3, 1, 2],
    "words": ["b", "a", "c", "a"],
    "user": {"name": "ada", "address": {"city": "Paris"}, "email": None},
    "when": "2024-01-15T10:30:45.123456Z",
    "vars": {"greeting": "Hello {{ inputs.name }}", "nested": "{{ vars.greeting }}!"},
    "taskrun": {"value": "b"},
    "parents": [{"taskrun": {"value": "p1"}}],
}


@pytest.fixture(scope="module")
def engine() -> ExpressionEngine:
    return ExpressionEngine()


@pytest.fixture
def services() -> FakeServices:
    return FakeServices(encryption_key="server-key")


CASES: list[tuple[str, Any]] = [
    # no expression: returned as is
    ("plain text", "plain text"),
    ("a { b } c", "a { b } c"),
    # a single expression keeps its native type
    ("{{ inputs.count }}", 3),
    ("{{ inputs.ratio }}", 0.5),
    ("{{ inputs.flag }}", True),
    ("{{ inputs.nothing }}", None),
    ("{{ items }}", [3, 1, 2]),
    ("{{ user.address }}", {"city": "Paris"}),
    ("  {{ inputs.count }}\n", 3),
    ("{{ 1 + 2 }}", 3),
    ("{{ [1, 'a', null] }}", [1, "a", None]),
    ("{{ {'k': inputs.count} }}", {"k": 3}),
    # anything else renders to text; maps and lists as compact JSON
    ("n={{ inputs.count }}", "n=3"),
    ("{{ inputs.count }}{{ inputs.count }}", "33"),
    ("list: {{ items }}", "list: [3,1,2]"),
    ("map: {{ user.address }}", 'map: {"city":"Paris"}'),
    ("b: {{ inputs.flag }} / {{ false }}", "b: true / false"),
    ("null:[{{ inputs.nothing }}]", "null:[]"),
    ("{{ user.name }} lives in {{ user.address.city }}", "ada lives in Paris"),
    # a map's keys win over dict methods (Pebble has none)
    ("{{ outputs.fetch.values }}", [1, 2, 3]),
    ("{{ outputs.fetch['items'].a }}", 1),
    # ?? null-coalescing: left when defined and not null
    ("{{ inputs.name ?? 'x' }}", "World"),
    ("{{ inputs.nothing ?? 'x' }}", "x"),
    ("{{ inputs.missing ?? 'x' }}", "x"),
    ("{{ undefined_root.a.b ?? 'deep' }}", "deep"),
    ("{{ inputs.missing ?? inputs.nothing ?? 'third' }}", "third"),
    ("{{ inputs.missing ?? now() | date('yyyy', timeZone='UTC') | length }}", 4),
    ("{{ inputs.missing | upper ?? 'caught' }}", "caught"),
    ("{{ items[10] ?? 'out of range' }}", "out of range"),
    # ??? undefined-coalescing: null stays null
    ("{{ inputs.nothing ??? 'x' }}", None),
    ("{{ inputs.missing ??? 'x' }}", "x"),
    ("{{ inputs.empty ??? 'x' }}", ""),
    # ternary and Jinja's inline if
    ("{{ inputs.flag ? 'yes' : 'no' }}", "yes"),
    ("{{ inputs.count > 5 ? 'big' : inputs.count > 2 ? 'medium' : 'small' }}", "medium"),
    ("{{ inputs.nothing == null ? 'null' : 'set' }}", "null"),
    ("{{ 'a' if inputs.flag else 'b' }}", "a"),
    # operators with Pebble's precedence and semantics
    ("{{ 'a' ~ 'b' | upper }}", "AB"),
    ("{{ 'n' ~ inputs.count ~ null ~ true }}", "n3true"),
    ("{{ -7 | abs }}", 7),
    ("{{ 7 / 2 }}", 3),
    ("{{ -7 / 2 }}", -3),
    ("{{ 7.0 / 2 }}", 3.5),
    ("{{ -7 % 3 }}", -1),
    ("{{ 2 + 3 * 4 }}", 14),
    ("{{ 'World' contains 'orl' }}", True),
    ("{{ items contains 2 }}", True),
    ("{{ items contains [1, 3] }}", True),
    ("{{ user contains 'name' }}", True),
    ("{{ 1 equals 1.0 }}", True),
    ("{{ inputs.count >= 3 and not inputs.flag == false }}", True),
    ("{{ 'b' in words and 'z' not in words }}", True),
    ("{{ 0..3 }}", [0, 1, 2, 3]),
    # tests
    ("{{ inputs.missing is defined }}", False),
    ("{{ inputs.nothing is defined }}", True),
    ("{{ inputs.nothing is null }}", True),
    ("{{ inputs.name is not null }}", True),
    ("{{ inputs.empty is empty }}", True),
    ("{{ '  ' is empty }}", True),
    ("{{ items is empty }}", False),
    ("{{ outputs.fetch.body is json }}", True),
    ("{{ user is map }}", True),
    ("{{ 4 is even }}", True),
    # tags
    ("{% raw %}{{ not rendered }}{% endraw %}", "{{ not rendered }}"),
    ("{% if inputs.count == 1 %}one{% elseif inputs.count == 3 %}three{% else %}other{% endif %}", "three"),
    ("{% for i in items %}{{ loop.index }}:{{ i }} {% endfor %}", "0:3 1:1 2:2 "),
    ("{% for e in user.address %}{{ e.key }}={{ e.value }}{% endfor %}", "city=Paris"),
    ("{% for i in [] %}x{% else %}none{% endfor %}", "none"),
    ("{% set total = inputs.count * 2 %}{{ total }}", "6"),
    ("{# a comment #}kept", "kept"),
    ("line\n{{ inputs.count }}\n", "line\n3\n"),
    # filters
    ("{{ inputs.empty | default('fallback') }}", "fallback"),
    ("{{ inputs.missing | default('fallback') }}", "fallback"),
    ("{{ inputs.name | default('fallback') }}", "World"),
    ("{{ items | length }}", 3),
    ("{{ 'Kestra' | length }}", 6),
    ("{{ items | first }}", 3),
    ("{{ 'Kestra' | last }}", "a"),
    ("{{ items | join(', ') }}", "3, 1, 2"),
    ("{{ 'a,b,,c,,' | split(',') }}", ["a", "b", "", "c"]),
    ("{{ 'a.b.c' | split('\\\\.') }}", ["a", "b", "c"]),
    ("{{ 'a,b,c,d' | split(',', 2) }}", ["a", "b,c,d"]),
    ("{{ 'LOUD' | lower }} {{ 'quiet' | upper }}", "loud QUIET"),
    ("{{ 'article title' | title }}", "Article Title"),
    ("{{ 'hello WORLD' | capitalize }}", "Hello WORLD"),
    ("{{ '  padded  ' | trim }}", "padded"),
    ("{{ 'I like %this%.' | replace({'%this%': inputs.name}) }}", "I like World."),
    ("{{ 'aaa' | replace('a', 'b') }}", "bbb"),
    ("{{ 'a1b22' | replace({'(\\\\d+)': '<$1>'}, regexp=true) }}", "a<1>b<22>"),
    ("{{ items | slice(1, 3) }}", [1, 2]),
    ("{{ 'Kestra' | slice(1, 3) }}", "es"),
    ("{{ items | sort }}", [1, 2, 3]),
    ("{{ items | rsort }}", [3, 2, 1]),
    ("{{ items | reverse }}", [2, 1, 3]),
    ("{{ user.address | keys }}", ["city"]),
    ("{{ {'a': 1, 'b': 2} | values }}", [1, 2]),
    ("{{ user.address | toJson }}", '{"city":"Paris"}'),
    ("{{ 'x' | json }}", '"x"'),
    ("{{ (outputs.fetch.body | fromJson).tags }}", ["x", "y"]),
    ("{{ {'a': [1, {'b': 2}], 'c': 'd'} | yaml }}", "a:\n  - 1\n  - b: 2\nc: d\n"),
    ("{{ outputs.fetch.body | jq('.tags[]') }}", ["x", "y"]),
    ("{{ outputs | jq('.fetch.values | add') | first }}", 6),
    ("{{ 12.3456 | numberFormat('#.##') }}", "12.35"),
    ("{{ 1234567.891 | numberFormat('#,##0.00') }}", "1,234,567.89"),
    ("{{ '12' | number }}", 12),
    ("{{ '12.5' | number }}", 12.5),
    ("{{ '7' | number('DOUBLE') }}", 7.0),
    ("{{ -3 | abs }}", 3),
    ("{{ 'Hello World!' | slugify }}", "hello-world"),
    ("{{ 'Crème Brûlée' | slugify }}", "creme-brulee"),
    ("{{ 'a.b.c' | substringBefore('.') }}", "a"),
    ("{{ 'a.b.c' | substringAfter('.') }}", "b.c"),
    ("{{ 'a.b.c' | substringBeforeLast('.') }}", "a.b"),
    ("{{ 'a.b.c' | substringAfterLast('.') }}", "c"),
    ("{{ 'kestra://file.csv' | startsWith('kestra://') }}", True),
    ("{{ 'report.csv' | endsWith('.json') }}", False),
    ("{{ 'a\nb' | indent(2) }}", "a\n  b"),
    ("{{ 'a\nb' | nindent(2) }}", "\n  a\n  b"),
    ("{{ [1, 2, 3, 4, 5] | chunk(2) }}", [[1, 2], [3, 4], [5]]),
    ("{{ [[1, 2], [3], 4] | flatten }}", [1, 2, 3, 4]),
    ("{{ words | distinct }}", ["b", "a", "c"]),
    ("{{ [1, 2] | merge([3]) }}", [1, 2, 3]),
    ("{{ {'a': 1} | merge({'b': 2}) }}", {"a": 1, "b": 2}),
    ("{{ 'test' | md5 }}", "098f6bcd4621d373cade4e832627b4f6"),
    ("{{ 'test' | sha1 }}", "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"),
    ("{{ 'test' | sha256 }}", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
    ("{{ 'test' | sha512 | length }}", 128),
    ("{{ 'test' | base64encode }}", "dGVzdA=="),
    ("{{ 'dGVzdA==' | base64decode }}", "test"),
    ("{{ 'The string ü@foo-bar' | urlencode }}", "The+string+%C3%BC%40foo-bar"),
    ("{{ 'The+string+%C3%BC%40foo-bar' | urldecode }}", "The string ü@foo-bar"),
    ("{{ \"Can't\" | escapeChar('single') }}", "Can\\'t"),
    ("{{ \"it's\" | escapeChar('shell') }}", "it'\\''s"),
    ("{{ 42 | string }}", "42"),
    ("{{ 'this is a long sentence.' | abbreviate(7) }}", "this..."),
    ("{{ 'order-123-done' | regexExtract('\\\\d+') }}", "123"),
    ("{{ 2.567 | round(1) }}", 2.6),
    # dates (Java patterns, converted to the requested zone)
    ("{{ when | date('yyyy-MM-dd HH:mm:ss', timeZone='UTC') }}", "2024-01-15 10:30:45"),
    ("{{ when | date(timeZone='Europe/Paris') }}", "2024-01-15T11:30:45.123456+01:00"),
    (
        "{{ when | date('iso_date_time', timeZone='Europe/Paris') }}",
        "2024-01-15T11:30:45.123456+01:00[Europe/Paris]",
    ),
    ("{{ when | date(\"EEEE d MMMM yyyy, h:mm a\", timeZone='UTC') }}", "Monday 15 January 2024, 10:30 AM"),
    (
        "{{ when | date(\"yyyy-MM-dd'T'HH:mm:ssXXX\", timeZone='America/New_York') }}",
        "2024-01-15T05:30:45-05:00",
    ),
    ("{{ '15/01/2024' | date('yyyy-MM-dd', existingFormat='dd/MM/yyyy', timeZone='UTC') }}", "2024-01-15"),
    ("{{ when | dateAdd(-1, 'DAYS', timeZone='UTC') }}", "2024-01-14T10:30:45.123456Z"),
    ("{{ when | dateAdd(2, 'HOURS', format='HH:mm', timeZone='UTC') }}", "12:30"),
    ("{{ '2024-01-31' | dateAdd(1, 'MONTHS', format='yyyy-MM-dd', timeZone='UTC') }}", "2024-02-29"),
    ("{{ when | timestamp }}", 1705314645),
    ("{{ when | timestampMilli }}", 1705314645123),
    ("{{ when | timestampMicro }}", 1705314645123456),
    ("{{ when | timestampNano }}", "1705314645123456000"),
    ("{{ 0 | date('yyyy-MM-dd', timeZone='UTC') }}", "1970-01-01"),
    # functions
    ("{{ max(5, 10, 15) }}", 15),
    ("{{ min(5, 10, 15) }}", 5),
    ("{{ range(0, 6, 2) }}", [0, 2, 4, 6]),
    ("{{ fromJson(outputs.fetch.body).id }}", 7),
    ("{{ yaml('a: [1, 2]') }}", {"a": [1, 2]}),
    ("{{ currentEachOutput(outputs.each) }}", "B1"),
    ("{{ render(vars.greeting) }}", "Hello World"),
    ("{{ render(vars.nested) }}", "Hello World!"),
    ("{{ renderOnce(vars.nested) }}", "Hello {{ inputs.name }}!"),
    ("{{ render(vars.nested, recursive=false) }}", "Hello {{ inputs.name }}!"),
    ("{{ secret('API_KEY') }}", "s3cr3t-value"),
    ("{{ secret('DB', subkey='password') }}", "pa55word"),
    ("{{ kv('config').retries }}", 3),
    ("{{ kv('flag', 'company.other') }}", True),
    ("{{ kv(key='nope', errorOnMissing=false) ?? 'absent' }}", "absent"),
    ("{{ read('data/file.txt') }}", "content of data/file.txt"),
    ("{{ fileURI('data/file.txt') }}", "kestra:///company/team/_files/data/file.txt"),
    ("{{ credential('github') }}", "token-for-github"),
    ("{{ decrypt('my-key', encrypt('my-key', 'top secret')) }}", "top secret"),
    ("{{ decrypt(encrypt('with the server key')) }}", "with the server key"),
    ("{{ uuid() | length }}", 36),
    ("{{ randomInt(5, 6) }}", 5),
    ("{{ printContext().flow.id }}", "hello"),
]


@pytest.mark.parametrize(("template", "expected"), CASES)
def test_render(engine: ExpressionEngine, services: FakeServices, template: str, expected: Any) -> None:
    assert engine.render(template, VARIABLES, services) == expected


UNDEFINED = [
    ("{{ x }}", "x"),
    ("{{ inputs.missing }}", "missing"),
    ("{{ user.address.zip.code }}", "zip"),
    ("{{ nothere.a.b }}", "nothere"),
    ("{{ items[7] }}", "7"),
    ("Hello {{ who }}!", "who"),
    ("{{ missing | upper }}", "missing"),
    ("{{ missing == 1 }}", "missing"),
    ("{{ missing is null }}", "missing"),
    ("{% for i in missing %}{{ i }}{% endfor %}", "missing"),
    ("{{ [missing] }}", "missing"),
    ("{{ inputs.missing ?? also_missing }}", "also_missing"),
]


@pytest.mark.parametrize(("template", "name"), UNDEFINED)
def test_undefined_message_is_kestras(engine: ExpressionEngine, template: str, name: str) -> None:
    with pytest.raises(ExpressionError) as exc:
        engine.render(template, VARIABLES)
    assert str(exc.value) == f"Unable to find `{name}` used in the expression `{template}` at line 1"


def test_undefined_message_names_the_line(engine: ExpressionEngine) -> None:
    template = "first line\nsecond {{ inputs.name }}\n{% if true %}\n{{ inputs.nope }}{% endif %}"
    with pytest.raises(ExpressionError) as exc:
        engine.render(template, VARIABLES)
    assert str(exc.value) == f"Unable to find `nope` used in the expression `{template}` at line 4"


ERRORS = [
    ("{{ inputs.name ?? }}", "Unable to parse the expression"),
    ("{{ items | nosuchfilter }}", "No filter named 'nosuchfilter'"),
    ("{{ inputs.name is nosuchtest }}", "No test named 'nosuchtest'"),
    ("{{ 1 / 0 }}", "/ by zero"),
    ("{{ 'a' - 1 }}", "TypeError"),
    ("{{ secret('NOPE') }}", "Unable to find secret 'NOPE'"),
    ("{{ kv('nope') }}", "does not exist in the namespace 'company.team'"),
    ("{{ 'x' | number }}", "x is not a valid number."),
    ("{{ when | dateAdd(1, 'FORTNIGHTS') }}", "ChronoUnit.FORTNIGHTS"),
    ("{{ when | date('yyyy', timeZone='Mars/Olympus') }}", "Unknown time-zone ID"),
    ("{{ decrypt('wrong', encrypt('right', 'x')) }}", "wrong key or corrupted data"),
    ("{{ randomInt(5, 1) }}", "upper is less than lower"),
    ("{{ items | slice(2, 9) }}", "toIndex must be smaller than input size"),
    ("{% include 'other' %}", "unknown tag 'include'"),
]


@pytest.mark.parametrize(("template", "fragment"), ERRORS)
def test_errors_name_the_expression(
    engine: ExpressionEngine, services: FakeServices, template: str, fragment: str
) -> None:
    with pytest.raises(ExpressionError) as exc:
        engine.render(template, VARIABLES, services)
    assert fragment in str(exc.value)
    assert f"`{template}`" in str(exc.value)


def test_functions_needing_services_say_so(engine: ExpressionEngine) -> None:
    with pytest.raises(ExpressionError, match="'secret' function needs run-time services"):
        engine.render("{{ secret('API_KEY') }}", VARIABLES)


def test_render_walks_dicts_and_lists(engine: ExpressionEngine) -> None:
    value = {
        "{{ flow.id }}_key": ["{{ inputs.count }}", "static", {"deep": "{{ inputs.flag }}"}, 7],
        "n": None,
    }
    assert engine.render(value, VARIABLES) == {"hello_key": [3, "static", {"deep": True}, 7], "n": None}


def test_render_string_always_gives_text(engine: ExpressionEngine) -> None:
    assert engine.render_string("{{ inputs.count }}", VARIABLES) == "3"
    assert engine.render_string("{{ user.address }}", VARIABLES) == '{"city":"Paris"}'
    assert engine.render_string("{{ inputs.nothing }}", VARIABLES) == ""
    assert engine.render_string("{{ inputs.flag }}", VARIABLES) == "true"
    assert engine.render_string("no expression", VARIABLES) == "no expression"


def test_now_is_iso_8601_with_offset(engine: ExpressionEngine) -> None:
    rendered = engine.render("{{ now(timeZone='Asia/Kolkata') }}", {})
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+05:30", rendered)
    utc = engine.render("{{ now(timeZone='UTC') }}", {})
    assert utc.endswith("Z")
    parsed = datetime.fromisoformat(utc)
    assert abs((datetime.now(UTC) - parsed).total_seconds()) < 5


def test_id_is_short_base62(engine: ExpressionEngine) -> None:
    ids = {engine.render("{{ id() }}", {}) for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[0-9A-Za-z]{1,22}", i) for i in ids)


def test_secrets_are_recorded_for_masking(engine: ExpressionEngine, services: FakeServices) -> None:
    line = engine.render(
        "token={{ secret('API_KEY') }} pwd={{ secret('DB', subkey='password') }}", VARIABLES, services
    )
    assert {"s3cr3t-value", "pa55word"} <= services.secret_values
    assert mask(line, services.secret_values) == "token=****** pwd=******"


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("key=abc123 and abc123", ["abc123"], "key=****** and ******"),
        ("password=abcdef", ["abc", "abcdef"], "password=******"),  # longest first
        ("nothing to hide", ["", "zzz"], "nothing to hide"),
        ("a.b*c", ["b*c"], "a.******"),  # values are literal, not patterns
        ("", ["x"], ""),
    ],
)
def test_mask(text: str, secrets: list[str], expected: str) -> None:
    assert mask(text, secrets) == expected


def test_encrypt_is_aes_gcm_base64(engine: ExpressionEngine, services: FakeServices) -> None:
    a = engine.render("{{ encrypt('k', 'same') }}", {}, services)
    b = engine.render("{{ encrypt('k', 'same') }}", {}, services)
    assert a != b  # a random IV each time
    raw = base64.b64decode(a)
    assert len(raw) == 12 + len("same") + 16  # IV + ciphertext + GCM tag


def test_coalescing_is_lazy(engine: ExpressionEngine, services: FakeServices) -> None:
    assert engine.render("{{ inputs.name ?? kv('config') }}", VARIABLES, services) == "World"
    assert services.kv_calls == 0
    assert engine.render("{{ inputs.nothing ?? kv('config') }}", VARIABLES, services) == {"retries": 3}
    assert services.kv_calls == 1


def test_plugin_functions_get_a_render_context_and_filters_work() -> None:
    seen: list[RenderCtx] = []

    def greet(ctx: RenderCtx, name: str, punctuation: str = "!") -> str:
        seen.append(ctx)
        return f"hello {name} from {ctx.services.namespace}{punctuation}"

    engine = ExpressionEngine(
        functions={"greet": greet}, filters={"shout": lambda v, times=1: str(v).upper() * times}
    )
    services = FakeServices()
    out = engine.render("{{ greet(inputs.name, punctuation='?') | shout }}", VARIABLES, services)
    assert out == "HELLO WORLD FROM COMPANY.TEAM?"
    assert seen[0].variables["flow"]["id"] == "hello"
    assert seen[0].engine is engine
    assert (
        engine.render("{% set who = 'set' %}{{ greet(who) }}", VARIABLES, services)
        == "hello set from company.team!"
    )
    assert "greet" in engine.function_names and "shout" in engine.filter_names


def test_get_engine_pulls_plugin_functions_and_filters() -> None:
    from roost import hookimpl
    from roost.plugins import Plugins, set_plugins

    class Plugin:
        @hookimpl
        def register_expression_functions(self, register):
            register("answer", lambda ctx: 42)

        @hookimpl
        def register_expression_filters(self, register):
            register("double", lambda value: value * 2)

    plugins = Plugins(load_entry_points=False)
    plugins.register_module(Plugin(), name="test-expr")
    set_plugins(plugins)
    reset_engine()
    try:
        engine = get_engine()
        assert engine is get_engine()
        assert engine.render("{{ answer() | double }}", {}) == 84
    finally:
        set_plugins(None)
        reset_engine()


def test_templates_compile_once(engine: ExpressionEngine) -> None:
    template = "{{ inputs.count * 1000 + 7 }}"
    engine.render(template, VARIABLES)
    before = engine.compile.cache_info()
    for _ in range(10):
        assert engine.render(template, VARIABLES) == 3007
    after = engine.compile.cache_info()
    assert after.misses == before.misses
    assert after.hits == before.hits + 10


class Obj:
    def __init__(self) -> None:
        self.name = "object"


@pytest.mark.parametrize(
    ("variables", "template", "expected"),
    [
        ({"o": Obj()}, "{{ o.name }}", "object"),  # not a dict: the sandboxed Jinja path
        ({"o": Obj()}, "v={{ o.name }}", "v=object"),
        ({"m": type("M", (dict,), {})(a=1)}, "{{ m.a }}", 1),
        ({"t": (1, 2)}, "{{ t[1] }}", 2),
        ({"l": [[1, 2]]}, "{{ l[0][-1] }}", 2),
        ({"now": "shadowed"}, "{{ now }}", "shadowed"),  # variables win over functions
    ],
)
def test_fast_path_and_jinja_path_agree(
    engine: ExpressionEngine, variables: dict[str, Any], template: str, expected: Any
) -> None:
    assert engine.render(template, variables) == expected


def test_validate_reports_syntax_errors(engine: ExpressionEngine) -> None:
    engine.validate("{{ inputs.name | upper }}")
    engine.validate("no expression at all")
    with pytest.raises(ExpressionError, match="Unable to parse"):
        engine.validate("{{ inputs.name | }}")


def test_rendering_is_thread_safe(engine: ExpressionEngine) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(200):
                out = engine.render(
                    "{{ n ?? 0 }}-{{ render(t) }}", {"n": i, "t": "{{ n * 2 }}"}, FakeServices()
                )
                assert out == f"{i}-{i * 2}"
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
