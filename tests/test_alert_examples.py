"""What alerts/examples ships stays true: the rules are exactly what `revwatch slo rules` generates for the example
config (regenerate with `revwatch slo rules -o alerts/examples/rules --config revwatch/example-config.yaml
--base-url http://127.0.0.1:8317`), and the Alertmanager receiver config passes `amtool check-config`."""
import os
import shutil
import subprocess

import pytest

from revwatch.config import load_config
from tests.support.servers import ROOT, revwatch_cmd

EXAMPLES = ROOT / "alerts" / "examples"


def test_shipped_rules_are_what_the_generator_writes_for_the_example_config(tmp_path):
    r = revwatch_cmd("slo", "rules", "-o", str(tmp_path), "--config", str(ROOT / "revwatch/example-config.yaml"),
                     "--base-url", "http://127.0.0.1:8317", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    generated = {p.name: p.read_text() for p in tmp_path.glob("*.yml")}
    shipped = {p.name: p.read_text() for p in (EXAMPLES / "rules").glob("*.yml")}
    assert generated and shipped == generated, "alerts/examples/rules is stale: regenerate it (see module docstring)"


@pytest.mark.skipif(not shutil.which("amtool") and not os.environ.get("CI"),
                    reason="amtool comes with Debian's prometheus-alertmanager")
def test_example_alertmanager_config_is_valid():
    r = subprocess.run(["amtool", "check-config", str(EXAMPLES / "alertmanager.yml")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "/api/v1/alerts/alertmanager" in (EXAMPLES / "alertmanager.yml").read_text()


def test_example_config_alerts_section_is_valid():
    cfg = load_config(ROOT / "revwatch/example-config.yaml")
    assert cfg.alerts.impact.classes[0].name == "P1"
