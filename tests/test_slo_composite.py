"""Composite SLOs: hand counts for both roll-ups, their own budget and alerts, and validation."""
import datetime as dt

import pytest

from revwatch.config import ConfigError, load_config
from slo.engine import SloEngine
from slo.spec import SpecError, resolve
from tests.support.slo_data import anchor
from tests.test_slo_amount import money_data  # noqa: F401  (fixture)

M = dt.timedelta(minutes=1)


def traffic(store, start, minutes, service, every_nth_bad=0):
    """10 spans a minute, one every 6 s from `start`; every n-th fails (0: none)."""
    t0 = int(start.timestamp())
    bad = f"number % {every_nth_bad} = 0" if every_nth_bad else "0"
    store.command(f"""
        INSERT INTO {store.table('spans')} (Timestamp, TraceId, SpanId, ServiceName, SpanName, StatusCode, Duration,
                                           CorrelationId)
        SELECT fromUnixTimestamp64Nano(toInt64(({t0} + number * 6) * 1000000000), 'UTC'),
               lower(hex(MD5(concat('{service}', toString(number))))) AS tid, substring(tid, 1, 16), '{service}',
               'call', if({bad}, 'Error', 'Ok'), 1000000, tid
        FROM numbers({minutes * 10})""")


def cfg_text(rollup, weights="{a: 3, b: 1, c: 2}"):
    return f"""
slos:
  - {{name: a, objective: 0.99, window: 1d, sli: {{kind: span_ratio, service: sa, bad_when: {{StatusCode: Error}}}}}}
  - {{name: b, objective: 0.99, window: 1d, sli: {{kind: span_ratio, service: sb, bad_when: {{StatusCode: Error}}}}}}
  - {{name: c, objective: 0.99, window: 1d, sli: {{kind: span_ratio, service: sc, bad_when: {{StatusCode: Error}}}}}}
  - {{name: o2c, objective: 0.99, window: 1d, team: finance,
      composite: {{members: [a, b, c], rollup: {rollup}, weights: {weights}}}}}
"""


@pytest.fixture
def two_members(store):
    T = anchor(3)
    traffic(store, T - 25 * 60 * M, 26 * 60, "sa", every_nth_bad=10)     # a: 10 % bad — SLI 0.9, burn 10
    traffic(store, T - 25 * 60 * M, 26 * 60, "sb")                        # b: all good; c: no data at all
    return T - dt.timedelta(seconds=30)           # every window of whole minutes holds 10 spans a minute exactly


def test_weighted_rollup_hand_count(store, make_config, two_members):
    [r] = SloEngine(store, make_config(cfg_text("weighted"))).evaluate(two_members, names=["o2c"])
    for w in ("5m", "1h", "1d", "slo"):
        # c has no data: left out, weights renormalised over a (3) and b (1): (3 · 0.9 + 1 · 1.0) / 4
        assert r.windows[w].sli == pytest.approx(0.925) and r.windows[w].total == 4, w
        assert r.windows[w].burn_rate == pytest.approx(7.5), w
    assert r.budget["remaining_ratio"] == pytest.approx(1 - 7.5)
    assert r.state == "page"                                        # its own burn-rate tiers (1d period)
    d = r.as_dict()
    assert d["kind"] == "composite" and d["team"] == "finance"
    assert [a for a in d["alerts"] if a["severity"] == "page" and a["firing"]]


def test_least_healthy_rollup_hand_count(store, make_config, two_members):
    res = {r.spec.name: r for r in SloEngine(store, make_config(cfg_text("least_healthy"))).evaluate(two_members)}
    r = res["o2c"]
    for w in ("5m", "1h", "1d", "slo"):
        # a burns 10x its budget, b 0: a decides; SLI in the composite's objective: 1 − 10 · 0.01
        assert r.windows[w].burn_rate == pytest.approx(10.0) and r.windows[w].sli == pytest.approx(0.9), w
    assert r.budget["remaining_ratio"] == pytest.approx(res["a"].budget["remaining_ratio"]) == pytest.approx(-9)
    assert {"a", "b", "c", "o2c"} == set(res)                       # members are evaluated and reported too


