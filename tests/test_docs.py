"""docs/ works verbatim: the Prometheus and Alertmanager files pass the real promtool/amtool with the rules and
key files the docs tell the user to create, `dashboards export` writes the documented layout, and the README
only points at files that exist."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from revwatch.cli import main

from tests.support.tools import needs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLE = ROOT / "revwatch" / "example-config.yaml"


def yaml_block(page: str, first_line: str) -> str:
    for block in re.findall(r"```yaml\n(.*?)```", (DOCS / page).read_text(), re.S):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"no yaml block starting with {first_line!r} in {page}")


def cli(*argv) -> int:
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    return e.value.code


@needs(shutil.which("promtool"), "promtool not installed (make test installs it)")
def test_prometheus_yml_with_generated_rules_passes_promtool(tmp_path, capsys):
    (tmp_path / "prometheus.yml").write_text(yaml_block("prometheus.md", "# prometheus.yml"))
    (tmp_path / "revwatch-read.key").write_text("rw_00000000_x\n")
    assert cli("slo", "rules", "-o", str(tmp_path / "rules"), "--config", str(EXAMPLE)) == 0
    r = subprocess.run(["promtool", "check", "config", "prometheus.yml"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout + r.stderr and "revwatch-slo-payment-posting-15m.rules.yml" in r.stdout + r.stderr


@needs(shutil.which("amtool"), "amtool not installed")
def test_alertmanager_yml_passes_amtool_and_targets_the_receiver_route(tmp_path):
    text = yaml_block("prometheus.md", "# alertmanager.yml")
    (tmp_path / "alertmanager.yml").write_text(text)
    (tmp_path / "revwatch-ingest.key").write_text("rw_00000000_x\n")
    r = subprocess.run(["amtool", "check-config", "alertmanager.yml"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    hook = yaml.safe_load(text)["receivers"][0]["webhook_configs"][0]
    assert hook["url"].endswith("/api/v1/alerts/alertmanager")
    assert hook["http_config"]["authorization"]["type"] == "Bearer"


def test_dashboards_export_writes_the_documented_layout(tmp_path, capsys):
    assert cli("dashboards", "export", "-o", str(tmp_path / "grafana")) == 0
    listed = re.findall(r"^(grafana/\S+)", (DOCS / "grafana.md").read_text(), re.M)
    assert len(listed) == 5
    for rel in listed:
        assert (tmp_path / rel).is_file(), rel
    ds = yaml.safe_load((tmp_path / "grafana/provisioning/datasources/revwatch.yaml").read_text())
    assert ds["datasources"][0]["url"] == "$PROMETHEUS_URL"                 # not a fixed address
    prov = yaml.safe_load((tmp_path / "grafana/provisioning/dashboards/revwatch.yaml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/revwatch"


def test_readme_points_only_at_files_that_exist():
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme)
    assert any(link.startswith("docs/") for link in links)
    for link in links:
        assert (ROOT / link).exists(), link
    for page in DOCS.glob("*.md"):
        for link in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (DOCS / link).exists(), (page.name, link)
    assert "../shared" not in readme


def test_code_cites_only_docs_that_are_in_the_repository():
    """Comments and docstrings point at docs/ files of this repository (the design contract outside it is not
    shipped): no "DESIGN §N", and every docs file named exists."""
    import re
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    cited, design = set(), []
    for path in root.rglob("*.py"):
        if any(part.startswith(".") or part in ("output", "build") for part in path.relative_to(root).parts):
            continue
        text = path.read_text(errors="replace")
        if path.name != "test_docs.py" and re.search(r"DESIGN(\.md)? §", text):
            design.append(str(path.relative_to(root)))
        cited |= set(re.findall(r"\bdocs/([\w-]+\.md)", text))
    assert design == []
    assert cited and all((root / "docs" / name).is_file() for name in cited), cited
