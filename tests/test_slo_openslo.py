"""OpenSLO v1 import: every upstream corpus file imported or refused with file, document and field; each field's
meaning honoured (budgeting methods, time slices, rolling vs calendar windows, threshold units, labels, alert
policies, refs, lists and multi-document files)."""
import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from revwatch.config import CalendarConfig, Config
from slo.calendar import period_bounds
from slo.engine import SloEngine
from slo.openslo import OpenSloError, load_openslo
from slo.rules import rule_groups
from slo.spec import resolve
from tests.support.servers import FIXTURES
from tests.support.slo_data import anchor, journey

# refusals of objects no SLO references (issue #22: every object of every listed file is validated)
NO_COND = "conditionRef: no AlertCondition named 'cpu-usage-breach'"
NO_TARGET = "targetRef: no AlertNotificationTarget named 'devs-email-notification'"
NO_PROM = "document 2: spec.thresholdMetric.metricSource.metricSourceRef: no DataSource named 'my-prometheus'"
CORPUS = FIXTURES / "openslo"
FILES = sorted(CORPUS.glob("*/*.yaml"))
UTC = dt.timezone.utc
# every upstream file: the SLOs it imports to, or the start of the refusal after "<file>: "
EXPECTED = {
    "openslo_v1_examples_alert_conditions.yaml": "document 1: spec.condition.op: a burn-rate alert fires above",
    "openslo_v1_examples_alert_notification_targets.yaml": [],
    "openslo_v1_examples_alert_policies.yaml": "document 1: spec.conditions[0]." + NO_COND,
    "openslo_v1_examples_data_sources.yaml": [],
    "openslo_v1_examples_services.yaml": [],
    "openslo_v1_examples_slis.yaml": ("document 1: spec.ratioMetric.good.metricSource."
                                      "metricSourceRef: no DataSource named 'my-datadog'"),
    "openslo_v1_examples_slos.yaml": "document 1 (SLO web-availability): spec.timeWindow[0].calendar: calendar "
                                     "windows cannot be computed by Prometheus",
    "openslo_v1alpha_examples_services.yaml": "document 1: apiVersion: only openslo/v1 is supported",
    "openslo_v1alpha_examples_slos.yaml": "document 1: apiVersion: only openslo/v1 is supported",
    "openslosdk_test_data_decode_sequence_of_objects.yaml": [],
    "openslosdk_test_data_decode_single_object.yaml": [],
    "openslosdk_test_data_decode_two_documents.yaml": [],
    "openslosdk_test_data_decode_v1_slos.yaml": "document 1 (SLO foo-slo): spec.timeWindow: required",
    "openslosdk_test_data_encode_v1_slo.yaml": "document 1 (SLO foo-slo): spec.timeWindow: required",
    "openslosdk_test_data_export_inputs_custom_config.yaml": NO_TARGET,
    "openslosdk_test_data_export_inputs_v1_alert_policies.yaml": NO_COND,
    "openslosdk_test_data_export_inputs_v1_slo.yaml": NO_COND,
    "openslosdk_test_data_export_outputs_custom_config.yaml": NO_TARGET,
    "openslosdk_test_data_export_outputs_v1_alert_policies.yaml": NO_COND,
    "openslosdk_test_data_export_outputs_v1_slo.yaml": "document 2: spec.conditions[0].conditionRef: no AlertCondition "
                                                       "named 'cpu-usage-breach'",
    "openslosdk_test_data_inline_inputs_custom_config.yaml": NO_COND,
    "openslosdk_test_data_inline_inputs_v1_alert_policies_invalid_condition.yaml": NO_COND,
    "openslosdk_test_data_inline_inputs_v1_alert_policies_invalid_target.yaml": "document 1: spec.notificationTargets"
                                                                                "[1]." + NO_TARGET,
    "openslosdk_test_data_inline_inputs_v1_alert_policies_keep_refs.yaml": "document 2: spec.condition.op",
    "openslosdk_test_data_inline_inputs_v1_alert_policies_remove_refs.yaml": "document 5: spec.condition.op",
    "openslosdk_test_data_inline_inputs_v1_slo.yaml": "document 4: spec.condition.op",
    "openslosdk_test_data_inline_inputs_v1_slo_invalid_policy.yaml": NO_PROM,
    "openslosdk_test_data_inline_inputs_v1_slo_invalid_sli.yaml": NO_PROM,
    "openslosdk_test_data_inline_inputs_v1_slo_invalid_target.yaml": NO_PROM,
    "openslosdk_test_data_inline_outputs_custom_config.yaml": NO_COND,
    "openslosdk_test_data_inline_outputs_v1_alert_policies_keep_refs.yaml": "document 2: spec.condition.op",
    "openslosdk_test_data_inline_outputs_v1_alert_policies_remove_refs.yaml": ("document 1: spec.conditions[0].spec."
                                                                        "condition.op: a burn-rate alert fires above"),
    "openslosdk_test_data_inline_outputs_v1_slo.yaml": "document 1 (SLO my-slo-1): spec.timeWindow[0].calendar",
    "budgeting-method_occurences-slo.yaml": "document 1 (SLO search-slo): spec.indicator.spec.thresholdMetric."
                                            "metricSource.type: metric source 'Any' is not supported",
    "budgeting-method_ratio-timeslices.yaml": "spec.indicator.spec.ratioMetric.good.metricSource.type: metric source "
                                              "'Any' is not supported",
    "budgeting-method_timeslices-slo.yaml": "spec.timeWindow[0].duration: calendar windows are days, weeks, months, "
                                            "quarters or years; 1m is minutes (in OpenSLO 'm' is minutes, 'M' months)",
    "treat-low-traffic-as-equally-important_timeslices-slo.yaml": "metric source 'Any' is not supported",
}