def test_composite_validation(tmp_path, make_config):
    for text, words in [
        ("composite: {members: [a], rollup: weighted}", "at least 2 items"),
        ("composite: {members: [a, b], rollup: best}", "'weighted' or 'least_healthy'"),
        ("composite: {members: [a, b], weights: {z: 1}}", "weights: 'z' is not a member"),
        ("composite: {members: [a, b], weights: {a: 0}}", "weights must be positive"),
        ("composite: {members: [a, b]}, window: calendar_month", "rolling window"),
        ("composite: {members: [a, b]}, sli: {kind: span_ratio, bad_when: {StatusCode: Error}}", "has no sli"),
    ]:
        p = tmp_path / "rw.yaml"
        p.write_text("slos:\n - {name: x, objective: 0.9, " + text + "}\n")
        with pytest.raises(ConfigError, match=words):
            load_config(p)
    with pytest.raises(SpecError, match="composite.members: unknown SLO 'zz'"):
        resolve(make_config(cfg_text("weighted", "{}").replace("members: [a, b, c]", "members: [a, zz]")))


FIXTURE = __import__("pathlib").Path(__file__).parent / "fixtures/openslo/v2alpha-composite/order-to-cash.yaml"
MEMBERS = """
slos:
  - {name: checkout, objective: 0.99, window: 1d, sli: {kind: span_ratio, service: sa, bad_when: {StatusCode: Error}}}
  - {name: settlement, objective: 0.99, window: 1d, sli: {kind: span_ratio, service: sb, bad_when: {StatusCode: Error}}}
openslo_v2alpha_files: [%s]
"""


def test_openslo_v2alpha_composite_import(make_config):
    specs = {s.name: s for s in resolve(make_config(MEMBERS % FIXTURE))}
    c = specs["order-to-cash"].config
    assert c.composite is not None and c.composite.members == ["checkout", "settlement"]
    assert c.composite.rollup == "weighted" and c.composite.weights == {"settlement": 3.0}
    assert c.objective == pytest.approx((0.99 + 3 * 0.995) / 4)     # the weight-averaged member target
    assert (c.window, c.service, c.display_name) == ("28d", "payments", "Order to cash")


def test_openslo_v2alpha_composite_evaluates_on_its_weights(store, make_config, two_members, tmp_path):
    # checkout (sa) is 10 % bad, settlement (sb) all good: weighted 1 and 3 → (1 · 0.9 + 3 · 1.0) / 4
    (tmp_path / "c.yaml").write_text(FIXTURE.read_text().replace("duration: 28d", "duration: 1d"))
    [r] = SloEngine(store, make_config(MEMBERS % (tmp_path / "c.yaml"))).evaluate(two_members, names=["order-to-cash"])
    assert r.windows["1h"].sli == pytest.approx(0.975) and r.windows["1h"].total == 4


@pytest.mark.parametrize("old,new,words", [
    ("sliRef: settlement-sli", "sliRef: nope-sli", r"document 1: spec.objectives\[1\].sliRef: 'nope-sli' is the "),
    ("compositeWeight: 3", "compositeWeight: 0", r"spec.objectives\[1\].compositeWeight: must be a number > 0"),
    ("budgetingMethod: Occurrences", "budgetingMethod: Timeslices", "spec.budgetingMethod: a composite is"),
    ("isRolling: true", "isRolling: false", "spec.timeWindow: exactly one rolling window"),
    ("    - sliRef: checkout-sli\n", "    - sli: {metadata: {name: x}, spec: {}}\n",
     r"spec.objectives\[0\].sli: an inline SLI is not imported"),
    ("      target: 0.99\n", "", r"spec.objectives\[0\].target: give exactly one of target and targetPercent"),
    ("kind: SLO", "kind: Service", "kind: only BudgetAdjustment and composite SLO"),
    ("    - sliRef: settlement-sli\n      target: 0.995\n      compositeWeight: 3\n", "",
     "spec.objectives: List should have at least 2 items"),
])
def test_openslo_v2alpha_composite_refusals_name_file_document_field(tmp_path, make_config, old, new, words):
    text = FIXTURE.read_text()
    assert old in text
    (tmp_path / "c.yaml").write_text(text.replace(old, new))
    with pytest.raises(SpecError, match=words) as e:
        resolve(make_config(MEMBERS % (tmp_path / "c.yaml")))
    assert str(e.value).startswith(f"{tmp_path / 'c.yaml'}: document 1: ") and "\n" not in str(e.value)


