"""Generated Prometheus rule files: golden files for the example config, one alert per SLO and severity, annotations
people can use, promtool-clean; Sloth imports generate Sloth's own rules (compared with Sloth's examples/_gen after
parsing the PromQL); every upstream Sloth file is imported or refused with a message naming file, document, field.

Regenerate the golden files after an intended change with `REVWATCH_UPDATE_GOLDEN=1 pytest tests/test_slo_rules.py`.
"""
import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import promql_parser
import pytest
import yaml

import revwatch
from revwatch.config import Config, load_config
from revwatch.units import format_duration
from slo.forecast import PAGE_WITHIN
from slo.rules import render, rule_groups, write_rules
from slo.sloth import SlothError, load_sloth
from slo.spec import resolve
from tests.support.servers import FIXTURES

GOLDEN = Path(__file__).parent / "golden" / "rules"
SLOTH = FIXTURES / "sloth"
PROMTOOL = shutil.which("promtool")
need_promtool = pytest.mark.skipif(not PROMTOOL and not os.environ.get("CI"), reason="promtool not installed")
EXAMPLE = Path(revwatch.__file__).with_name("example-config.yaml")
GROUPED = """
journeys: {p2p: {start: payment.settled, end: payment.posted}}
server: {external_url: "https://revwatch.example.com/"}
slos:
  - name: payments-by-gateway
    journey: p2p
    objective: 0.99
    window: 7d
    group_by: [gateway]
    labels: {team: payments}
    sli: {kind: journey_latency, threshold: 15m}
    alerting: {min_events: 20, ticket_alert: {labels: {channel: "#payments"}}}
"""


