"""Routing, grouping and timing with Alertmanager's semantics, on a fake clock (no sleeping)."""
import datetime as dt

import pytest

from alerts.config import AlertsConfig
from alerts.routing import Alert, Router, Silence

T0 = 1_800_000_000.0       # a fixed instant (2027-01-15 08:00 UTC)


def router(**route) -> Router:
    r = {"notifiers": ["hook"], "group_by": ["slo"], "group_wait": "30s", "group_interval": "5m",
         "repeat_interval": "4h", **route}
    return Router(AlertsConfig.model_validate({"notifiers": {"hook": {"type": "webhook", "url": "http://x"}},
                                               "routes": [r]}))


def alert(fp="a", status="firing", slo="pp", **labels) -> Alert:
    return Alert(fp, status, {"alertname": "Burn", "slo": slo, "severity": "page", **labels}, {"summary": "s"},
                 T0 - 60)


def flush_all(r: Router, groups: dict, now: float, silences=()):
    out = []
    for g in Router.due(groups, now):
        f = r.flush(g, now, list(silences))
        if not g.alerts:
            del groups[g.id]
        if f:
            out.append(f)
    return out


def test_group_wait_then_dedup_of_resends_then_repeat_interval():
    r, groups = router(), {}
    assert r.ingest(groups, alert(), T0)
    assert flush_all(r, groups, T0 + 29) == []                    # group_wait not over
    [f] = flush_all(r, groups, T0 + 30)
    assert [a.fingerprint for a in f.firing] == ["a"] and not f.resolved
    for k in range(1, 10):                                          # Alertmanager re-sends the same alert
        assert r.ingest(groups, alert(), T0 + 30 + k) == []
    assert flush_all(r, groups, T0 + 30 + 300) == []               # nothing changed: no notification
    assert flush_all(r, groups, T0 + 30 + 4 * 3600 - 1) == []
    [f] = flush_all(r, groups, T0 + 30 + 4 * 3600 + 300)           # repeat_interval passed
    assert [a.fingerprint for a in f.firing] == ["a"]


def test_new_alert_waits_for_group_interval_and_resolve_is_sent_then_group_deleted():
    r, groups = router(), {}
    r.ingest(groups, alert("a"), T0)
    flush_all(r, groups, T0 + 30)
    r.ingest(groups, alert("b"), T0 + 40)
    assert flush_all(r, groups, T0 + 100) == []                    # next tick is at +330
    [f] = flush_all(r, groups, T0 + 330)
    assert sorted(a.fingerprint for a in f.firing) == ["a", "b"]
    r.ingest(groups, alert("a", "resolved"), T0 + 400)
    [f] = flush_all(r, groups, T0 + 630)
    assert [a.fingerprint for a in f.firing] == ["b"] and [a.fingerprint for a in f.resolved] == ["a"]
    r.ingest(groups, alert("b", "resolved"), T0 + 700)
    [f] = flush_all(r, groups, T0 + 930)
    assert not f.firing and [a.fingerprint for a in f.resolved] == ["b"]
    assert groups == {}


def test_fired_and_resolved_between_flushes_is_not_sent():
    r, groups = router(), {}
    r.ingest(groups, alert("a"), T0)
    r.ingest(groups, alert("a", "resolved"), T0 + 5)
    assert flush_all(r, groups, T0 + 30) == [] and groups == {}
    assert r.ingest(groups, alert("z", "resolved"), T0 + 40) == [] and groups == {}   # unknown resolve: no group


def test_send_resolved_false_sends_no_resolve():
    r, groups = router(send_resolved=False), {}
    r.ingest(groups, alert("a"), T0)
    flush_all(r, groups, T0 + 30)
    r.ingest(groups, alert("a", "resolved"), T0 + 60)
    assert flush_all(r, groups, T0 + 330) == [] and groups == {}


