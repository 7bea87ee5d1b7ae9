"""YAML is untrusted input: bounded loading, values that read back as JSON, one violation per problem."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from roost.cli.main import cli
from roost.engine.engine import Engine
from roost.engine.inputs import InputsInvalid
from roost.expr.engine import ExpressionEngine, ExpressionError
from roost.flow.build import FlowInvalid, parse_flow
from roost.flow.yaml import (
    YamlError,
    YamlLimits,
    decode_source,
    limits,
    load_data,
    load_document,
    load_documents,
    set_limits,
)
from roost.plugin_defaults import DefaultsInvalid, defaults_for
from roost.server import ServerState, create_app
from roost.store.db import Store

FLOW = """id: {id}
namespace: company.team
variables:
{variables}
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: {message}
"""


def flow(id: str = "f", variables: str = "  x: 1", message: str = "hi") -> str:
    return FLOW.format(id=id, variables=variables, message=message)


@pytest.fixture
def small_limits() -> Iterator[YamlLimits]:
    lim = YamlLimits(max_chars=2_000, max_depth=5, max_nodes=200, max_aliases=3)
    set_limits(lim)
    yield lim
    set_limits(None)


# -- values read back -----------------------------------------------------------------------------------
def test_dates_stay_the_text_written_as_in_kestra():
    parsed = parse_flow(flow(variables="  day: 2024-01-01\n  at: 2024-01-01T10:00:00Z", message="2024-05-06"))
    assert parsed.variables == {"day": "2024-01-01", "at": "2024-01-01T10:00:00Z"}
    assert parsed.tasks[0].message == "2024-05-06"


def test_map_keys_are_text_and_every_accepted_value_is_json():
    doc = load_document(
        "k: {1: a, true: b, 0x10: c, 1.5: d}\nset: !!set {a, b}\nn: 0x1F\nf: 1.5e3\nb: true\nz: ~"
    )
    assert doc.data == {
        "k": {"1": "a", "true": "b", "0x10": "c", "1.5": "d"},
        "set": {"a": None, "b": None},
        "n": 31,
        "f": 1500.0,
        "b": True,
        "z": None,
    }
    json.dumps(doc.data, allow_nan=False)


def test_yaml_1_2_booleans_only():
    assert load_data("a: yes\nb: on\nc: True\nd: !!bool yes") == {"a": "yes", "b": "on", "c": True, "d": True}


def test_anchors_aliases_and_merge_keys_within_limits():
    doc = load_document(
        "base: &b {x: 1, y: [1, 2]}\nother: &o {y: 3, z: 4}\n"
        "m:\n  <<: [*b, *o]\n  x: 9\nl: [&s hello, *s]\nc: *b\n"
    )
    assert doc.data["m"] == {"x": 9, "y": [1, 2], "z": 4}
    assert doc.data["l"] == ["hello", "hello"]
    assert doc.data["c"] == doc.data["base"] and doc.data["c"] is not doc.data["base"]
    assert doc.data["c"]["y"] is not doc.data["base"]["y"]  # no object is shared between two places
    assert doc.line_of(("m", "z")) == 4  # a merged key points at its <<
    assert doc.line_of(("m", "x")) == 5


def test_lines_are_kept_for_every_path():
    doc = load_document("a:\n  - x\n  - {b: 1}\n  -\n    - deep\n")
    assert doc.line_of(("a",)) == 1
    assert doc.line_of(("a", 0)) == 2
    assert doc.line_of(("a", 1, "b")) == 3
    assert doc.line_of(("a", 2, 0)) == 5


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!!int abc", "invalid !!int value 'abc': expected an integer"),
        ("!!float abc", "invalid !!float value 'abc': expected a number"),
        ("!!bool maybe", "invalid !!bool value 'maybe': expected true or false"),
        ("1.0e+999", "'1.0e+999' is not a finite number"),
        ("-.inf", "'-.inf' is not a finite number"),
        ("!!float nan", "'nan' is not a finite number"),
        ("1:" * 700 + "1", "integer too long: more than 1000 digits"),
        ("!!timestamp 2024-02-30", "invalid date or timestamp '2024-02-30': day is out of range for month"),
        ("2024-01-01T10:00:00+99:00", "invalid date or timestamp"),
        ("!custom x", "unsupported YAML tag '!custom'"),
        ("!!python/name:os.system", "unsupported YAML tag '!!python/name:os.system'"),
        ("!!str [a]", "unsupported YAML tag '!!str' on a list"),
        ("*nowhere", "found undefined alias '*nowhere'"),
    ],
)
def test_each_bad_scalar_is_one_violation_with_its_path_and_line(value, message):
    with pytest.raises(FlowInvalid) as err:
        parse_flow(flow(variables=f"  a: 1\n  bad: {value}"))
    [v] = err.value.violations
    assert (v.path, v.line) == ("variables.bad", 5)
    assert v.message.startswith(message)


def test_quoting_keeps_any_of_them_as_text():
    parsed = parse_flow(flow(variables='  a: ".inf"\n  b: "2024-13-45"\n  c: "!!binary x"'))
    assert parsed.variables == {"a": ".inf", "b": "2024-13-45", "c": "!!binary x"}


def test_documents_split_on_separator_lines_each_report_their_own_lines():
    docs = load_documents("a: 1\n---\nb: !!int x\n---\nc: 3\n...\nd: 4\n")
    assert docs[0].data == {"a": 1}
    assert str(docs[1]) == "b: invalid !!int value 'x': expected an integer (line 3)"
    assert str(docs[2]) == "<root>: invalid YAML: did not find expected <document start> (line 7)"


# -- limits ------------------------------------------------------------------------------------------
def test_limits_come_from_the_environment():
    env = {"ROOST_YAML_MAX_CHARS": "10", "ROOST_YAML_MAX_DEPTH": "3", "ROOST_YAML_MAX_NODES": "7",
           "ROOST_YAML_MAX_ALIASES": "2"}  # fmt: skip
    assert YamlLimits.from_env(env) == YamlLimits(max_chars=10, max_depth=3, max_nodes=7, max_aliases=2)
    assert YamlLimits.from_env({}) == YamlLimits()
    with pytest.raises(ValueError, match="ROOST_YAML_MAX_DEPTH must be an integer"):
        YamlLimits.from_env({"ROOST_YAML_MAX_DEPTH": "deep"})
    with pytest.raises(ValueError, match="at least 1"):
        YamlLimits.from_env({"ROOST_YAML_MAX_NODES": "0"})


def test_document_size_depth_nodes_and_aliases_are_bounded(small_limits):
    assert limits() is small_limits
    [big] = load_documents("a: 1\n" * 500)
    assert str(big) == "<root>: the document is too large: 2500 characters, the limit is 2000 (line 401)"
    with pytest.raises(YamlError, match=r"a\.b\.c\.d\.e: the document nests deeper than 5 levels \(line 1\)"):
        load_data("a: {b: {c: {d: {e: {f: 1}}}}}")
    with pytest.raises(YamlError, match="more than 200 values"):
        load_data("[" + ", ".join(["x"] * 300) + "]")
    with pytest.raises(YamlError, match=r"l\[3\]: the document uses more than 3 aliases"):
        load_data("a: &a x\nl: [*a, *a, *a, *a]")
    # an alias costs what it expands to, in values and in depth
    with pytest.raises(YamlError, match="more than 200 values"):
        load_data("a: &a [" + ", ".join(["x"] * 70) + "]\nb: [*a, *a, *a]")
    with pytest.raises(YamlError, match="nests deeper than 5 levels \\(aliases expanded\\)"):
        load_data("a: &a {b: {c: {d: 1}}}\nx: {y: {z: *a}}")


def test_billion_laughs_stops_at_the_value_budget():
    source = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    prev = "a"
    for name in "bcdefghi":
        source += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
        prev = name
    source += "boom: *i\n"
    with pytest.raises(YamlError, match="more than 100000 values"):
        load_data(source)


# -- encodings ------------------------------------------------------------------------------------------
def test_decoding_names_the_line_of_the_first_bad_byte():
    assert decode_source("a: é".encode()) == "a: é"
    assert decode_source(b"\xef\xbb\xbfa: 1") == "a: 1"
    assert decode_source("a: é".encode("utf-16")) == "a: é"
    with pytest.raises(YamlError) as err:
        decode_source(b"a: 1\nb: caf\xe9\n")
    assert str(err.value) == "<root>: the file is not UTF-8 text: byte 0xe9 cannot be decoded (line 2)"
    assert err.value.violation.column == 7


def test_cli_reports_a_non_utf8_file_and_checks_the_others(tmp_path):
    (tmp_path / "a_latin1.yaml").write_bytes("id: a\nnamespace: n\n# café\n".encode("latin-1"))
    (tmp_path / "b_ok.yaml").write_text(flow(id="ok"))
    (tmp_path / "c_inf.yaml").write_text(flow(id="inf", variables="  x: .inf"))
    result = CliRunner().invoke(cli, ["flow", "validate", str(tmp_path), "-o", "json"])
    assert result.exit_code == 1, result.output
    report = {Path(r["file"]).name: r for r in json.loads(result.output)}
    assert report["a_latin1.yaml"]["violations"] == [
        {
            "path": "",
            "message": "the file is not UTF-8 text: byte 0xe9 cannot be decoded",
            "line": 3,
            "column": 6,
        }  # fmt: skip
    ]
    assert report["b_ok.yaml"]["valid"] is True
    [v] = report["c_inf.yaml"]["violations"]
    assert (v["path"], v["line"]) == ("variables.x", 4)
    table = CliRunner().invoke(cli, ["flow", "validate", str(tmp_path)])
    assert "line 3: <root>: the file is not UTF-8 text" in table.output


# -- other YAML that users send -------------------------------------------------------------------------
def test_the_yaml_expression_function_is_bounded():
    engine = ExpressionEngine()
    assert engine.render("{{ yaml('a: 2024-01-01') }}", {}) == {"a": "2024-01-01"}
    with pytest.raises(ExpressionError, match="nests deeper than 100 levels"):
        engine.render("{{ yaml(v) }}", {"v": "[" * 500 + "]" * 500})


def test_a_yaml_input_is_bounded_and_reads_back(tmp_path):
    eng = Engine(Store.sqlite(tmp_path), tmp_path, workers=1)
    eng.start()
    try:
        source = flow(id="inputs").replace("variables:\n  x: 1\n", "inputs:\n  - id: doc\n    type: YAML\n")
        deployed = eng.deploy(source)
        with pytest.raises(InputsInvalid, match="not valid YAML.*more than 100 aliases"):
            eng.create_execution(deployed, {"doc": "a: &a x\nl: [" + ", ".join(["*a"] * 101) + "]"})
        ex = eng.run(deployed, {"doc": "day: 2024-01-01\nn: 1e3"}, timeout=30)
        assert ex.inputs["doc"] == {"day": "2024-01-01", "n": 1000.0}
        source = source.replace("type: YAML", "type: JSON").replace("id: inputs", "id: json_inputs")
        deployed = eng.deploy(source)
        for bad, message in [('{"a": NaN}', "NaN is not a JSON number"), ("[1, Infinity]", "Infinity is not"),
                             ("[" * 100_000 + "]" * 100_000, "nests too deeply")]:  # fmt: skip
            with pytest.raises(InputsInvalid, match=message):
                eng.create_execution(deployed, {"doc": bad})
    finally:
        eng.stop()


def test_plugin_defaults_files_are_loaded_bounded(tmp_path):
    (tmp_path / "instance.yaml").write_bytes(b"pluginDefaults:\n  - type: a\n    values: {x: caf\xe9}\n")
    with pytest.raises(
        DefaultsInvalid,
        match=r"instance.yaml are invalid:\n  - <root>: the file is not UTF-8 text.*\(line 3\)",
    ):
        defaults_for("company", tmp_path)


# -- readable back through the API ---------------------------------------------------------------------------
def test_a_flow_the_api_accepted_is_always_readable_back(tmp_path):
    engine = Engine(Store.sqlite(tmp_path), tmp_path, workers=1)
    engine.start()
    try:
        client = TestClient(create_app(ServerState(engine)), raise_server_exceptions=False)
        headers = {"content-type": "application/x-yaml"}
        for i, value in enumerate([".inf", ".nan", "!!binary aGVsbG8=", "2024-13-45", "!!int x", "7" * 5000]):
            r = client.post("/api/v1/main/flows", content=flow(id=f"bad{i}", variables=f"  v: {value}"),
                            headers=headers)  # fmt: skip
            assert r.status_code == 422, r.text
            assert "variables.v" in r.text and "line 4" in r.text, r.text
        odd = flow(id="odd", variables="  day: 2024-01-01\n  k: {1: a, true: b}\n  big: " + "9" * 900)
        r = client.post("/api/v1/main/flows", content=odd, headers=headers)
        assert r.status_code == 200, r.text
        r = client.get("/api/v1/main/flows/search")
        assert r.status_code == 200, r.text
        [found] = [f for f in r.json()["results"] if f["id"] == "odd"]
        r = client.get("/api/v1/main/flows/company.team/odd")
        assert r.status_code == 200, r.text
        assert r.json()["variables"]["day"] == "2024-01-01"
        assert r.json()["variables"]["k"] == {"1": "a", "true": "b"}
        assert found["namespace"] == "company.team"
    finally:
        engine.stop()
