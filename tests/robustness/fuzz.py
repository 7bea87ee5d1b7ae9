"""Fuzzed flow documents through ``roost flow validate`` and ``POST /api/v1/main/flows``.

Mutations of the repository's test flows (``tests/robustness/seeds`` and ``tests/invalid_flows``):
value types, YAML tags, anchors and aliases, nesting, sizes, keys, structure, expressions and
encodings. Generation is seeded, so a run is reproducible. The checks: no traceback, no 5xx answer,
no input slower than 5 s, the server's RSS under 500 MB throughout, and every flow the server
accepted readable back (flow search and the flow itself answer 200).

    python tests/robustness/fuzz.py --count 2000          # the full run; prints the figures
    python tests/robustness/fuzz.py --count 200 --seed 7  # the short form the e2e tests run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SEED_DIRS = (HERE / "seeds", ROOT / "tests" / "invalid_flows")
MAX_SECONDS = 5.0  # per input
MAX_RSS_MB = 500.0  # the server, sampled throughout


# -- generation ------------------------------------------------------------------------------------
def seeds() -> list[tuple[str, str]]:
    out = []
    for folder in SEED_DIRS:
        for path in sorted(folder.glob("*.yaml")):
            try:
                out.append((path.stem, path.read_text(encoding="utf-8")))
            except UnicodeDecodeError:
                continue  # the non-UTF-8 fixture: the encoding mutations make more of those
    return out


_VALUE = re.compile(r"^(?P<head>\s*(?:- )?(?:[\w.<>-]+:[ ]+|- ))(?P<value>\S.*)$")

SCALARS = [
    "42", "-0", "3.14", "1e3", "1.5e3", ".inf", "-.inf", ".nan", ".NaN", "1.0e+999", "-1.0e+999", "true",
    "FALSE", "yes", "no", "on", "~", "null", '""', "''", "[]", "{}", "[1, 2]", "{a: 1}", "0x1F", "0o17",
    "0b101", "190:20:30", "1_000", "2024-01-01", "2024-13-45", "2024-02-30", "2024-01-01T10:00:00+25:00",
    "2001-12-14 21:59:43.10 -5", "12:30", '"\\ud800"', '"\\x00"', '"\\U0010FFFF"', '"\\uDFFF\\uD800"',
    "9" * 5000, "1" * 4301, "-" + "9" * 1000, "9" * 999, "PT5M", "P1Y", "PTXM", '"{{ inputs.x }}"',
    "'{{'", '"{% for %}"', "@", "`", "%", "&", "*", "!", "|", ">", "? x", "- x", '"""', "&a", "*a", "<<",
    "=", "!!", "\t", "a: b: c", "[unclosed", "{unclosed", "'unterminated", '"unterminated',
]  # fmt: skip
TAGS = [
    "!!int", "!!float", "!!bool", "!!null", "!!str", "!!binary", "!!timestamp", "!!set", "!!omap",
    "!!pairs", "!!seq", "!!map", "!!merge", "!!value", "!!python/object/apply:os.system",
    "!!python/name:os.system", "!!python/object:object", "!custom", "!", "!<tag:yaml.org,2002:int>",
    "!<!bar>", "!!yaml", "!e!tag%21",
]  # fmt: skip
EXPRESSIONS = [
    "{{ " + "(" * 500 + "1" + ")" * 500 + " }}",
    "{{ " + "[" * 2000 + "]" * 2000 + " }}",
    "{{ 'a'" + " | replace('a', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')" * 12 + " | length }}",
    "{{ ('x' * 100000000) | length }}",
    "{{ range(0, 99999) | join(',') }}",
    "{% for i in range(0, 99999) %}{% for j in range(0, 99999) %}{% endfor %}{% endfor %}",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "{{ nope | unknownFilter }}",
    "{{ }}",
    "{% for %}",
    "{{ ''.__class__.__mro__ }}",
    "{{ render(render(render('{{ 1 }}'))) }}",
    "{{ " + " ~ ".join(["'x'"] * 3000) + " }}",
    "{{ a ?? b ?? c ??? d ? e : f }}",
]
ENCODINGS = ["latin-1", "utf-16", "utf-16-le", "utf-8-sig", "bad-bytes", "surrogate", "nul", "truncated"]


def _value_lines(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if _VALUE.match(line)]


