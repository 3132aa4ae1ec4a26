"""Budget adjustments: minutes removed exactly from every window, recurring across a DST change, effect good,
retroactive API adjustments, as-of evaluations, validation."""
import datetime as dt

import pytest

from revwatch.config import AdjustmentConfig
from slo.adjustments import Adjustment
from slo.engine import SloEngine
from slo.history import bucket_series

M = dt.timedelta(minutes=1)
UTC = dt.timezone.utc


def spans(store, start: dt.datetime, minutes: int, bad: list[tuple[dt.datetime, dt.datetime]], tag: str) -> None:
    """Two spans a minute (at :00 and :30) from `start`; those inside a `bad` interval fail."""
    lo = [int(a.timestamp()) for a, _ in bad] or [0]
    hi = [int(b.timestamp()) for _, b in bad] or [0]
    t0 = int(start.timestamp())
    store.command(f"""
        INSERT INTO {store.table('spans')} (Timestamp, TraceId, SpanId, ServiceName, SpanName, StatusCode, Duration,
                                           CorrelationId)
        SELECT fromUnixTimestamp64Nano(toInt64(({t0} + number * 30) * 1000000000), 'UTC') AS ts,
               lower(hex(MD5(concat('{tag}', toString(number))))) AS tid, substring(tid, 1, 16), 'odoo', 'execute_kw',
               if(arrayExists((a, b) -> {t0} + number * 30 >= a AND {t0} + number * 30 < b, {lo}, {hi}),
                  'Error', 'Ok'),
               1000000, tid
        FROM numbers({minutes * 2})""")


def test_occurrences_follow_wall_clock_across_both_dst_changes():
    adj = Adjustment(AdjustmentConfig(name="nightly", start="2026-03-27T02:30:00", duration="1h", rrule="FREQ=DAILY",
                                      time_zone="Europe/Paris"))
    got = adj.occurrences(dt.datetime(2026, 3, 27, tzinfo=UTC), dt.datetime(2026, 3, 31, tzinfo=UTC))
    # 02:30 CET is 01:30 UTC; on the 29th 02:30 does not exist (clocks jump 02:00 → 03:00): read with the offset
    # before the change, 01:30 UTC again; from the 30th 02:30 CEST is 00:30 UTC
    assert [a.strftime("%d %H:%M") for a, _ in got] == ["27 01:30", "28 01:30", "29 01:30", "30 00:30"]
    assert all(b - a == 60 * M for a, b in got)
    autumn = adj.occurrences(dt.datetime(2026, 10, 24, tzinfo=UTC), dt.datetime(2026, 10, 27, tzinfo=UTC))
    # 25 Oct: 02:30 happens twice (03:00 CEST → 02:00 CET); the first one, CEST, counts
    assert [a.strftime("%d %H:%M") for a, _ in autumn] == ["24 00:30", "25 00:30", "26 01:30"]


def test_monthly_last_day_close_window_in_local_time():
    adj = Adjustment(AdjustmentConfig(name="close", start="2026-01-31T18:00", duration="6h",
                                      rrule="FREQ=MONTHLY;BYMONTHDAY=-1", time_zone="America/New_York"))
    got = adj.occurrences(dt.datetime(2026, 2, 1, tzinfo=UTC), dt.datetime(2026, 5, 1, tzinfo=UTC))
    assert [(a.isoformat(), b.isoformat()) for a, b in got] == [
        ("2026-02-01T00:00:00+00:00", "2026-02-01T05:00:00+00:00"),     # 31 Jan 18:00 EST, clipped to the range
        ("2026-02-28T23:00:00+00:00", "2026-03-01T05:00:00+00:00"),     # EST: UTC-5
        ("2026-03-31T22:00:00+00:00", "2026-04-01T04:00:00+00:00"),     # EDT since 8 March: UTC-4
        ("2026-04-30T22:00:00+00:00", "2026-05-01T00:00:00+00:00")]     # clipped at the range's end


CFG = """
slos:
  - {name: api, objective: 0.99, window: 400d, sli: {kind: span_ratio, service: odoo, bad_when: {StatusCode: Error}}}
  - {name: api2, objective: 0.99, window: 400d, sli: {kind: span_ratio, service: odoo, bad_when: {StatusCode: Error}}}
adjustments:
  - {name: nightly, start: "2026-03-27T02:30:00", duration: 1h, rrule: FREQ=DAILY, time_zone: Europe/Paris,
     slos: [api]}
  - {name: forgiven, start: "2026-03-27T02:30:00", duration: 1h, rrule: FREQ=DAILY, time_zone: Europe/Paris,
     slos: [api2], effect: good}
"""