# --- grouped members (money-weighted: one part per currency), composites of composites ------------------------
MONEY = """
journeys: {p2p: {start: payment.settled, end: payment.posted}}
slos:
  - {name: pp-money, journey: p2p, objective: 0.99, window: 1d, budgeting: amount,
     sli: {kind: journey_latency, threshold: 15m}}
  - {name: pp-count, journey: p2p, objective: 0.99, window: 1d, sli: {kind: journey_latency, threshold: 15m}}
  - {name: o2c-money, objective: 0.99, window: 1d,
     composite: {members: [pp-money, pp-count], rollup: %s, weights: {pp-money: 2}}}
"""
# tests/test_slo_amount.py's money_data, hand counts per window (decided instances only):
#   SLO window (1d): EUR good 1000.10 of 1250.16; USD good 10.00 of 40.00; count 3 good of 6
#   1h: EUR the same (A, B, C); USD 0 of 30.00 (U2; U1 decided T-99m); count 1 of 4 (A; B, C, U2 bad)
SLI_EUR = 1000.10 / 1250.16


def test_weighted_rollup_with_a_money_member_in_two_currencies(store, make_config, money_data):  # noqa: F811
    [r] = SloEngine(store, make_config(MONEY % "weighted")).evaluate(money_data, names=["o2c-money"])
    # pp-money's weight 2 is split equally between its currencies (1 each, never summed), pp-count weighs 1
    assert r.windows["slo"].total == 3
    assert r.windows["slo"].sli == pytest.approx((1 * SLI_EUR + 1 * 0.25 + 1 * 0.5) / 3)
    assert r.windows["1h"].sli == pytest.approx((1 * SLI_EUR + 1 * 0.0 + 1 * 0.25) / 3)
    assert r.windows["5m"].total == 0                       # no part decided anything in the last 5 minutes
    sli = (SLI_EUR + 0.75) / 3
    assert r.budget["remaining_ratio"] == pytest.approx(1 - (1 - sli) / 0.01)
    assert r.as_dict()["composite"]["parts"]["slo"] == ["pp-money[EUR]", "pp-money[USD]", "pp-count"]


def test_least_healthy_rollup_with_a_money_member_in_two_currencies(store, make_config,
                                                                    money_data):  # noqa: F811
    [r] = SloEngine(store, make_config(MONEY % "least_healthy")).evaluate(money_data, names=["o2c-money"])
    # burns in the SLO window: EUR (250.06 / 1250.16) / 0.01 = 20.0; USD 0.75 / 0.01 = 75; count 0.5 / 0.01 = 50.
    # USD decides (summed with EUR it would read 280.06 / 1290.16, burn 21.7, and hide behind the count's 50)
    assert r.windows["slo"].burn_rate == pytest.approx(75) and r.windows["slo"].sli == pytest.approx(0.25)
    assert r.budget["remaining_ratio"] == pytest.approx(-74)
    assert r.as_dict()["composite"]["parts"]["slo"] == ["pp-money[USD]"]
    assert r.windows["1h"].burn_rate == pytest.approx(100)  # USD: nothing good in the last hour
    assert r.state == "page"


def test_composite_of_composites(store, make_config, two_members):
    text = cfg_text("weighted", "{a: 3}").replace("members: [a, b, c]", "members: [a, b]") + """
  - {name: outer-w, objective: 0.99, window: 1d, composite: {members: [o2c, b], rollup: weighted}}
  - {name: outer-lh, objective: 0.99, window: 12h, composite: {members: [o2c, c], rollup: least_healthy}}
"""
    res = {r.spec.name: r for r in SloEngine(store, make_config(text)).evaluate(two_members,
                                                                                 names=["outer-w", "outer-lh"])}
    assert set(res) == {"outer-w", "outer-lh"}
    # o2c = (3 · 0.9 + 1 · 1.0) / 4 = 0.925 (burn 7.5); outer-w = (0.925 + 1.0) / 2
    assert res["outer-w"].windows["1h"].sli == pytest.approx(0.9625)
    assert res["outer-w"].windows["slo"].sli == pytest.approx(0.9625)
    # outer-lh: c has no data, o2c burns 7.5 in every window, its own 12h window included (carried down to a, b)
    assert res["outer-lh"].windows["slo"].burn_rate == pytest.approx(7.5)
    assert res["outer-lh"].as_dict()["composite"]["parts"]["slo"] == ["o2c"]