def _golden_check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("REVWATCH_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"golden file {path} missing (run with REVWATCH_UPDATE_GOLDEN=1)"
    assert text == path.read_text(), f"{name} differs from its golden file"


def _example_specs():
    cfg = load_config(EXAMPLE)
    return cfg, resolve(cfg)


def test_example_config_rules_match_golden_files():
    cfg, specs = _example_specs()
    for spec in specs:
        _golden_check(f"example-config/revwatch-slo-{spec.name}.rules.yml",
                      render(rule_groups(spec, cfg.server.external_url)))
    cfg = Config.model_validate(yaml.safe_load(GROUPED))
    (spec,) = resolve(cfg)
    _golden_check("grouped/revwatch-slo-payments-by-gateway.rules.yml",
                  render(rule_groups(spec, cfg.server.external_url)))


def _parse(expr: str):
    return promql_parser.parse(expr)


def test_one_alert_per_slo_and_severity_window_is_not_a_label():
    cfg, specs = _example_specs()
    for spec in specs:
        (group,) = rule_groups(spec, cfg.server.external_url)
        alerts = [r for r in group["rules"] if "alert" in r]
        forecast = ["RevwatchSLOForecastExhaustion"] if spec.is_journey else []     # the in-flight forecast's page
        assert [r["alert"] for r in alerts] == ["RevwatchSLOBurnRatePage", "RevwatchSLOBurnRateTicket", *forecast]
        alerts = alerts[:2]
        records = [r for r in group["rules"] if "record" in r]
        # one recording rule per tier: firing, or (its windows without data) its own last state held
        assert {(r["labels"]["severity"], r["labels"]["alert_tier"]) for r in records} == {
            (t.severity, f"{format_duration(t.long)}/{format_duration(t.short)}") for t in spec.tiers}
        for r in records:
            expr = _parse(r["expr"])
            assert type(expr).__name__ == "BinaryExpr" and str(expr.op) == "or"
            # the burning pair is aggregated away from `window`: one series per SLO (and group) and tier
            assert type(expr.lhs).__name__ == "AggregateExpr" and str(expr.lhs.modifier) == "without (window)"
            assert (f'revwatch_slo:alert_tier_active{{slo="{spec.name}",severity="{r["labels"]["severity"]}",'
                    f'alert_tier="{r["labels"]["alert_tier"]}"}}') in r["expr"]
            assert "unless on (slo, group) (revwatch_slo_window_events" in r["expr"]
        for rule in alerts:
            top = _parse(rule["expr"])
            assert type(top).__name__ == "AggregateExpr" and str(top.op) == "max"
            assert str(top.modifier) == "without (alert_tier)"
            assert "window" not in rule["labels"] and "alert_tier" not in rule["labels"]
            assert rule["labels"]["slo"] == spec.name and rule["labels"]["severity"] in ("page", "ticket")
            ann = rule["annotations"]
            assert ann["link"] == f"http://127.0.0.1:8317/ui/slos/{spec.name}"
            assert "Error budget left" in ann["description"] and "revwatch_slo_burn_rate" in ann["description"]
            assert spec.name in ann["summary"]


def test_grouped_slo_links_to_the_group_and_keeps_builtin_labels():
    cfg = Config.model_validate(yaml.safe_load(GROUPED))
    (spec,) = resolve(cfg)
    rules = rule_groups(spec, cfg.server.external_url)[0]["rules"]
    page, ticket, forecast = [r for r in rules if "alert" in r]
    assert forecast["labels"] == {**page["labels"], "severity": "page"} and forecast["annotations"]["link"] == \
        page["annotations"]["link"]
    assert page["annotations"]["link"].startswith("https://revwatch.example.com/ui/slos/payments-by-gateway{{ if")
    assert ticket["labels"] == {"team": "payments", "channel": "#payments", "slo": "payments-by-gateway",
                                "journey": "p2p", "severity": "ticket"}
    # 7-day period: Sloth's 7d catalogue factors, not 14.4/6/3/1
    page_expr = "".join(r["expr"] for r in rules if r.get("labels", {}).get("severity") == "page" and "record" in r)
    ticket_expr = "".join(r["expr"] for r in rules if r.get("labels", {}).get("severity") == "ticket" and "record" in r)
    assert ">= 13.44 and" in page_expr and ">= 3.5 and" in page_expr and ">= 0.98 and" in ticket_expr
    assert 'revwatch_slo_window_events{slo="payments-by-gateway",window="3d"} >= 20' in ticket_expr


@need_promtool
def test_generated_rule_files_pass_promtool(tmp_path):
    cfg, specs = _example_specs()
    sloth = [s for f in ("getting-started.yml", "raw-home-wifi.yml", "k8s-multifile.yml", "no-alerts.yml")
             for s in resolve(Config.model_validate({"sloth_files": [str(SLOTH / "examples" / f)]}))]
    grouped = Config.model_validate(yaml.safe_load(GROUPED))
    files = write_rules(specs + sloth + resolve(grouped), tmp_path, cfg.server.external_url)
    r = subprocess.run([PROMTOOL, "check", "rules", *map(str, files)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# --- Sloth: every upstream file imported or refused; imported ones generate Sloth's rules ----------------------
SLOTH_REFUSED = {
    "contrib-denominator-corrected.yaml": "document 1: spec.sloPlugins.chain[0].id: SLO plugin "
                                          "'sloth.dev/contrib/denominator_corrected_rules/v1' is not supported",
    "contrib-slo-plugins.yml": "document 1: slos[0].plugins.chain[0].id: SLO plugin 'sloth.dev/contrib/info_labels/v1'",
    "openslo-getting-started.yml": "document 1: apiVersion: openslo/v1alpha is not a Sloth spec",
    "openslo-kubernetes-apiserver.yml": "document 1: apiVersion: openslo/v1alpha is not a Sloth spec",
    "plugin-getting-started.yml": "document 1: slos[0].sli.plugin: SLI plugins are not supported",
    "plugin-k8s-getting-started.yml": "document 1: spec.slos[0].sli.plugin: SLI plugins are not supported",
    "victoria-metrics.yml": "document 1: slo_plugins.chain[0].id: SLO plugin "
                            "'sloth.dev/contrib/validate_victoria_metrics/v1' is not supported",
    "in-invalid-version.yaml": "document 1: version: must be 'prometheus/v1', got 'prometheus/v999'",
    "in-openslo.yaml": "document 1: apiVersion: openslo/v1alpha is not a Sloth spec",
    "in-sli-plugin.yaml": "document 1: slos[0].sli.plugin: SLI plugins are not supported",
    "in-slo-plugin.yaml": "document 1: slo_plugins.chain[0].id: SLO plugin 'integration-tests/plugin1'",
    "in-slo-plugin-k8s.yaml": "document 1: spec.sloPlugins.chain[0].id: SLO plugin 'integration-tests/plugin1'",
}
SLOTH_FILES = sorted([*(SLOTH / "examples").glob("*.y*ml"), *(SLOTH / "testdata").glob("in-*.yaml")])
# generator identity (Sloth's version annotations) and the label Sloth's example script adds
IGNORED_LABELS = {"sloth_version", "sloth_mode", "cmd"}


def _norm_rule(rule: dict) -> dict:
    return {"name": rule.get("record") or rule.get("alert"), "kind": "record" if "record" in rule else "alert",
            "labels": {k: str(v) for k, v in (rule.get("labels") or {}).items() if k not in IGNORED_LABELS},
            "expr": _parse(rule["expr"]).prettify(), "annotations": rule.get("annotations") or {}}


def _sloth_gen(path: Path) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return [g for d in docs for g in (d["spec"]["groups"] if d.get("kind") == "PrometheusRule" else d["groups"])]


def test_upstream_sloth_corpus_is_complete():
    assert len(list((SLOTH / "examples").glob("*.y*ml"))) == 18 and len(list((SLOTH / "testdata").glob("in-*"))) == 9


@pytest.mark.parametrize("path", SLOTH_FILES, ids=lambda p: p.name)
def test_every_sloth_file_is_imported_or_refused_clearly(path):
    if path.name in SLOTH_REFUSED:
        with pytest.raises(SlothError) as e:
            load_sloth(path)
        assert str(e.value).startswith(f"{path}: ") and SLOTH_REFUSED[path.name] in str(e.value)
        return
    slos = load_sloth(path)
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert len(slos) == sum(len((d.get("spec") or d)["slos"]) for d in docs)
    for s in slos:
        assert s.sli.kind == "prometheus" and s.window == "30d" and 0 < s.objective < 1
    gen = SLOTH / "examples" / "_gen" / path.name
    if not gen.exists():
        return
    specs = resolve(Config.model_validate({"sloth_files": [str(path)]}))
    ours = [g for s in specs for g in rule_groups(s, "http://unused")]
    theirs = _sloth_gen(gen)
    assert [g["name"] for g in ours] == [g["name"] for g in theirs]
    for go, gt in zip(ours, theirs):
        assert [_norm_rule(r) for r in go["rules"]] == [_norm_rule(r) for r in gt["rules"]], go["name"]


def test_sloth_golden_covers_the_examples_that_use_only_supported_features():
    covered = [p.name for p in SLOTH_FILES
               if p.name not in SLOTH_REFUSED and (SLOTH / "examples/_gen" / p.name).exists()]
    assert sorted(covered) == ["getting-started.yml", "home-wifi.yml", "k8s-getting-started.yml", "k8s-home-wifi.yml",
                               "k8s-multifile.yml", "kubernetes-apiserver.yml", "multifile.yml", "no-alerts.yml",
                               "raw-home-wifi.yml", "slo-plugin-getting-started.yml",
                               "slo-plugin-k8s-getting-started.yml"]


def test_sloth_period_scales_burn_factors_and_names_the_period_rule(tmp_path):
    cfg = Config.model_validate({"sloth_files": [str(SLOTH / "examples" / "getting-started.yml")],
                                 "sloth_period": "28d"})
    (spec,) = resolve(cfg)
    sli, meta, alerts = rule_groups(spec, "")
    assert sli["rules"][-1]["record"] == "slo:sli_error:ratio_rate4w"        # Prometheus spells 28d as 4w
    assert meta["rules"][2]["expr"] == "vector(28)"
    assert "(13.44 * 0.0009999999999999432)" in alerts["rules"][0]["expr"]
    assert "(0.9333333333333333 * 0.0009999999999999432)" in alerts["rules"][1]["expr"]


@pytest.mark.parametrize("doc,message", [
    ({"version": "prometheus/v1", "service": "s", "slos": [{"name": "a", "objective": 99, "sli": {"events": {
        "error_query": "x", "total_query": "y"}}, "alerting": {"name": "A"}, "extra": 1}]},
     "document 1: slos[0].extra: unknown field"),
    ({"version": "prometheus/v1", "service": "s", "slos": [{"name": "a", "objective": 120, "sli": {"raw": {
        "error_ratio_query": "x"}}}]}, "document 1: slos[0].objective: must be a percentage"),
    ({"version": "prometheus/v1", "service": "s", "slos": [{"name": "a", "objective": 99, "sli": {"raw": {
        "error_ratio_query": "x"}}}]}, "document 1: slos[0].alerting.name: required when an alert is enabled"),
    ({"version": "prometheus/v1", "service": "s", "slos": [{"name": "a", "objective": 99, "sli": {"raw": {
        "error_ratio_query": "rate(x[{{.window}}]) {{.other}}"}}, "alerting": {"name": "A"}}]},
     "only the {{.window}} template variable is supported"),
    ({"version": "prometheus/v1", "service": "s", "slos": []}, "document 1: slos: at least one SLO is required"),
])
def test_sloth_errors_name_file_document_and_field(tmp_path, doc, message):
    p = tmp_path / "s.yml"
    p.write_text(yaml.safe_dump({"version": "prometheus/v1", "service": "ok", "slos": [
        {"name": "fine", "objective": 99, "sli": {"raw": {"error_ratio_query": "x"}},
         "alerting": {"page_alert": {"disable": True}, "ticket_alert": {"disable": True}}}]}) + "---\n" +
        yaml.safe_dump(doc))
    with pytest.raises(SlothError) as e:
        load_sloth(p)
    assert str(e.value).startswith(f"{p}: document 2") or message.startswith("document 1") is False
    assert message.replace("document 1", "document 2") in str(e.value)


def test_sloth_top_level_list_and_multidoc(tmp_path):
    one = yaml.safe_load((SLOTH / "examples" / "getting-started.yml").read_text())
    two = dict(one, service="other")
    p = tmp_path / "list.yml"
    p.write_text(yaml.safe_dump([one, two]))
    assert [s.name for s in load_sloth(p)] == ["myservice-requests-availability", "other-requests-availability"]


@need_promtool
def test_promtool_unit_one_alert_per_severity_with_rendered_annotations(tmp_path):
    """Prometheus's own rule engine (`promtool test rules`): every tier of both severities burns, and exactly one page
    and one ticket alert fire, with the description's template queries rendered to the numbers."""
    cfg = Config.model_validate({"slos": [{"name": "api", "objective": 0.999, "window": "30d",
                                           "sli": {"kind": "span_ratio", "service": "odoo",
                                                   "bad_when": {"StatusCode": "Error"}}}]})
    (path,) = write_rules(resolve(cfg), tmp_path, "https://rw.example")
    burn = {"5m": 20, "30m": 20, "1h": 20, "2h": 20, "6h": 20, "1d": 20, "3d": 20}
    series = [{"series": f'revwatch_slo_burn_rate{{slo="api",window="{w}",job="revwatch"}}', "values": f"{v}x10"}
              for w, v in burn.items()]
    series.append({"series": 'revwatch_slo_error_budget_remaining_ratio{slo="api",job="revwatch"}',
                   "values": "0.25x10"})

    def expected(sev: str, pairs: str) -> dict:
        return {"exp_labels": {"severity": sev, "slo": "api", "job": "revwatch"},
                "exp_annotations": {
                    "summary": f"({sev}) SLO api is burning its error budget too fast",
                    "description": f"SLO api (span_ratio, objective 99.9000% over 30d) is burning its error budget: "
                                   f"{pairs}. Error budget left: 25%.",
                    "link": "https://rw.example/ui/slos/api"}}
    page = ("1h 20.0x and 5m 20.0x (fires at 14.4x, 2% of the budget); "
            "6h 20.0x and 30m 20.0x (fires at 6x, 5% of the budget)")
    ticket = ("1d 20.0x and 2h 20.0x (fires at 3x, 10% of the budget); "
              "3d 20.0x and 6h 20.0x (fires at 1x, 10% of the budget)")
    test = tmp_path / "test.yml"
    test.write_text(yaml.safe_dump({
        "rule_files": [str(path)], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": [
            {"eval_time": "5m", "alertname": "RevwatchSLOBurnRatePage", "exp_alerts": [expected("page", page)]},
            {"eval_time": "5m", "alertname": "RevwatchSLOBurnRateTicket", "exp_alerts": [expected("ticket", ticket)]},
        ]}]}))
    r = subprocess.run([PROMTOOL, "test", "rules", str(test)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@need_promtool
def test_promtool_unit_forecast_exhaustion_pages_within_the_engines_horizon(tmp_path):
    """The forecast alert fires exactly when the engine's forecast says `page` (budget out within PAGE_WITHIN, 4 h):
    a group forecast to run out in 1 h pages, one in 5 h and one not forecast to run out (metric absent) do not."""
    cfg = Config.model_validate({"journeys": {"pay": {"start": "payment.created", "end": "payment.posted"}},
                                 "slos": [{"name": "posting", "journey": "pay", "objective": 0.99, "window": "30d",
                                           "group_by": ["gateway"],
                                           "sli": {"kind": "journey_latency", "threshold": "15m"}}]})
    (path,) = write_rules(resolve(cfg), tmp_path, "https://rw.example")
    assert PAGE_WITHIN == dt.timedelta(hours=4)

    def metric(name: str, group: str, value: str) -> dict:
        return {"series": f'{name}{{slo="posting",group="{group}",job="revwatch"}}', "values": value}
    series = [metric("revwatch_slo_forecast_exhausted_in_seconds", "stripe", "3600x10"),
              metric("revwatch_slo_forecast_exhausted_in_seconds", "adyen", "18000x10"),
              metric("revwatch_slo_forecast_breaches", "stripe", "7x10"),
              metric("revwatch_slo_forecast_breaches", "mollie", "0x10")]
    test = tmp_path / "test.yml"
    test.write_text(yaml.safe_dump({
        "rule_files": [str(path)], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": [
            {"eval_time": "4m", "alertname": "RevwatchSLOForecastExhaustion", "exp_alerts": []},   # pending: for 5m
            {"eval_time": "5m", "alertname": "RevwatchSLOForecastExhaustion", "exp_alerts": [{
                "exp_labels": {"severity": "page", "slo": "posting", "journey": "pay", "group": "stripe",
                               "job": "revwatch"},
                "exp_annotations": {
                    "summary": "(page) SLO posting [stripe] will exhaust its error budget within 4h at the in-flight "
                               "pace",
                    "description": "SLO posting [stripe] (journey pay, objective 99.0000% over 30d): 7 instances in "
                                   "flight are forecast to breach the 15m threshold at the current step pace; the "
                                   "error budget runs out in 1h 0m 0s.",
                    "link": "https://rw.example/ui/slos/posting?group=stripe"}}]},
        ]}]}))
    r = subprocess.run([PROMTOOL, "test", "rules", str(test)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def promtool_firing(tmp_path, spec, series: dict[str, str], checks: list[tuple[str, str, list[dict]]]):
    """Run `promtool test rules` on the rules of one SLO: `series` {selector: values}, `checks` (eval_time,
    alertname, the firing alerts' label sets), read from Prometheus's own `ALERTS` series (labels only)."""
    (path,) = write_rules([spec], tmp_path, "https://rw.example")

    def sample(name: str, labels: dict) -> dict:
        ls = {"alertname": name, "alertstate": "firing", **labels}
        return {"labels": "ALERTS{" + ",".join(f'{k}="{v}"' for k, v in sorted(ls.items())) + "}", "value": 1}
    test = tmp_path / "test.yml"
    test.write_text(yaml.safe_dump({
        "rule_files": [str(path)], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": [{"series": k, "values": v} for k, v in series.items()],
                   "promql_expr_test": [{"eval_time": t, "expr": f'ALERTS{{alertname="{name}",alertstate="firing"}}',
                                         "exp_samples": [sample(name, labels) for labels in alerts]}
                                        for t, name, alerts in checks]}]}))
    r = subprocess.run([PROMTOOL, "test", "rules", str(test)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@need_promtool
def test_promtool_unit_each_tier_holds_its_own_state(tmp_path):
    """Per-tier hold (docs/slo-policy.md "Coverage"): a tier whose windows have no data keeps its own last state;
    another tier's gap never holds an alert that resolved with data. Group g1: the 6h/30m tier fires, then resolves
    with data while the 5m window goes empty (the 1h/5m tier never fired: nothing to hold). Group g2: the 1h/5m tier
    fires, then its 5m window goes empty: it holds. The former rule (the severity's ALERTS held while the shortest
    window was empty) kept g1 firing too."""
    doc = {"name": "api", "objective": 0.999, "window": "30d",
           "sli": {"kind": "span_ratio", "service": "odoo", "bad_when": {"StatusCode": "Error"}},
           "alerting": {"page": [{"long": "1h", "short": "5m", "burn_rate": 14.4},
                                 {"long": "6h", "short": "30m", "burn_rate": 6}], "ticket": []}}
    then_empty = "10 10 10 10 10 0 0 0 0 0"
    series = {}
    for g, burns in (("g1", {"6h": "7 7 7 7 7 1 1 1 1 1", "30m": "7 7 7 7 7 1 1 1 1 1", "1h": "1x9",
                             "5m": "1 1 1 1 1 0 0 0 0 0"}),
                     ("g2", {"6h": "1x9", "30m": "1x9", "1h": "20x9", "5m": "20 20 20 20 20 0 0 0 0 0"})):
        for w, v in burns.items():
            series[f'revwatch_slo_burn_rate{{slo="api",group="{g}",window="{w}"}}'] = v
            series[f'revwatch_slo_window_events{{slo="api",group="{g}",window="{w}"}}'] = \
                then_empty if w == "5m" else "100x9"
    page = {"slo": "api", "severity": "page"}
    (spec,) = resolve(Config.model_validate({"slos": [doc]}))
    promtool_firing(tmp_path, spec, series, [
        ("3m", "RevwatchSLOBurnRatePage", [{**page, "group": "g1"}, {**page, "group": "g2"}]),
        ("8m", "RevwatchSLOBurnRatePage", [{**page, "group": "g2"}])])
