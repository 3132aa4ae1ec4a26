"""`revwatch demo` tells the truth: a healthy baseline that meets its objectives, two announced incidents that burn
budget (one pages now), budgets that mean something (none overspent), and where-to-look lines that work as printed."""
import json
import re
import subprocess
import sys
from pathlib import Path

from revwatch.sim.demo import DEMO_DAYS, INCIDENTS
from tests.support.servers import free_port

RW = str(Path(sys.executable).with_name("revwatch"))


def test_demo_baseline_incidents_and_where_to_look(tmp_path):
    data = tmp_path / "demo"
    # the demo as `make run` runs it: its budgets are sized for the 7-day SLO windows (with 4 days of history the
    # hour of gateway latency alone can overspend adyen's budget, depending on the draw)
    r = subprocess.run([RW, "demo", "--no-live", "--days", f"{DEMO_DAYS:g}", "--data-dir", str(data),
                        "--port", str(free_port())], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "Traceback" not in out, out[-2000:]
    for n, inc in enumerate(INCIDENTS, 1):
        assert f"incident {n} ({inc.slo}): {inc.story}" in out
    assert re.search(r"PAGE payment-posting-15m: burn", out)
    # the injected billing faults and reconciliation breakers are real findings on the anomalies page
    m = re.search(r"anomalies: (\d+) invoices billing the wrong amount, (\d+) open payments likely to fail", out)
    assert m and int(m.group(1)) > 0 and int(m.group(2)) > 0, out[-3000:]
    assert f"  {RW} slo status" in out and f"export REVWATCH_CONFIG={data}/revwatch.yaml" in out
    keys = dict(re.findall(r"^  export (REVWATCH_CONFIG)=(\S+)$", out, re.M))
    keys.update(re.findall(r"(REVWATCH_\w+_KEY)=(\S+)", out))
    assert set(keys) == {"REVWATCH_CONFIG", "REVWATCH_READ_KEY", "REVWATCH_INGEST_KEY", "REVWATCH_ADMIN_KEY"}

    status = subprocess.run([RW, "slo", "status", "--json"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env={**keys, "PATH": "/usr/bin:/bin"})
    assert status.returncode == 0, status.stderr
    slos = json.loads(status.stdout)["slos"]
    hit = {i.slo for i in INCIDENTS}
    for s in slos:
        assert s["budget"]["remaining_ratio"] > 0, s                    # windows hold enough history
        if s["name"] not in hit:
            assert s["sli"] >= s["objective"] and s["state"] == "ok", s  # the healthy baseline
    posting = [s for s in slos if s["name"] == "payment-posting-15m"]
    assert posting[0]["state"] == "page" and posting[0]["budget"]["remaining_ratio"] < 1
    assert min(s["budget"]["remaining_ratio"] for s in slos if s["name"] == "gateway-latency-2s") < 0.95