def test_corpus_is_complete():
    v1 = [p.name for p in FILES if "v2alpha" not in p.name and "v2alpha" not in p.parent.name]
    assert sorted(v1) == sorted(EXPECTED)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_corpus_file_is_imported_or_refused_clearly(path):
    expected = EXPECTED.get(path.name,
                            "document 1: apiVersion: only openslo/v1 is supported, got 'openslo.com/v2alpha'")
    if isinstance(expected, list):
        assert [s.name for s in load_openslo(path)] == expected
        return
    with pytest.raises(OpenSloError) as e:
        load_openslo(path)
    assert str(e.value).startswith(f"{path}: ") and expected in str(e.value), str(e.value)


def _write(tmp_path: Path, docs, name="o.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump_all(docs) if isinstance(docs, list) and docs and isinstance(docs[0], dict) and
                 "multi" in name else yaml.safe_dump(docs))
    return p


def _upstream(name: str) -> dict:
    return yaml.safe_load((CORPUS / "openslo" / name).read_text())


def test_upstream_examples_pointed_at_prometheus_import_with_their_budgeting_method(tmp_path):
    """The upstream ratio-timeslices example (main page, 1-minute slices, gauge counts) with a Prometheus source:
    RatioTimeslices is the average of the per-slice ratios — a subquery stepping by the slice; a 5-minute
    timeSliceWindow steps by 5 minutes."""
    doc = _upstream("budgeting-method_ratio-timeslices.yaml")
    rm = doc["spec"]["indicator"]["spec"]["ratioMetric"]
    for part, q in (("good", 'sum(http_requests_total{code!~"5.."})'), ("total", "sum(http_requests_total)")):
        rm[part]["metricSource"] = {"type": "Prometheus", "spec": {"query": q}}
    (slo,) = load_openslo(_write(tmp_path, doc))
    assert slo.budgeting == "ratio_timeslices" and slo.window == doc["spec"]["timeWindow"][0]["duration"]
    assert slo.sli.error_ratio_query == (
        'avg_over_time((1 - ((sum_over_time((sum(http_requests_total{code!~"5.."}))[1m:])) / '
        '(sum_over_time((sum(http_requests_total))[1m:]))))[{{.window}}:1m])')
    rm["counter"] = True
    doc["spec"]["objectives"][0]["timeSliceWindow"] = "5m"
    (slo,) = load_openslo(_write(tmp_path, doc))
    assert slo.sli.error_ratio_query == (
        'avg_over_time((1 - ((increase((sum(http_requests_total{code!~"5.."}))[5m:])) / '
        '(increase((sum(http_requests_total))[5m:]))))[{{.window}}:5m])')
    (spec,) = resolve(Config.model_validate({"openslo_files": [str(tmp_path / "o.yaml")]}))
    sli = rule_groups(spec, "")[0]["rules"]
    assert "[1h:5m]" in sli[[r["labels"]["sloth_window"] for r in sli].index("1h")]["expr"]