def _set_value(rng: random.Random, lines: list[str], make: Callable[[str], str]) -> None:
    candidates = _value_lines(lines)
    if not candidates:
        lines.append(make("x"))
        return
    i = rng.choice(candidates)
    m = _VALUE.match(lines[i])
    assert m is not None
    lines[i] = m.group("head") + make(m.group("value"))


def m_retype(rng: random.Random, lines: list[str]) -> None:
    _set_value(rng, lines, lambda _v: rng.choice(SCALARS))


def m_tag(rng: random.Random, lines: list[str]) -> None:
    _set_value(rng, lines, lambda v: f"{rng.choice(TAGS)} {v if rng.random() < 0.7 else rng.choice(SCALARS)}")


def _laughs(levels: int, width: int) -> list[str]:
    out = ["  l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for n in range(1, levels):
        out.append(f"  l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * width) + "]")
    return out


def m_anchor(rng: random.Random, lines: list[str]) -> None:
    kind = rng.choice(["laughs", "recursive", "undefined", "many", "merge", "key", "scalar"])
    if kind == "laughs":
        block = ["variables:", *_laughs(rng.choice([3, 5, 9, 12]), rng.choice([2, 9, 10]))]
    elif kind == "recursive":
        block = ["variables:", "  loop: &loop", "    - *loop", "    - {x: *loop}"]
    elif kind == "undefined":
        block = ["variables:", "  v: *nowhere"]
    elif kind == "many":
        n = rng.choice([10, 99, 100, 101, 1000, 20000])
        block = ["variables:", "  v: &v x", "  l: [" + ", ".join(["*v"] * n) + "]"]
    elif kind == "merge":
        block = ["variables:", "  base: &base " + rng.choice(["{a: 1}", "[1, 2]", "x", "[{a: 1}, 3]"]),
                 "  m: {<<: *base, b: 2}"]  # fmt: skip
    elif kind == "key":
        block = ["variables:", "  k: &k [a, b]", "  m: {*k : 1}"]
    else:
        _set_value(rng, lines, lambda v: f"&a{rng.randrange(3)} {v}")
        _set_value(rng, lines, lambda _v: f"*a{rng.randrange(4)}")
        return
    _replace_section(lines, "variables", block)


def _replace_section(lines: list[str], key: str, block: list[str]) -> None:
    """Put ``block`` (a top-level section) in place of ``key``'s section, or at the end."""
    start = next((i for i, line in enumerate(lines) if line.startswith(key + ":")), None)
    if start is None:
        lines.extend(block)
        return
    end = start + 1
    while end < len(lines) and (not lines[end] or lines[end][0] in " \t#-"):
        end += 1
    lines[start:end] = block


def m_nest(rng: random.Random, lines: list[str]) -> None:
    depth = rng.choice([10, 50, 99, 100, 101, 200, 990, 1000, 5000])
    kind = rng.choice(["flow-list", "flow-map", "block-map", "block-list", "value"])
    if kind == "flow-list":
        _set_value(rng, lines, lambda _v: "[" * depth + "]" * depth)
    elif kind == "flow-map":
        _set_value(rng, lines, lambda _v: "{a: " * depth + "1" + "}" * depth)
    elif kind == "block-map":
        _replace_section(lines, "variables", ["variables:"] + ["  " * (i + 1) + "a:" for i in range(depth)]
                         + ["  " * (depth + 1) + "1"])  # fmt: skip
    elif kind == "block-list":
        _replace_section(lines, "variables", ["variables:", "  deep:", "    " + "- " * depth + "x"])
    else:
        _set_value(rng, lines, lambda v: "[" * depth + v + "]" * depth)


def m_size(rng: random.Random, lines: list[str]) -> None:
    kind = rng.choice(["string", "list", "tasks", "keys", "document"])
    if kind == "string":
        n = rng.choice([10_000, 100_000, 1_000_000, 2_200_000])
        _set_value(rng, lines, lambda _v: "x" * n)
    elif kind == "list":
        n = rng.choice([1_000, 10_000, 99_000, 150_000])
        _replace_section(lines, "variables", ["variables:", "  l: [" + ", ".join(["1"] * n) + "]"])
    elif kind == "tasks":
        n = rng.choice([100, 1_000, 5_000])
        tasks = ["tasks:"]
        for i in range(n):
            tasks += [f"  - id: t{i}", "    type: io.kestra.plugin.core.log.Log", f"    message: m{i}"]
        _replace_section(lines, "tasks", tasks)
    elif kind == "keys":
        n = rng.choice([1_000, 50_000, 120_000])
        _replace_section(lines, "variables", ["variables:"] + [f"  k{i}: {i}" for i in range(n)])
    else:
        lines.extend(["# " + "y" * 1000] * rng.choice([100, 2_200, 3_500]))


def m_keys(rng: random.Random, lines: list[str]) -> None:
    kind = rng.choice(["complex", "duplicate", "tagged", "long", "unicode", "numeric", "null"])
    extra = {
        "complex": ["  ? [a, b]", "  : c"],
        "duplicate": ["  same: 1", "  same: 2"],
        "tagged": ["  !!int 1: a", "  !!binary aGk=: b"],
        "long": ["  " + "k" * 100_000 + ": v"],
        "unicode": ["  clé: 1", "  键: 2", "  \u200b: 3"],
        "numeric": ["  1: a", "  1.5: b", "  true: c", "  0x10: d"],
        "null": ["  ~: a", "  : b"],
    }[kind]
    _replace_section(lines, "variables", ["variables:", *extra])


def m_structure(rng: random.Random, lines: list[str]) -> None:
    if not lines:
        lines.append("x")
    i = rng.randrange(len(lines))
    kind = rng.choice(["delete", "duplicate", "swap", "indent", "tab", "separator", "directive", "garbage"])
    if kind == "delete":
        del lines[i]
    elif kind == "duplicate":
        lines.insert(i, lines[i])
    elif kind == "swap":
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "indent":
        lines[i] = " " * rng.randrange(1, 5) + lines[i] if rng.random() < 0.5 else lines[i].lstrip()
    elif kind == "tab":
        lines[i] = "\t" + lines[i]
    elif kind == "separator":
        lines.insert(i, rng.choice(["---", "...", "--- !!map", "--- |", "---\n---"]))
    elif kind == "directive":
        lines.insert(0, rng.choice(["%YAML 1.1", "%YAML 2.0", "%TAG !e! tag:example.com:", "%FOO bar"]))
    else:
        chars = "{}[]:,&*!|>'\"%@`#?-\\\x7f\x1b\x00"
        pos = rng.randrange(len(lines[i]) + 1)
        lines[i] = (
            lines[i][:pos] + "".join(rng.choice(chars) for _ in range(rng.randrange(1, 4))) + lines[i][pos:]
        )


def m_expression(rng: random.Random, lines: list[str]) -> None:
    _set_value(rng, lines, lambda _v: json.dumps(rng.choice(EXPRESSIONS)))


def m_shape(rng: random.Random, lines: list[str]) -> None:
    key = rng.choice(
        ["tasks", "triggers", "inputs", "variables", "labels", "pluginDefaults", "id", "namespace"]
    )
    value = rng.choice(["x", "1", "[]", "{}", "[1, 2]", "{a: b}", "~", "[[[]]]", "[{}]", "[{id: 1}]"])
    _replace_section(lines, key, [f"{key}: {value}"])


MUTATIONS: dict[str, Callable[[random.Random, list[str]], None]] = {
    "types": m_retype,
    "tags": m_tag,
    "anchors": m_anchor,
    "nesting": m_nest,
    "sizes": m_size,
    "keys": m_keys,
    "structure": m_structure,
    "expressions": m_expression,
    "shapes": m_shape,
}
# sizes make big documents: fewer of them keeps the run short
WEIGHTS = {"types": 5, "tags": 4, "anchors": 3, "nesting": 3, "sizes": 1, "keys": 2, "structure": 4,
           "expressions": 2, "shapes": 2}  # fmt: skip


def encode(rng: random.Random, text: str, how: str) -> bytes:
    if how == "latin-1":
        return (text + "\n# é\n").encode("latin-1", "replace")
    if how in ("utf-16", "utf-16-le"):
        return text.encode(how)
    if how == "utf-8-sig":
        return text.encode("utf-8-sig")
    data = bytearray(text.encode("utf-8", "surrogatepass"))
    pos = rng.randrange(len(data) + 1)
    insert = {"bad-bytes": rng.choice([b"\xff", b"\xc3\x28", b"\x80", b"\xfe\xfe"]),
              "surrogate": b"\xed\xa0\x80", "nul": b"\x00"}.get(how)  # fmt: skip
    if insert is not None:
        data[pos:pos] = insert
        return bytes(data)
    return bytes(data[: max(0, len(data) - 1)]) + b"\xe2\x82"  # a multi-byte character cut short


@dataclass
class Doc:
    name: str
    data: bytes
    mutations: list[str]


def generate(count: int, seed: int = 1) -> list[Doc]:
    """``count`` mutated documents, the same for the same seed."""
    rng = random.Random(seed)
    bases = seeds()
    names, weights = list(WEIGHTS), list(WEIGHTS.values())
    docs = []
    for n in range(count):
        base_name, text = bases[n % len(bases)]
        lines = text.splitlines()
        applied = []
        for name in rng.choices(names, weights, k=rng.choice([1, 1, 1, 2, 3])):
            MUTATIONS[name](rng, lines)
            applied.append(name)
        source = "\n".join(lines) + "\n"
        # a unique flow id, so accepted flows do not overwrite each other
        source = re.sub(r"^id: (\S+)", rf"id: \g<1>_f{n}", source, count=1, flags=re.M)
        if rng.random() < 0.12:
            how = rng.choice(ENCODINGS)
            data = encode(rng, source, how)
            applied.append(f"encoding:{how}")
        else:
            data = source.encode("utf-8", "surrogatepass")
        docs.append(Doc(f"fuzz-{n:05d}-{base_name}", data, applied))
    return docs


# -- running ------------------------------------------------------------------------------------------
@dataclass
class Report:
    count: int = 0
    mutations: Counter[str] = field(default_factory=Counter)
    api_status: Counter[int] = field(default_factory=Counter)
    api_seconds: list[float] = field(default_factory=list)
    api_slowest: tuple[float, str] = (0.0, "")
    cli_valid: int = 0
    cli_invalid: int = 0
    cli_batches: list[float] = field(default_factory=list)
    cli_max_per_input: tuple[float, str] = (0.0, "")
    rss_max_mb: float = 0.0
    rss_start_mb: float = 0.0
    readback_status: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        times = sorted(self.api_seconds) or [0.0]
        return {
            "documents": self.count,
            "mutations": dict(sorted(self.mutations.items())),
            "cli": {
                "valid": self.cli_valid,
                "invalid": self.cli_invalid,
                "batches": len(self.cli_batches),
                "batch_seconds_max": round(max(self.cli_batches or [0]), 2),
                "slowest_input_seconds": round(self.cli_max_per_input[0], 3),
                "slowest_input": self.cli_max_per_input[1],
            },  # fmt: skip
            "api": {
                "status": dict(sorted(self.api_status.items())),
                "p50_ms": round(times[len(times) // 2] * 1000, 1),
                "p99_ms": round(times[int(len(times) * 0.99)] * 1000, 1),
                "max_seconds": round(self.api_slowest[0], 3),
                "slowest_input": self.api_slowest[1],
            },  # fmt: skip
            "server_rss_mb": {"start": round(self.rss_start_mb, 1), "max": round(self.rss_max_mb, 1)},
            "readback_status": dict(sorted(self.readback_status.items())),
            "failures": self.failures,
        }


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.max = pid, every, 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.max = max(self.max, rss_mb(self.pid))
            except OSError:
                return
            self.stop.wait(self.every)


def run_cli(docs: list[Doc], report: Report, batch: int = 100) -> None:
    """``roost flow validate DIR -o json`` over batches of files; each input is also timed alone,
    in process, through the same code (decode, then validate)."""
    from roost.flow.build import FlowInvalid, parse_flow
    from roost.flow.yaml import YamlError, decode_source

    with tempfile.TemporaryDirectory(prefix="roost-fuzz-") as tmp:
        for start in range(0, len(docs), batch):
            folder = Path(tmp) / f"batch{start:05d}"
            folder.mkdir()
            chunk = docs[start : start + batch]
            for doc in chunk:
                (folder / f"{doc.name}.yaml").write_bytes(doc.data)
            began = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", "roost.cli.main", "flow", "validate", str(folder), "-o",
                                   "json"], capture_output=True, text=True, timeout=MAX_SECONDS * len(chunk),
                                  env={**os.environ, "ROOST_LOAD_PLUGINS": ""})  # fmt: skip
            report.cli_batches.append(time.monotonic() - began)
            if proc.returncode not in (0, 1) or "Traceback" in proc.stderr:
                report.failures.append(f"cli batch {start}: exit {proc.returncode}: {proc.stderr[-2000:]}")
                continue
            results = json.loads(proc.stdout)
            if len(results) != len(chunk):
                report.failures.append(f"cli batch {start}: {len(results)} results for {len(chunk)} files")
            for r in results:
                if r["valid"]:
                    report.cli_valid += 1
                else:
                    report.cli_invalid += 1
                    if not r["violations"]:
                        report.failures.append(f"cli: {r['file']} invalid without a violation")
    for doc in docs:
        began = time.monotonic()
        try:
            parse_flow(decode_source(doc.data))
        except (FlowInvalid, YamlError):
            pass
        except Exception as exc:  # a crash is a failure, as a traceback would be
            report.failures.append(f"validate {doc.name}: {type(exc).__name__}: {exc}"[:500])
        took = time.monotonic() - began
        if took > report.cli_max_per_input[0]:
            report.cli_max_per_input = (took, doc.name)
        if took > MAX_SECONDS:
            report.failures.append(f"validate {doc.name}: {took:.1f} s")


def run_api(docs: list[Doc], report: Report, url: str, pid: int) -> None:
    """POST every document, then read back every flow that was accepted."""
    sampler = RssSampler(pid)
    report.rss_start_mb = rss_mb(pid)
    sampler.start()
    accepted: list[tuple[str, str]] = []
    try:
        with httpx.Client(base_url=url + "/api/v1/main", timeout=60) as client:
            for doc in docs:
                began = time.monotonic()
                r = client.post("/flows", content=doc.data, headers={"content-type": "application/x-yaml"})
                took = time.monotonic() - began
                report.api_seconds.append(took)
                report.api_status[r.status_code] += 1
                if took > report.api_slowest[0]:
                    report.api_slowest = (took, doc.name)
                if r.status_code >= 500:
                    report.failures.append(f"api {doc.name}: {r.status_code} {r.text[:300]}")
                if took > MAX_SECONDS:
                    report.failures.append(f"api {doc.name}: {took:.1f} s")
                if r.status_code == 200:
                    body = r.json()
                    accepted.append((body["namespace"], body["id"]))
            for page in range(1, 1000):
                r = client.get("/flows/search", params={"page": page, "size": 100})
                report.readback_status[r.status_code] += 1
                if r.status_code != 200:
                    report.failures.append(f"flow search page {page}: {r.status_code} {r.text[:300]}")
                    break
                if len(r.json()["results"]) < 100:
                    break
            for namespace, flow_id in accepted:
                for path in (f"/flows/{namespace}/{flow_id}", f"/flows/{namespace}/{flow_id}?source=true"):
                    r = client.get(path)
                    report.readback_status[r.status_code] += 1
                    if r.status_code != 200:
                        report.failures.append(f"read back {path}: {r.status_code} {r.text[:300]}")
    finally:
        sampler.stop.set()
        sampler.join()
    report.rss_max_mb = max(sampler.max, report.rss_start_mb)
    if report.rss_max_mb > MAX_RSS_MB:
        report.failures.append(f"server RSS reached {report.rss_max_mb:.0f} MB")


def run(count: int, seed: int, workdir: Path, batch: int = 100) -> Report:
    sys.path.insert(0, str(ROOT))
    from tests.e2e.conftest import ServerProcess

    docs = generate(count, seed)
    report = Report(count=len(docs))
    for doc in docs:
        report.mutations.update(m.split(":")[0] for m in doc.mutations)
    run_cli(docs, report, batch)
    server = ServerProcess("local", workdir / "data").wait_ready()
    try:
        run_api(docs, report, server.url, server.proc.pid)
    finally:
        server.stop()
    log = server.log.read_text(errors="replace")
    if "Traceback" in log:
        report.failures.append("server log has a traceback:\n" + log[log.index("Traceback") :][:3000])
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=100, help="files per `roost flow validate` process")
    parser.add_argument("--write", type=Path, help="also write the mutated documents to this folder")
    args = parser.parse_args()
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
        for doc in generate(args.count, args.seed):
            (args.write / f"{doc.name}.yaml").write_bytes(doc.data)
    with tempfile.TemporaryDirectory(prefix="roost-fuzz-server-") as tmp:
        report = run(args.count, args.seed, Path(tmp), args.batch)
    print(json.dumps(report.figures(), indent=2))
    sys.exit(1 if report.failures else 0)


if __name__ == "__main__":
    main()