def test_recurring_adjustment_removes_exactly_its_minutes_across_dst(store, make_config):
    start = dt.datetime(2026, 3, 28, tzinfo=UTC)
    # failures exactly in the UTC minutes the DST-aware occurrences cover (28th and 29th 01:30-02:30, 30th 00:30-01:30)
    bad = [(dt.datetime(2026, 3, 28, 1, 30, tzinfo=UTC), dt.datetime(2026, 3, 28, 2, 30, tzinfo=UTC)),
           (dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC), dt.datetime(2026, 3, 29, 2, 30, tzinfo=UTC)),
           (dt.datetime(2026, 3, 30, 0, 30, tzinfo=UTC), dt.datetime(2026, 3, 30, 1, 30, tzinfo=UTC))]
    spans(store, start, 3 * 1440, bad, "dst")
    at = dt.datetime(2026, 3, 30, 23, 59, 30, tzinfo=UTC)        # 3d window: minutes 28th 00:00 … 30th 23:59
    res = {r.spec.name: r for r in SloEngine(store, make_config(CFG)).evaluate(at)}
    api, api2 = res["api"], res["api2"]
    w = api.windows["3d"]
    assert (w.total, w.good) == ((4320 - 180) * 2, (4320 - 180) * 2)      # the 180 bad minutes, and only they, gone
    c = api.coverage.windows["3d"]
    assert (c.minutes, c.excluded, c.counted, c.covered) == (4320, 180, 4140, 4140) and c.ratio == 1.0
    assert api.coverage.windows["1d"].excluded == 60                        # the 30th's occurrence
    # in the 400-day SLO window also the 27th's occurrence (no data there): 4 × 60 minutes
    [summary] = api.adjustments
    assert summary["name"] == "nightly" and summary["minutes"] == 240 and len(summary["occurrences"]) == 4
    assert api.as_dict()["adjustments"] == api.adjustments
    # effect good: the same minutes count, their failures as good
    w2 = api2.windows["3d"]
    assert (w2.total, w2.good) == (8640, 8640) and api2.coverage.windows["3d"].counted_good == 180
    assert api2.coverage.windows["3d"].excluded == 0
    # the live minute is adjusted like stored ones: as of 30th 00:45:40 the minute 00:45 is excluded for api
    live = {r.spec.name: r for r in SloEngine(store, make_config(CFG)).evaluate(
        dt.datetime(2026, 3, 30, 0, 45, 40, tzinfo=UTC))}
    assert live["api"].windows["5m"].total == 0 and live["api2"].windows["5m"].total == 10
    assert live["api2"].windows["5m"].good == 10
    # the charts read the same adjusted minutes: the hour 30th 00:00-01:00 holds 30 excluded minutes for api
    engine = SloEngine(store, make_config(CFG))
    api_spec = engine.spec("api")
    engine.rollups.refresh(dt.datetime.now(UTC))            # charts read the stored minutes (the evaluator's)
    series = bucket_series(store, [api_spec], dt.datetime(2026, 3, 30, tzinfo=UTC),
                           dt.datetime(2026, 3, 30, 2, tzinfo=UTC), dt.timedelta(hours=1), engine.adjustments)
    assert [(b.good, b.total) for b in series.of("api", "")] == [(60, 60), (60, 60)]   # 30 + 30 minutes × 2 spans
    raw = bucket_series(store, [api_spec], dt.datetime(2026, 3, 30, tzinfo=UTC),
                        dt.datetime(2026, 3, 30, 2, tzinfo=UTC), dt.timedelta(hours=1))
    assert [(b.good, b.total) for b in raw.of("api", "")] == [(60, 120), (60, 120)]