def test_timeslices_and_threshold_metrics_on_prometheus(tmp_path):
    doc = _upstream("budgeting-method_timeslices-slo.yaml")
    doc["spec"]["timeWindow"][0] = {"duration": "28d", "isRolling": True}
    doc["spec"]["indicator"]["spec"] = {"thresholdMetric": {"metricSource": {"type": "Prometheus", "spec": {
        "query": "histogram_quantile(0.99, sum by (le) (rate(http_duration_seconds_bucket[5m])))"}}}}
    doc["spec"]["objectives"] = [{"op": "lte", "value": 0.4, "target": 0.99, "timeSliceTarget": 0.9,
                                  "timeSliceWindow": "2m"}]
    (slo,) = load_openslo(_write(tmp_path, doc))
    # a 2-minute slice is bad when the p99 exceeded 400 ms in more than 10 % of its evaluations
    assert slo.sli.error_ratio_query == (
        "avg_over_time(((avg_over_time(((histogram_quantile(0.99, "
        "sum by (le) (rate(http_duration_seconds_bucket[5m]))))"
        " > bool 0.4)[2m:])) > bool 0.09999999999999998)[{{.window}}:2m])")
    doc["spec"]["budgetingMethod"] = "Occurrences"
    del doc["spec"]["objectives"][0]["timeSliceTarget"], doc["spec"]["objectives"][0]["timeSliceWindow"]
    (slo,) = load_openslo(_write(tmp_path, doc))
    assert slo.sli.error_ratio_query == ("avg_over_time(((histogram_quantile(0.99, sum by (le) "
                                         "(rate(http_duration_seconds_bucket[5m])))) > bool 0.4)[{{.window}}:])")


def test_revwatch_sources_threshold_units_labels_and_alert_policies(tmp_path):
    slo_doc = {
        "apiVersion": "openslo/v1", "kind": "SLO",
        "metadata": {"name": "payments-posted", "displayName": "Payments posted", "labels": {
            "team": ["payments", "finance"], "tier": "1"}, "annotations": {"runbook": "https://wiki/p"}},
        "spec": {"description": "settled payments are posted within 500 ms", "service": "billing",
                 "indicatorRef": "posting-latency",
                 "timeWindow": [{"duration": "1M", "isRolling": False,
                                 "calendar": {"startTime": "2026-01-15 06:00:00", "timeZone": "Europe/Berlin"}}],
                 "budgetingMethod": "Occurrences",
                 "objectives": [{"op": "lte", "value": 500, "target": 0.995}],
                 "alertPolicies": [{"alertPolicyRef": "fast-burn"}, {
                     "kind": "AlertPolicy", "metadata": {"name": "slow"},
                     "spec": {"conditions": [{"kind": "AlertCondition", "metadata": {"name": "slow-burn"}, "spec": {
                         "severity": "warning", "condition": {"kind": "burnrate", "op": "gt", "threshold": 1,
                                                              "lookbackWindow": "3d", "alertAfter": "30m"}}}],
                              "notificationTargets": [{"targetRef": "finance-mail"}]}}]}}
    sli_doc = {"apiVersion": "openslo/v1", "kind": "SLI", "metadata": {"name": "posting-latency"},
               "spec": {"thresholdMetric": {"metricSource": {"type": "revwatch", "spec": {
                   "journey": "p2p", "unit": "ms"}}}}}
    others = [{"apiVersion": "openslo/v1", "kind": "AlertPolicy", "metadata": {"name": "fast-burn"},
               "spec": {"alertWhenBreaching": True, "conditions": [{"conditionRef": "fast"}],
                        "notificationTargets": [{"targetRef": "oncall"}]}},
              {"apiVersion": "openslo/v1", "kind": "AlertCondition", "metadata": {"name": "fast"},
               "spec": {"severity": "page", "condition": {"kind": "burnrate", "op": "gte", "threshold": 14.4,
                                                          "lookbackWindow": "1h"}}},
              {"apiVersion": "openslo/v1", "kind": "AlertNotificationTarget", "metadata": {"name": "oncall"},
               "spec": {"target": "pagerduty"}},
              {"apiVersion": "openslo/v1", "kind": "AlertNotificationTarget", "metadata": {"name": "finance-mail"},
               "spec": {"target": "email"}}]
    p = tmp_path / "multi.yaml"                    # several documents, one of them a top-level list
    p.write_text(yaml.safe_dump(slo_doc) + "---\n" + yaml.safe_dump([sli_doc, *others]))
    (slo,) = load_openslo(p)
    assert slo.sli.kind == "journey_latency" and slo.sli.threshold == dt.timedelta(milliseconds=500)   # not 500 s
    assert slo.labels == {"team": "payments,finance", "tier": "1"} and slo.display_name == "Payments posted"
    assert slo.annotations == {"runbook": "https://wiki/p"} and slo.service == "billing"
    assert slo.window == "calendar" and slo.calendar.duration == "1M"
    assert slo.calendar.start == dt.datetime(2026, 1, 15, 6) and slo.calendar.time_zone == "Europe/Berlin"
    assert [(t.long, t.short, t.burn_rate) for t in slo.alerting.page] == [
        (dt.timedelta(hours=1), dt.timedelta(minutes=5), 14.4)]
    assert [(t.long, t.short, t.burn_rate, t.alert_after) for t in slo.alerting.ticket] == [
        (dt.timedelta(days=3), dt.timedelta(hours=6), 1.0, dt.timedelta(minutes=30))]
    # alertAfter is the rule's hold time
    cfg = Config.model_validate({"journeys": {"p2p": {"start": "a", "end": "b"}}, "openslo_files": [str(p)]})
    alerts = {r["alert"]: r for r in rule_groups(resolve(cfg)[0], "http://x")[0]["rules"] if "alert" in r}
    page, ticket = alerts["RevwatchSLOBurnRatePage"], alerts["RevwatchSLOBurnRateTicket"]
    assert "for" not in page and ticket["for"] == "30m"
    assert slo.alerting.labels == {"notification_targets": "oncall,finance-mail"}
    # the unit is required: a bare number is never guessed
    sli_doc["spec"]["thresholdMetric"]["metricSource"]["spec"].pop("unit")
    p.write_text(yaml.safe_dump(slo_doc) + "---\n" + yaml.safe_dump([sli_doc, *others]))
    with pytest.raises(OpenSloError, match=r"multi.yaml: document 2: spec.thresholdMetric.metricSource.spec.unit: "
                                           r"the unit of the objective's value is required"):
        load_openslo(p)