def test_composite_cycle_and_prometheus_member_are_config_errors(make_config):
    cyc = cfg_text("weighted", "{}").replace("members: [a, b, c]", "members: [a, x]") + """
  - {name: x, objective: 0.99, window: 1d, composite: {members: [y, b]}}
  - {name: y, objective: 0.99, window: 1d, composite: {members: [o2c, c]}}
"""
    with pytest.raises(SpecError, match=r"slos: o2c: composite.members: composite SLOs contain each other: "
                                        r"o2c -> x -> y -> o2c$"):
        resolve(make_config(cyc))
    # a Prometheus-backed member: its recording rules (5m … 3d and its 30d period) lack the composite's 28d window
    prom = PROM_CFG.replace("o2c, objective: 0.99, window: 30d", "o2c, objective: 0.99, window: 28d")
    assert prom != PROM_CFG
    with pytest.raises(SpecError, match=r"'myservice-requests-availability' is Prometheus-backed and its recording "
                                        r"rules cover 5m, 30m, 1h, 2h, 6h, 1d, 3d, 30d only; the composite needs 4w "):
        resolve(make_config(prom % "weighted"))


# --- OpenSLO v2alpha export: export → import gives the same config ---------------------------------------------
ROUND_TRIP = """
journeys: {p2p: {start: payment.settled, end: payment.posted}}
slos:
  - {name: checkout, objective: 0.99, window: 1d, sli: {kind: span_ratio, service: sa, bad_when: {StatusCode: Error}}}
  - {name: pp-money, journey: p2p, objective: 0.995, window: 1d, budgeting: amount,
     sli: {kind: journey_latency, threshold: 15m}}
"""
COMPOSITES = [
    {"name": "Order_To_Cash", "objective": 0.9925, "window": "28d", "team": "finance", "owner": "ana",
     "tier": "1", "runbook": "https://wiki.example.com/o2c", "description": "checkout and money, money weighted 3",
     "display_name": "Order to cash", "labels": {"domain": "o2c"}, "annotations": {"note": "month-end"},
     "no_data_after": "2h",
     "composite": {"members": ["checkout", "pp-money"], "rollup": "weighted", "weights": {"pp-money": 3}},
     "alerting": {"min_events": 5, "exhaustion": [{"within": "4h", "severity": "ticket", "burn_window": "1h"}]}},
    {"name": "worst-of", "objective": 0.99, "window": "7d", "service": "payments",
     "composite": {"members": ["Order_To_Cash", "checkout"], "rollup": "least_healthy"},
     "alerting": {"page": [], "catalogue": "sloth-7d"}},
]


def test_openslo_v2alpha_composite_export_imports_to_the_same_config(make_config, tmp_path):
    import yaml

    from slo.export import export_openslo
    from slo.openslo_v2 import export_v2alpha
    specs = resolve(make_config(ROUND_TRIP + "  " + "\n  ".join(
        f"- {__import__('json').dumps(c)}" for c in COMPOSITES) + "\n"))
    text = export_v2alpha(specs, [], {})
    docs = list(yaml.safe_load_all(text))
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [("SLO", "order-to-cash"), ("SLO", "worst-of")]
    # each member's own objective is its target, its weight the compositeWeight (what OpenSLO tools read)
    assert docs[0]["spec"]["objectives"] == [{"sliRef": "checkout-sli", "target": 0.99},
                                             {"sliRef": "pp-money-sli", "target": 0.995, "compositeWeight": 3.0}]
    assert "composite" not in export_openslo(specs)          # v1 has no composite: left out of the v1 export
    (tmp_path / "v2.yaml").write_text(text)
    back = {s.name: s for s in resolve(make_config(ROUND_TRIP + f"openslo_v2alpha_files: [{tmp_path / 'v2.yaml'}]\n"))}
    for spec in specs:
        assert back[spec.name].config.model_dump() == spec.config.model_dump(), spec.name
        assert back[spec.name].tiers == spec.tiers and back[spec.name].ownership == spec.ownership