def test_group_by_splits_and_routes_match_in_order_with_continue():
    cfg = AlertsConfig.model_validate({
        "notifiers": {"pd": {"type": "pagerduty", "routing_key": "k"}, "slack": {"type": "slack", "url": "http://s"}},
        "routes": [{"name": "pages", "match": {"severity": "page"}, "notifiers": ["pd"], "continue": True},
                   {"name": "payments", "match_re": {"journey": "pay.*"}, "notifiers": ["slack"]},
                   {"name": "never", "match": {"severity": "page"}, "notifiers": ["slack"]}]})
    r = Router(cfg)
    assert r.matching({"severity": "page", "journey": "payment_to_posting"}) == ["pages", "payments"]
    assert r.matching({"severity": "ticket", "journey": "renewal"}) == []
    groups = {}
    r.ingest(groups, alert("a", slo="s1", journey="payment"), T0)
    r.ingest(groups, alert("b", slo="s2", journey="payment"), T0)
    assert len(groups) == 4     # two routes × two SLO groups (default group_by has slo)


def test_silence_mutes_without_resolving_and_expiry_unmutes():
    r, groups = router(), {}
    s = Silence("s1", [{"name": "slo", "value": "p.*", "is_regex": True, "is_equal": True}], T0, T0 + 600)
    r.ingest(groups, alert(), T0)
    assert flush_all(r, groups, T0 + 30, [s]) == []
    assert len(groups) == 1                                         # still held, not dropped
    [f] = flush_all(r, groups, T0 + 630, [s])                       # silence expired at +600
    assert [a.fingerprint for a in f.firing] == ["a"]
    negative = Silence("s2", [{"name": "slo", "value": "pp", "is_regex": False, "is_equal": False}], T0, T0 + 60)
    assert not negative.mutes({"slo": "pp"}) and negative.mutes({"slo": "other"})


def test_quiet_hours_hold_notifications_until_the_end():
    # 2027-01-15 is a Friday; quiet 22:00–07:00 Europe/Berlin (UTC+1 in January)
    night = dt.datetime(2027, 1, 15, 22, 30, tzinfo=dt.timezone.utc).timestamp()     # 23:30 Berlin
    r, groups = router(quiet_hours={"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"}), {}
    r.ingest(groups, alert(), night)
    assert flush_all(r, groups, night + 30) == []
    [g] = groups.values()
    assert g.next_flush == dt.datetime(2027, 1, 16, 6, 0, tzinfo=dt.timezone.utc).timestamp()   # 07:00 Berlin
    [f] = flush_all(r, groups, g.next_flush)
    assert f.firing
    weekdays_only = router(quiet_hours={"start": "00:00", "end": "23:59", "days": ["mon"]}).routes["route-0"]
    assert weekdays_only.quiet_hours.quiet_until(dt.datetime(2027, 1, 15, 12, tzinfo=dt.timezone.utc)) is None


def test_internal_alert_resolves_when_ends_at_passes():
    r, groups = router(), {}
    a = alert("x")
    a.ends_at = T0 + 100
    r.ingest(groups, a, T0)
    [f] = flush_all(r, groups, T0 + 30)
    assert f.firing
    [f] = flush_all(r, groups, T0 + 330)
    assert not f.firing and [x.fingerprint for x in f.resolved] == ["x"]


@pytest.mark.parametrize("bad, where", [
    ({"routes": [{"notifiers": ["nope"]}]}, "unknown notifier"),
    ({"routes": [{"notifiers": [], "group_wiat": "1s"}]}, "Extra inputs"),
    ({"notifiers": {"x": {"type": "email"}}}, "does not match any of the expected tags"),
    ({"routes": [{"notifiers": [], "match_re": {"a": "("}}]}, "not a regular expression"),
    ({"routes": [{"notifiers": [], "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Mars/Base"}}]},
     "unknown IANA time zone"),
])
def test_config_refuses_unknown_keys_and_bad_values(bad, where):
    with pytest.raises(ValueError, match=where):
        AlertsConfig.model_validate(bad)