@pytest.mark.parametrize("patch,message", [
    (lambda d: d["spec"].update(extra=1), "document 1 (SLO x): spec.extra: unknown field"),
    (lambda d: d["spec"]["timeWindow"][0].update(duration="1M"), "spec.timeWindow[0].duration: a rolling 1M window "
                                                                 "has no fixed length"),
    (lambda d: d["spec"]["objectives"][0].update(timeSliceWindow="5m"), "spec.objectives[0].timeSliceWindow: only "
                                                                        "meaningful with Timeslices"),
    (lambda d: d["spec"].update(budgetingMethod="Timeslices"), "spec.objectives[0].timeSliceTarget: Timeslices needs"),
    (lambda d: d["spec"]["objectives"][0].update(compositeWeight=2), "composite SLOs are not supported"),
    (lambda d: d["metadata"].update(name="Not_RFC"), "metadata.name: must be an RFC 1123 name"),
    (lambda d: d["metadata"].update(name="with.dot"), "metadata.name: must be an RFC 1123 name"),
    (lambda d: d["metadata"].update(name="a" * 64), "metadata.name: must be an RFC 1123 name"),
    (lambda d: d["metadata"].update(displayName="D" * 64), "metadata.displayName: must be a string of at most 63 "
                                                           "characters, got 64"),
    (lambda d: d["spec"].update(description="d" * 1051), "spec.description: must be a string of at most 1050 "
                                                         "characters, got 1051"),
    (lambda d: d["spec"]["indicator"].update(spec={**d["spec"]["indicator"]["spec"], "description": "d" * 1051}),
     "spec.indicator.spec.description: must be a string of at most 1050"),
    (lambda d: d["metadata"].update(labels={"-bad-": "x"}), "metadata.labels: key '-bad-' must be at most 63"),
    (lambda d: d["metadata"].update(annotations={"Bad_Prefix/k": "x"}), "metadata.annotations: key 'Bad_Prefix/k'"),
])
def test_fields_are_refused_with_document_and_field(tmp_path, patch, message):
    doc = {"apiVersion": "openslo/v1", "kind": "SLO", "metadata": {"name": "x"},
           "spec": {"indicator": {"metadata": {"name": "i"}, "spec": {"ratioMetric": {
               "good": {"metricSource": {"spec": {"service": "odoo", "bad_when": {"StatusCode": "Error"}}}},
               "total": {"metricSource": {"spec": {"service": "odoo"}}}}}},
                    "timeWindow": [{"duration": "28d", "isRolling": True}], "budgetingMethod": "Occurrences",
                    "objectives": [{"target": 0.99}]}}
    load_openslo(_write(tmp_path, doc))                           # the base document imports
    patch(doc)
    with pytest.raises(OpenSloError) as e:
        load_openslo(_write(tmp_path, doc))
    assert message in str(e.value), str(e.value)