def test_api_adjustments_are_admin_retroactive_30_days_and_validated(api):
    body = {"name": "close", "start": "2026-01-31T18:00:00", "duration": "6h", "rrule": "FREQ=MONTHLY;BYMONTHDAY=-1",
            "time_zone": "Europe/Paris", "effect": "exclude"}
    assert api.client.post("/api/v1/adjustments", json=body, headers=api.auth("read")).status_code == 403
    r = api.client.post("/api/v1/adjustments", json=body, headers=api.auth("admin"))
    assert r.status_code == 201, r.text
    doc = r.json()
    created = dt.datetime.fromisoformat(doc["created_at"])
    assert doc["applies_from"] == (created - dt.timedelta(days=30)).isoformat() and doc["source"] == "api"
    assert all(dt.datetime.fromisoformat(a) >= created - dt.timedelta(days=30) for a, _ in doc["occurrences"])
    listed = api.client.get("/api/v1/adjustments", headers=api.auth("read")).json()["items"]
    assert [a["name"] for a in listed] == ["close"]
    assert api.client.post("/api/v1/adjustments", json=body, headers=api.auth("admin")).status_code == 409
    old = {**body, "name": "old", "rrule": None, "start": "2025-01-01T00:00:00"}
    r = api.client.post("/api/v1/adjustments", json=old, headers=api.auth("admin"))
    assert r.status_code == 400 and r.json() == {"error": "an adjustment may reach back at most 30 days",
                                                 "field": "start"}
    for bad, field in [({"rrule": "FREQ=SOMETIMES"}, "rrule"), ({"duration": "90s"}, "duration"),
                       ({"time_zone": "Mars/Base"}, "time_zone"), ({"effect": "maybe"}, "effect"),
                       ({"slos": ["nope"], "name": "x"}, "slos"), ({"start": "2026-01-31T18:00:30"}, None)]:
        r = api.client.post("/api/v1/adjustments", json={**body, "name": "y", **bad}, headers=api.auth("admin"))
        assert r.status_code == 400 and "error" in r.json(), (bad, r.text)
        if field:
            assert r.json().get("field") == field, (bad, r.json())
    assert api.client.delete("/api/v1/adjustments/close", headers=api.auth("admin")).status_code == 200
    assert api.client.get("/api/v1/adjustments", headers=api.auth("read")).json()["items"] == []
    assert api.client.delete("/api/v1/adjustments/close", headers=api.auth("admin")).status_code == 404


V2 = """apiVersion: openslo.com/v2alpha
kind: BudgetAdjustment
metadata: {name: bank-holiday}
spec:
  description: bank holiday, no settlements
  service: payments
  indicatorRef: api-sli
  startTime: "2026-12-25T00:00:00+01:00"
  duration: 1d
"""


def test_openslo_v2alpha_budget_adjustment_import_and_round_trip(tmp_path, make_config):
    from slo.adjustments import declared
    from slo.openslo_v2 import export_adjustments
    (tmp_path / "adj.yaml").write_text(V2)
    cfg = make_config(CFG.replace("adjustments:", f"openslo_v2alpha_files: [{tmp_path / 'adj.yaml'}]\nadjustments:"))
    names = ["api", "api2"]
    got = {a.name: a for a in declared(cfg, names)}
    bank = got["bank-holiday"]
    assert bank.config.slos == ["api"] and bank.config.effect == "exclude" and bank.config.rrule is None
    assert bank.occurrences(dt.datetime(2026, 12, 1, tzinfo=UTC), dt.datetime(2027, 1, 1, tzinfo=UTC)) == [
        (dt.datetime(2026, 12, 24, 23, tzinfo=UTC), dt.datetime(2026, 12, 25, 23, tzinfo=UTC))]
    # export (revwatch's recurrence, time zone and effect travel as annotations) and import again: the same
    text = export_adjustments(list(got.values()), {"api": "odoo", "api2": None})
    (tmp_path / "again.yaml").write_text(text)
    back = {a.name: a for a in declared(make_config(f"slos: [{{name: api, objective: 0.99, sli: {{kind: span_ratio,"
                                                    f" bad_when: {{StatusCode: Error}}}}}}, {{name: api2, "
                                                    f"objective: 0.99, sli: {{kind: span_ratio, bad_when: "
                                                    f"{{StatusCode: Error}}}}}}]\nopenslo_v2alpha_files: "
                                                    f"[{tmp_path / 'again.yaml'}]"), names)}
    for name, a in got.items():
        assert back[name].config == a.config, name
    assert "kind: BudgetAdjustment" in text and "apiVersion: openslo.com/v2alpha" in text


def test_openslo_v2alpha_problems_name_file_document_and_field(tmp_path, make_config):
    from slo.adjustments import declared
    from slo.spec import SpecError
    for bad, words in [(V2.replace("indicatorRef: api-sli", "indicatorRef: nope-sli"), "spec.indicatorRef"),
                       (V2.replace("kind: BudgetAdjustment", "kind: Service"), "and composite SLO are imported"),
                       (V2.replace("  duration: 1d\n", ""), "exactly one of endTime and duration"),
                       (V2.replace("startTime: \"2026-12-25T00:00:00+01:00\"", "startTime: soon"), "spec.startTime")]:
        (tmp_path / "adj.yaml").write_text(bad)
        cfg = make_config(f"openslo_v2alpha_files: [{tmp_path / 'adj.yaml'}]")
        with pytest.raises(SpecError, match=words) as e:
            declared(cfg, ["api"])
        assert "document 1" in str(e.value)
