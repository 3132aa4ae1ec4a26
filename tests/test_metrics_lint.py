"""`/metrics` passes `promtool check metrics` (the real promtool) with no warning: base units, counters with
_total, no summary-shaped gauges (journey lag is a histogram-free gauge family without a `quantile` label), and
no doubled prefixes such as `revwatch_probe_probe_up`."""
import datetime as dt
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.slo_data import add_events
from tests.support.tools import needs

PROMTOOL = shutil.which("promtool")
M = dt.timedelta(minutes=1)
CFG = """
journeys: {p2p: {start: payment.settled, end: payment.posted, no_data_alert: 30m}}
slos:
  - {name: pp, journey: p2p, objective: 0.99, window: 1d, sli: {kind: journey_latency, threshold: 15m}}
  - {name: odoo-errors, objective: 0.999, window: 1d, group_by: [service],
     sli: {kind: span_ratio, bad_when: {StatusCode: Error}}}
probes:
  - {name: billing-api, type: http, url: "http://127.0.0.1:9/health", timeout: 2s}
"""


@pytest.fixture
def exposition(api_factory):
    api = api_factory(CFG)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    add_events(api.ctx.store, [("payment.settled", "pay_1", now - 30 * M, {}),
                               ("payment.posted", "pay_1", now - 25 * M, {}),
                               ("payment.settled", "pay_2", now - 40 * M, {}),
                               ("payment.posted", "pay_2", now - 5 * M, {}),
                               ("payment.settled", "pay_3", now - 20 * M, {})])
    api.ctx.slo.evaluate_and_cache()
    api.ctx.probes.run_once()
    r = api.post("/api/v1/events", json=[{"event_id": "e1", "type": "payment.settled", "correlation_id": "pay_9",
                                           "occurred_at": now.isoformat(), "source": "stripe"}])
    assert r.status_code == 200, r.text
    api.drain()
    text = api.get("/metrics").text
    assert "revwatch_journey_lag" in text and "revwatch_probe_up" in text and "revwatch_slo_burn_rate" in text
    return text


@needs(PROMTOOL, "promtool not installed (make test installs the prometheus package)")
def test_promtool_check_metrics_is_clean(exposition):
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr


def test_names_the_dashboards_and_docs_rely_on(exposition):
    names = set(re.findall(r"^# TYPE (\S+) (\S+)", exposition, re.M))
    assert ("revwatch_journey_lag_seconds", "histogram") not in names      # the lag is gauges per quantile …
    assert ("revwatch_journey_lag_quantile_seconds", "gauge") in names        # … under a non-summary name
    assert ("revwatch_probe_up", "gauge") in names and ("revwatch_probe_duration_seconds", "gauge") in names
    assert not any(n.startswith("revwatch_probe_probe_") for n, _ in names)
    lag = re.findall(r'^revwatch_journey_lag_quantile_seconds\{journey="p2p",q="([^"]+)"\} (\S+)', exposition, re.M)
    assert dict(lag).keys() >= {"0.5", "0.99"}, lag


GOLDEN = Path(__file__).parent / "golden" / "metrics" / "exposition-shape.txt"


def _shape(text: str) -> str:
    """The exposition without its values: every family's HELP and TYPE line and every series name with its label
    names (label values and sample values change from run to run; names, types, help and labels are the
    interface that dashboards, rules and docs rely on)."""
    out: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP") or line.startswith("# TYPE"):
            out.add(line)
        elif line and not line.startswith("#"):
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s", line)
            assert m, line
            labels = sorted(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
            out.add(f"{m.group(1)}{{{','.join(labels)}}}")
    return "\n".join(sorted(out)) + "\n"


def test_exposition_shape_matches_the_golden_file(exposition):
    """Regenerate after an intended change with `REVWATCH_UPDATE_GOLDEN=1 pytest tests/test_metrics_lint.py`."""
    shape = _shape(exposition)
    if os.environ.get("REVWATCH_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(shape)
    assert shape == GOLDEN.read_text()