def test_calendar_periods_follow_start_time_and_time_zone():
    ny = CalendarConfig(duration="1w", start=dt.datetime(2022, 1, 1, 12), time_zone="America/New_York")
    at = dt.datetime(2026, 11, 24, 7, 0, tzinfo=UTC)                      # Tuesday; weeks start Saturday 12:00 NY
    start, end = period_bounds(ny, at)
    assert start == dt.datetime(2026, 11, 21, 12, tzinfo=ZoneInfo("America/New_York"))
    assert end - start == dt.timedelta(days=7)
    # across the DST change a calendar week is 7 local days (169 h in UTC)
    s2, e2 = period_bounds(ny, dt.datetime(2026, 11, 3, tzinfo=UTC))
    assert s2 == dt.datetime(2026, 10, 31, 12, tzinfo=ZoneInfo("America/New_York"))
    assert e2 - s2 == dt.timedelta(hours=169)
    month = CalendarConfig(duration="1M", start=dt.datetime(2026, 1, 31), time_zone="UTC")
    assert period_bounds(month, dt.datetime(2026, 3, 1, tzinfo=UTC)) == (
        dt.datetime(2026, 2, 28, tzinfo=UTC), dt.datetime(2026, 3, 31, tzinfo=UTC))    # the 31st, clamped in February
    quarter = CalendarConfig(duration="1Q", start=dt.datetime(2026, 1, 1), time_zone="UTC")
    assert period_bounds(quarter, dt.datetime(2026, 11, 24, tzinfo=UTC))[0] == dt.datetime(2026, 10, 1, tzinfo=UTC)


def test_ratio_timeslices_average_the_minutes_ratios_in_the_engine(store, make_config):
    """Two minutes: 1 of 1 good, then 1 of 3 good. Occurrences: 2/4 = 0.5; Timeslices (target 0.5): 1 good minute of
    2; RatioTimeslices: (1 + 1/3) / 2 = 0.667."""
    T = anchor()
    M = dt.timedelta(minutes=1)
    journey(store, "a", T - 40 * M, T - 39 * M)                            # decided T-39m, good
    for i, end in enumerate([T - 24 * M, None, None]):      # all decided T-24m: one good (at 15 min), two late
        journey(store, f"b{i}", T - 39 * M, end)
    base = "journeys: {p2p: {start: payment.settled, end: payment.posted}}\nslos:\n"
    rows = {}
    for method in ("occurrences", "timeslices", "ratio_timeslices"):
        extra = ", timeslice_target: 0.5" if method == "timeslices" else ""
        cfg = make_config(base + f"  - {{name: s, journey: p2p, objective: 0.9, window: 1d, budgeting: {method}{extra},"
                                 f" sli: {{kind: journey_latency, threshold: 15m}}}}\n")
        (r,) = SloEngine(store, cfg).evaluate(T)
        rows[method] = (r.windows["1h"].good, r.windows["1h"].total)
    assert rows["occurrences"] == (2, 4)
    assert rows["timeslices"] == (1, 2)
    assert rows["ratio_timeslices"][1] == 2 and rows["ratio_timeslices"][0] == pytest.approx(1 + 1 / 3)


