"""Ownership keys (owner, team, service, tier, runbook) on SLOs and journeys: validated, inherited from the journey,
in the SLO document and on every generated alert."""
import pytest

from revwatch.config import ConfigError, load_config
from slo.engine import SloEngine
from slo.rules import native_rules
from slo.spec import resolve

CFG = """
journeys:
  o2c: {start: order.created, end: invoice.paid, owner: ana@example.com, team: billing, tier: 1,
        runbook: "https://wiki.example.com/o2c"}
slos:
  - {name: inherits, journey: o2c, objective: 0.99, window: 1d, sli: {kind: journey_latency, threshold: 15m}}
  - {name: own, journey: o2c, objective: 0.99, window: 1d, sli: {kind: journey_latency, threshold: 15m},
     owner: bo, team: payments, service: gateway, tier: tier-0, runbook: "http://rb.local/own"}
  - {name: nobody, objective: 0.99, window: 1d, sli: {kind: span_ratio, bad_when: {StatusCode: Error}}}
"""


def test_slo_keys_fall_back_to_the_journey(make_config):
    specs = {s.name: s for s in resolve(make_config(CFG))}
    assert specs["inherits"].ownership.as_dict() == {
        "owner": "ana@example.com", "team": "billing", "service": None, "tier": "1",
        "runbook": "https://wiki.example.com/o2c"}
    assert specs["own"].ownership.as_dict() == {"owner": "bo", "team": "payments", "service": "gateway",
                                                "tier": "tier-0", "runbook": "http://rb.local/own"}
    assert set(specs["nobody"].ownership.as_dict().values()) == {None}
    assert specs["own"].ownership.matches("PAY") and not specs["own"].ownership.matches("billing")


def test_the_slo_document_carries_all_five_keys(store, make_config):
    docs = {r.spec.name: r.as_dict() for r in SloEngine(store, make_config(CFG)).evaluate()}
    assert docs["inherits"]["team"] == "billing" and docs["inherits"]["runbook"] == "https://wiki.example.com/o2c"
    assert docs["own"]["service"] == "gateway"
    assert {k: docs["nobody"][k] for k in ("owner", "team", "service", "tier", "runbook")} == dict.fromkeys(
        ("owner", "team", "service", "tier", "runbook"))


def test_generated_alerts_route_on_ownership(make_config):
    spec = next(s for s in resolve(make_config(CFG)) if s.name == "own")
    alerts = [r for r in native_rules(spec, "http://rw")["rules"] if "alert" in r]
    assert {"RevwatchSLOBurnRatePage", "RevwatchSLOBurnRateTicket"} <= {r["alert"] for r in alerts}
    for rule in alerts:
        assert {k: rule["labels"][k] for k in ("owner", "team", "service", "tier")} == {
            "owner": "bo", "team": "payments", "service": "gateway", "tier": "tier-0"}
        assert rule["annotations"]["runbook_url"] == "http://rb.local/own"
        assert "runbook" not in rule["labels"]


@pytest.mark.parametrize("key, value, words", [
    ("runbook", "wiki/o2c", "runbook must be an absolute http:// or https:// URL"),
    ("runbook", "ftp://x/y", "runbook must be an absolute http:// or https:// URL"),
    ("tier", "tier one", "tier must be 1-32 letters"),
    ("team", "''", "must be a non-empty string"),
    ("owner", "\"a\\nb\"", "must be one line"),
])
def test_bad_ownership_names_the_key(tmp_path, key, value, words):
    p = tmp_path / "rw.yaml"
    p.write_text("slos:\n - {name: a, objective: 0.9, sli: {kind: span_ratio, bad_when: {StatusCode: Error}}, "
                 f"{key}: {value}}}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert f"slos['a'].{key}" in str(e.value) and words in str(e.value), str(e.value)


def test_overview_groups_by_team_and_searches_by_owner(api_factory):
    from tests.test_webui import sign_in
    api = api_factory(CFG)
    api.ctx.slo.evaluate_and_cache()
    sign_in(api)
    html = api.client.get("/ui/", params={"by": "team"}).text
    heads = [h for h in ("team billing", "team payments", "no team") if h in html]
    assert heads == ["team billing", "team payments", "no team"]
    assert html.index("team billing") < html.index(">inherits<") < html.index("team payments") < html.index(">own<") \
        < html.index("no team") < html.index(">nobody<")
    found = api.client.get("/ui/", params={"q": "PAYMENTS"}).text           # team "payments"
    assert ">own<" in found and ">nobody<" not in found
