"""Mutated Sloth, OpenSLO and alert-window documents: every import either succeeds or raises a SpecError whose
message starts with the file and names a document — never another exception (a traceback for the user)."""
import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from revwatch.config import Config
from slo.openslo import load_openslo
from slo.rules import rule_groups
from slo.sloth import load_sloth
from slo.spec import SpecError, resolve
from slo.windows import WindowsError, load_alert_windows
from tests.support.servers import FIXTURES

values = st.recursive(st.none() | st.booleans() | st.integers(-5, 200) | st.floats(-1, 200, allow_nan=False) |
                      st.text(max_size=12) | st.sampled_from(["1M", "5m", "1w", "{{.window}}", "Prometheus", "page"]),
                      lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                      max_leaves=8)
OPENSLO_BASE = [
    {"apiVersion": "openslo/v1", "kind": "SLO", "metadata": {"name": "x", "labels": {"t": ["a", "b"]}},
     "spec": {"indicatorRef": "i", "timeWindow": [{"duration": "1w", "isRolling": False, "calendar": {
         "startTime": "2022-01-01 12:00:00", "timeZone": "America/New_York"}}], "budgetingMethod": "Timeslices",
              "objectives": [{"op": "lte", "value": 500, "target": 0.99, "timeSliceTarget": 0.9,
                              "timeSliceWindow": "5m"}],
              "alertPolicies": [{"alertPolicyRef": "p"}]}},
    {"apiVersion": "openslo/v1", "kind": "SLI", "metadata": {"name": "i"}, "spec": {"thresholdMetric": {
        "metricSource": {"type": "revwatch", "spec": {"journey": "p2p", "unit": "ms"}}}}},
    {"apiVersion": "openslo/v1", "kind": "AlertPolicy", "metadata": {"name": "p"},
     "spec": {"conditions": [{"kind": "AlertCondition", "metadata": {"name": "c"}, "spec": {
         "severity": "page", "condition": {"kind": "burnrate", "op": "gt", "threshold": 14.4,
                                           "lookbackWindow": "1h"}}}]}},
]
SLOTH_BASE = yaml.safe_load((FIXTURES / "sloth/examples/getting-started.yml").read_text())
WINDOWS_BASE = yaml.safe_load((FIXTURES / "sloth/windows/7d.yaml").read_text())


def fuzz(n):
    return settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                    database=None)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _mutate(base, data):
    doc = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(values)
    return doc


def _check(load, path: Path):
    try:
        return load(path)
    except (SpecError, WindowsError) as e:
        assert str(e).startswith(f"{path}: "), str(e)
        assert "document" in str(e) or "file" in str(e) or "Sloth SLO" in str(e), str(e)
        return None


@fuzz(200)
@given(data=st.data())
def test_mutated_openslo_never_crashes(tmp_path, data):
    p = tmp_path / "o.yaml"
    p.write_text(yaml.safe_dump_all(_mutate(OPENSLO_BASE, data)))
    slos = _check(load_openslo, p)
    if slos:               # what imports also resolves (or is refused cleanly) and renders rules
        try:
            cfg = Config.model_validate({"journeys": {"p2p": {"start": "a", "end": "b"}}, "openslo_files": [str(p)]})
            for spec in resolve(cfg):
                rule_groups(spec, "http://x")
        except SpecError:
            pass


@fuzz(200)
@given(data=st.data())
def test_mutated_sloth_never_crashes(tmp_path, data):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(_mutate(SLOTH_BASE, data)))
    if _check(load_sloth, p):
        try:
            for spec in resolve(Config.model_validate({"sloth_files": [str(p)]})):
                rule_groups(spec, "http://x")
        except SpecError:
            pass


@fuzz(100)
@given(data=st.data())
def test_mutated_alert_windows_never_crash(tmp_path, data):
    p = tmp_path / "w.yaml"
    p.write_text(yaml.safe_dump(_mutate(WINDOWS_BASE, data)))
    _check(load_alert_windows, p)