def test_slices_longer_than_a_minute_in_the_engine(store, make_config):
    """5-minute slices (epoch-aligned): S1 = 1 good + 1 bad (0.5), S2 = 2 good (1.0), and the slice containing the
    evaluation instant: 1 good from the rollups + 1 bad decided in the live minute (0.5)."""
    M = dt.timedelta(minutes=1)
    T = anchor()
    B = T - (T.minute % 5) * M                                        # a 5-minute boundary
    at = B + 2 * M + dt.timedelta(seconds=30)

    def good(minute):                                                  # decided at `minute` + 10 s, in time
        journey(store, f"g{minute}", B + minute * M - 2 * M, B + minute * M + dt.timedelta(seconds=10))

    def bad(minute):                                                   # never ends: decided at start + 15 min
        journey(store, f"b{minute}", B + minute * M - 15 * M + dt.timedelta(seconds=10))
    for m in (-9, -4, -1, 1):
        good(m)
    for m in (-7, 2):
        bad(m)
    base = "journeys: {p2p: {start: payment.settled, end: payment.posted}}\nslos:\n"
    rows = {}
    for method, extra in (("timeslices", ", timeslice_target: 0.6"), ("ratio_timeslices", "")):
        for length in ("1m", "5m"):
            cfg = make_config(base + f"  - {{name: s, journey: p2p, objective: 0.9, window: 1d, budgeting: {method}"
                                     f"{extra}, timeslice_window: {length}, sli: {{kind: journey_latency, "
                                     f"threshold: 15m}}}}\n")
            (r,) = SloEngine(store, cfg).evaluate(at)
            rows[method, length] = (r.windows["1h"].good, r.windows["1h"].total)
    assert rows["timeslices", "1m"] == (4, 6)                         # minutes: 4 good of 6
    assert rows["timeslices", "5m"] == (1, 3)                         # slices 0.5, 1.0, 0.5 against 0.6
    assert rows["ratio_timeslices", "1m"][1] == 6 and rows["ratio_timeslices", "1m"][0] == pytest.approx(4)
    assert rows["ratio_timeslices", "5m"][1] == 3 and rows["ratio_timeslices", "5m"][0] == pytest.approx(2.0)


