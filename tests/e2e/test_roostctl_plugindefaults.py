"""roostctl plugindefaults against a real server: set (validated, versioned), get, export, revisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_roostctl import Ctl, ctl, secured  # noqa: F401, F811 - the server and runner fixtures

pytestmark = pytest.mark.e2e
RETURN = "io.kestra.plugin.core.debug.Return"
DEFAULTS = f"pluginDefaults:\n  - type: {RETURN}\n    values:\n      format: from defaults\n"
FLOW = f"id: pd\nnamespace: pd.team\ntasks:\n  - id: r\n    type: {RETURN}\n"


def test_plugindefaults_set_get_export_revisions(ctl: Ctl, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "d.yaml").write_text(DEFAULTS)
    set_ = ctl("plugindefaults", "set", "pd", str(tmp_path / "d.yaml"))
    assert set_.returncode == 0, set_.stderr
    assert "revision 1" in set_.stdout
    assert ctl("plugindefaults", "get", "pd").stdout == DEFAULTS
    # an execution of a flow in a child namespace uses the default
    assert ctl.api.post("/flows", content=FLOW).status_code == 200
    ex = ctl.api.post("/executions/pd.team/pd", params={"wait": "true"}).json()
    assert ex["taskRunList"][0]["outputs"]["value"] == "from defaults"
    # an invalid document is refused with its path and line, nothing stored
    (tmp_path / "bad.yaml").write_text(DEFAULTS.replace("format:", "formatt:"))
    bad = ctl("plugindefaults", "set", "pd", str(tmp_path / "bad.yaml"))
    assert bad.returncode == 1 and "pluginDefaults[0].values.formatt" in bad.stderr and "line 4" in bad.stderr
    exported = tmp_path / "out" / "pd.yaml"
    exported.parent.mkdir()
    assert ctl("plugindefaults", "export", "pd", "--to", str(exported)).returncode == 0
    assert exported.read_text() == DEFAULTS
    (tmp_path / "d2.yaml").write_text(DEFAULTS.replace("from defaults", "second"))
    assert ctl("plugindefaults", "set", "pd", str(tmp_path / "d2.yaml")).returncode == 0
    revs = ctl.json("plugindefaults", "revisions", "pd")
    assert [r["revision"] for r in revs] == [2, 1] and {r["author"] for r in revs} == {"ci"}
    assert ctl("plugindefaults", "get", "pd", "--revision", "1").stdout == DEFAULTS
    # the instance scope
    assert ctl("plugindefaults", "set", "--instance", str(tmp_path / "d.yaml")).returncode == 0
    assert ctl.json("plugindefaults", "get", "--instance")["revision"] == 1
    assert ctl("plugindefaults", "get").returncode == 2
    assert ctl("plugindefaults", "get", "nothing.there").stdout == ""