def test_cli_exports_composites_as_v2alpha(tmp_path):
    from tests.support.servers import revwatch_cmd
    cfg = tmp_path / "rw.yaml"
    cfg.write_text(cfg_text("least_healthy"))
    r = revwatch_cmd("slo", "export", "--format", "openslo-v2alpha", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    [doc] = list(__import__("yaml").safe_load_all(r.stdout))
    assert doc["apiVersion"] == "openslo.com/v2alpha" and doc["metadata"]["annotations"]["revwatch.io/rollup"] == \
        "least_healthy"
    assert [o["sliRef"] for o in doc["spec"]["objectives"]] == ["a-sli", "b-sli", "c-sli"]
    r = revwatch_cmd("slo", "export", "--format", "v3", "--config", str(cfg))
    assert r.returncode == 2 and "openslo-v2alpha" in r.stderr


SLOTH = __import__("pathlib").Path(__file__).parent / "fixtures/sloth/examples/getting-started.yml"
PROM_CFG = f"""
sloth_files: [{SLOTH}]
prometheus_url: http://prometheus.invalid:9090
slos:
  - {{name: a, objective: 0.99, window: 1d, sli: {{kind: span_ratio, service: sa, bad_when: {{StatusCode: Error}}}}}}
  - {{name: o2c, objective: 0.99, window: 30d, composite: {{members: [a, myservice-requests-availability],
                                                          rollup: %s}}}}
"""


def fake_prometheus(error_ratio: float, windows: tuple[str, ...]):
    """A Prometheus answering the reader's three queries: the member's error ratio in `windows`, nothing else."""
    import httpx

    from slo.prometheus_values import PrometheusReader

    def handle(request):
        q = request.url.params["query"]
        rows = [{"metric": {"__name__": f"slo:sli_error:ratio_rate{w}", "sloth_id": "myservice-requests-availability",
                            "sloth_window": w}, "value": [0, str(error_ratio)]} for w in windows
                if q.startswith("{__name__")]
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": rows}})
    return PrometheusReader("http://prometheus.invalid:9090", transport=httpx.MockTransport(handle))


@pytest.mark.parametrize("rollup", ["weighted", "least_healthy"])
def test_prometheus_backed_member_is_read_from_prometheus(store, make_config, two_members, rollup):
    engine = SloEngine(store, make_config(PROM_CFG % rollup))
    engine.prometheus = fake_prometheus(0.05, ("30m", "1h", "2h", "6h", "1d", "3d", "30d"))    # no 5m ratio
    [r] = engine.evaluate(two_members, names=["o2c"])
    # a: 10 % bad, SLI 0.9, burn 10 (objective 0.99); the Prometheus member: 5 % bad, SLI 0.95, burn 50 (99.9 %)
    if rollup == "weighted":
        assert r.windows["1h"].sli == pytest.approx((0.9 + 0.95) / 2) and r.windows["1h"].total == 2
        # the slo window: its 30d recording, and a's 30d window, which holds all of a's traffic up to at: one span
        # every 6 s from T-25h to at = T-30s inclusive, k = 0 … 14,995 (14,996 spans), k = 0, 10, … bad (1,500)
        assert r.windows["slo"].sli == pytest.approx((1 - 1500 / 14996 + 0.95) / 2)
        assert r.windows["5m"].sli == pytest.approx(0.9) and r.windows["5m"].total == 1   # no 5m ratio: left out
    else:
        assert r.windows["1h"].burn_rate == pytest.approx(50) and r.windows["slo"].burn_rate == pytest.approx(50)
        assert r.as_dict()["composite"]["parts"]["slo"] == ["myservice-requests-availability"]
        assert r.windows["5m"].burn_rate == pytest.approx(10)
    assert r.coverage.windows["1h"].covered == 60


def test_prometheus_member_without_prometheus_is_left_out(store, make_config, two_members):
    engine = SloEngine(store, make_config(PROM_CFG % "weighted"))
    engine.prometheus = fake_prometheus(0.05, ())
    [r] = engine.evaluate(two_members, names=["o2c"])
    assert r.windows["1h"].sli == pytest.approx(0.9) and r.windows["1h"].total == 1