def test_prometheus_backed_openslo_rules_pass_promtool(tmp_path):
    import os
    import shutil
    import subprocess
    from slo.rules import write_rules
    promtool = shutil.which("promtool")
    if not promtool and not os.environ.get("CI"):
        pytest.skip("promtool not installed")
    docs = []
    for method, extra in (("Occurrences", {}), ("Timeslices", {"timeSliceTarget": 0.9, "timeSliceWindow": "5m"}),
                          ("RatioTimeslices", {"timeSliceWindow": 2})):
        for metric in ({"thresholdMetric": {"metricSource": {"type": "Prometheus", "spec": {
                            "query": "histogram_quantile(0.99, sum by (le) (rate(d_bucket[5m])))"}}}},
                       {"ratioMetric": {"counter": True,
                                        "good": {"metricSource": {"type": "Prometheus", "spec": {"query": "sum(ok)"}}},
                                        "total": {"metricSource": {"type": "Prometheus",
                                                                   "spec": {"query": "sum(all)"}}}}}):
            objective = {"target": 0.99, **extra}
            if "thresholdMetric" in metric:
                objective.update(op="lte", value=0.3)
            docs.append({"apiVersion": "openslo/v1", "kind": "SLO",
                         "metadata": {"name": f"s{len(docs)}"},
                         "spec": {"indicator": {"metadata": {"name": "i"}, "spec": metric},
                                  "timeWindow": [{"duration": "28d", "isRolling": True}],
                                  "budgetingMethod": method, "objectives": [objective]}})
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump_all(docs))
    specs = resolve(Config.model_validate({"openslo_files": [str(p)]}))
    assert len(specs) == 6 and all(s.is_prometheus for s in specs)
    files = write_rules(specs, tmp_path / "rules", "http://x")
    r = subprocess.run([promtool, "check", "rules", *map(str, files)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_limits_hold_at_the_boundary(tmp_path):
    """63-character names and display names and 1050-character descriptions are valid OpenSLO v1 (go-sdk's limits)."""
    doc = {"apiVersion": "openslo/v1", "kind": "Service",
           "metadata": {"name": "a" * 63, "displayName": "D" * 63, "labels": {"team.name_x": ["a", "b"]},
                        "annotations": {"openslo.com/service-folder": "./x", "k": "v"}},
           "spec": {"description": "d" * 1050}}
    assert load_openslo(_write(tmp_path, doc)) == []
    doc["spec"]["description"] += "d"
    with pytest.raises(OpenSloError, match=r"o.yaml: document 1: spec.description: must be a string of at most 1050"):
        load_openslo(_write(tmp_path, doc))


@pytest.mark.parametrize("obj,message", [
    ({"kind": "AlertPolicy", "metadata": {"name": "p"}, "spec": {"alertWhenNoData": True, "conditions": [
        {"conditionRef": "c"}]}}, "document 2: spec.alertWhenNoData: no-data alerts are not generated"),
    ({"kind": "AlertPolicy", "metadata": {"name": "p"}, "spec": {"conditions": [{"conditionRef": "missing"}]}},
     "document 2: spec.conditions[0].conditionRef: no AlertCondition named 'missing'"),
    ({"kind": "AlertPolicy", "metadata": {"name": "p"}, "spec": {"conditions": [{"conditionRef": "c"}],
                                                                 "notificationTargets": [{"targetRef": "nobody"}]}},
     "document 2: spec.notificationTargets[0].targetRef: no AlertNotificationTarget named 'nobody'"),
    ({"kind": "AlertPolicy", "metadata": {"name": "p"}, "spec": {"description": "d" * 1051,
                                                                 "conditions": [{"conditionRef": "c"}]}},
     "document 2: spec.description: must be a string of at most 1050"),
    ({"kind": "SLI", "metadata": {"name": "s"}, "spec": {"ratioMetric": {"good": {"metricSource": {"type": "x"}}}}},
     "document 2: spec.ratioMetric: needs total and exactly one of good or bad"),
    ({"kind": "SLI", "metadata": {"name": "s"}, "spec": {"thresholdMetric": {"metricSource": {"spec": {}}}}},
     "document 2: spec.thresholdMetric.metricSource.type: required when there is no metricSourceRef"),
    ({"kind": "Service", "metadata": {"name": "svc", "displayName": "S" * 64}, "spec": {}},
     "document 2: metadata.displayName: must be a string of at most 63"),
])
def test_objects_no_slo_references_are_validated_too(tmp_path, obj, message):
    """Issue #22: an invalid AlertPolicy, SLI or Service in a listed file is refused even when no SLO uses it (with
    one line naming file, document and field), and a valid unreferenced one is accepted."""
    cond = {"apiVersion": "openslo/v1", "kind": "AlertCondition", "metadata": {"name": "c"},
            "spec": {"severity": "page", "condition": {"kind": "burnrate", "op": "gte", "threshold": 14.4,
                                                       "lookbackWindow": "1h", "alertAfter": "0m"}}}
    p = tmp_path / "multi.yaml"
    ok = {"apiVersion": "openslo/v1", "kind": "AlertPolicy", "metadata": {"name": "p"},
          "spec": {"conditions": [{"conditionRef": "c"}]}}
    p.write_text(yaml.safe_dump_all([cond, ok]))
    assert load_openslo(p) == []
    p.write_text(yaml.safe_dump_all([cond, {"apiVersion": "openslo/v1", **obj}]))
    with pytest.raises(OpenSloError) as e:
        load_openslo(p)
    assert str(e.value).startswith(f"{p}: {message}") and "\n" not in str(e.value), str(e.value)
    # the same through the config: `openslo_files` refuses the file at load
    with pytest.raises(Exception, match=re.escape(message)):
        resolve(Config.model_validate({"openslo_files": [str(p)]}))


def test_long_display_names_and_descriptions_export_within_the_limits_and_import_back(tmp_path):
    from slo.export import slo_document
    cfg = Config.model_validate({"slos": [{
        "name": "api.errors", "objective": 0.99, "window": "28d", "display_name": "N" * 80,
        "description": "d" * 2000, "sli": {"kind": "span_ratio", "service": "odoo",
                                            "bad_when": {"StatusCode": "Error"}}}]})
    doc = slo_document(resolve(cfg)[0])
    assert len(doc["metadata"]["displayName"]) == 63 and len(doc["spec"]["description"]) == 1050
    assert doc["metadata"]["name"] == "api-errors"
    p = tmp_path / "e.yaml"
    p.write_text(yaml.safe_dump(doc))
    (back,) = load_openslo(p)
    assert back.name == "api.errors" and back.display_name == "N" * 80 and back.description == "d" * 2000
