"""The alert pipeline in a live app: receiver → durable inbox → routing → impact → outbox → real HTTP sinks."""
import datetime as dt
import decimal
import time

import pytest

from alerts.receiver import parse_webhook
from alerts.service import AlertService
from collector.rows import EVENT_COLUMNS, EventRow
from revwatch.metrics import Metrics
from revwatch.store import StoreError, store_from_config
from slo.engine import SloEngine
from revwatch.config import ConfigError, load_config
from revwatch.server import create_app
from tests.support.servers import live_server
from tests.support.faults import store_outage
from tests.support.sinks import Sink
from tests.support.waits import until


def config(base: str, group_by="", extra="") -> str:
    return f"""
journeys: {{p2p: {{start: payment.settled, end: payment.posted}}}}
slos:
  - {{name: pp, journey: p2p, objective: 0.99, window: 1d, sli: {{kind: journey_latency, threshold: 15m}}
     {', group_by: [' + group_by + ']' if group_by else ''}}}
alerts:
  public_url: http://revwatch.test
  notifiers:
    hook: {{type: webhook, url: "{base}/hook", secret: s3cret}}
    slack: {{type: slack, url: "{base}/slack"}}
    pd: {{type: pagerduty, url: "{base}/pd", routing_key: R0UTING}}
  routes:
    - {{match: {{severity: page}}, notifiers: [hook, slack, pd], group_by: [slo, group], group_wait: 0s,
       group_interval: 1s, repeat_interval: 1h}}
  delivery: {{backoff_initial: 100ms, backoff_max: 400ms, tick: 50ms}}
  ownership: {{steps: {{payment.posted: erp-team}}}}
{extra}"""


def webhook(status="firing", slo="pp", group=None, fp="abc123"):
    labels = {"alertname": "RevwatchSLOBurnRatePage", "slo": slo, "severity": "page", "journey": "p2p"}
    if group:
        labels["group"] = group
    return {"version": "4", "status": status, "receiver": "revwatch", "groupKey": "{}:{}", "alerts": [{
        "status": status, "labels": labels, "annotations": {"summary": "burning"},
        "startsAt": "2026-11-23T10:00:00Z",
        "endsAt": "2026-11-23T11:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z", "fingerprint": fp}]}


def settle(store, ids, gateway="stripe", minutes=40, amount="100.50", currency="EUR", **attrs):
    now = dt.datetime.now(dt.timezone.utc)
    store.insert("events", [list(EventRow(EventId=f"e-{cid}", Type="payment.settled", CorrelationId=cid,
                                          OccurredAt=int((now - dt.timedelta(minutes=minutes)).timestamp() * 1000),
                                          Source="billing", Amount=decimal.Decimal(amount), Currency=currency,
                                          Attributes={"gateway": gateway, **attrs})) for cid in ids],
                 EVENT_COLUMNS)


@pytest.fixture
def sink():
    s = Sink()
    with live_server(s.app) as base:
        s.base = base
        yield s


def test_page_delivered_to_every_notifier_with_impact_then_resolved(api_factory, sink):
    api = api_factory(config(sink.base))
    settle(api.ctx.store, ["pay_0", "pay_1", "pay_2"])
    t0 = time.perf_counter()
    r = api.post("/api/v1/alerts/alertmanager", json=webhook())
    assert r.status_code == 200 and r.json() == {"received": 1, "superseded": 0}
    [hook] = sink.wait("hook")
    [slack] = sink.wait("slack")
    [pd] = sink.wait("pd")
    print(f"receiver → three notifiers: {time.perf_counter() - t0:.2f}s")
    impact = hook["alerts"][0]["impact"]
    att = impact["attribution"]
    assert att["instances"]["stuck"] == 3 and att["money_at_risk"] == {"EUR": "301.50"}
    assert {e["correlation_id"] for e in att["oldest_stuck"]} == {"pay_0", "pay_1", "pay_2"}
    assert att["oldest_stuck"][0]["link"] == "http://revwatch.test/ui/journeys/" + \
        att["oldest_stuck"][0]["correlation_id"] and att["oldest_stuck"][0]["amount"] == "100.50"
    assert att["failing_step"] == "payment.posted" and att["budget"]["remaining_ratio"] < 0
    assert impact["recommended_team"] == "erp-team" and "payment.posted" in impact["recommendation_reason"]
    assert impact["class"] in ("P1", "P2", "P3") and impact["reason"]
    assert sink.headers["hook"][0]["x-revwatch-signature"].startswith("t=")
    assert pd["routing_key"] == "R0UTING" and pd["event_action"] == "trigger"
    assert pd["dedup_key"] == "revwatch/slo/pp//page"
    assert pd["payload"]["custom_details"]["impact"]["attribution"]["money_at_risk"] == {"EUR": "301.50"}
    assert slack["blocks"][0]["type"] == "header"
    # Alertmanager re-sends the same firing alert: deduplicated, nothing new goes out (over group intervals, on a
    # simulated clock: test_resends_change_nothing_over_group_intervals)
    for _ in range(3):
        assert api.post("/api/v1/alerts/alertmanager", json=webhook()).status_code == 200
    until(api.ctx.alerts.settled, 10, "the re-sends applied")
    assert len(sink.got["pd"]) == 1 and len(sink.got["hook"]) == 1
    log = api.get("/api/v1/alerts").json()["items"]
    assert log[0]["slo"] == "pp" and log[0]["impact"]["attribution"]["instances"]["stuck"] == 3
    # resolve
    api.post("/api/v1/alerts/alertmanager", json=webhook("resolved"))
    resolve = sink.wait("pd", 2)[1]
    assert resolve == {"routing_key": "R0UTING", "event_action": "resolve", "dedup_key": pd["dedup_key"]}
    assert sink.wait("hook", 2)[1]["status"] == "resolved"
    assert api.ctx.alerts.outbox.wait_idle(10)       # counted and recorded after the sink has answered
    metrics = api.get("/metrics").text
    assert 'revwatch_notifications_total{notifier="pd",outcome="delivered"} 2.0' in metrics
    assert 'revwatch_notification_queue_depth{notifier="pd"} 0.0' in metrics
    assert "revwatch_alert_dispatcher_healthy 1.0" in metrics


def test_group_by_slo_notification_carries_that_groups_impact(api_factory, sink):
    api = api_factory(config(sink.base, group_by="gateway"))
    settle(api.ctx.store, ["s1", "s2"], gateway="stripe", amount="10.00")
    settle(api.ctx.store, ["a1", "a2", "a3"], gateway="adyen", amount="7.00", currency="USD")
    api.post("/api/v1/alerts/alertmanager", json=webhook(group="stripe", fp="g-stripe"))
    [hook] = sink.wait("hook")
    att = hook["alerts"][0]["impact"]["attribution"]
    assert att["group"] == "stripe" and att["instances"]["stuck"] == 2 and att["money_at_risk"] == {"EUR": "20.00"}
    assert att["budget"]["bad"] == 2                     # stripe's budget, not adyen's (3 bad)
    assert {e["correlation_id"] for e in att["oldest_stuck"]} == {"s1", "s2"}
    [pd] = sink.wait("pd")
    assert pd["dedup_key"] == "revwatch/slo/pp/stripe/page"


def test_dead_sink_delays_nothing_and_is_retried_until_back(api_factory, sink, caplog):
    caplog.set_level("WARNING")
    sink.fail = True
    api = api_factory(config(sink.base))
    t0 = time.perf_counter()
    for i in range(20):
        r = api.post("/api/v1/alerts/alertmanager", json=webhook(fp=f"f{i}", slo=f"s{i}"))
        assert r.status_code == 200
    receiver_seconds = (time.perf_counter() - t0) / 20
    ev = api.post("/api/v1/events", json=[{"event_id": "x1", "type": "payment.settled",
                                                      "correlation_id": "c1", "occurred_at": "2026-11-23T10:00:00Z",
                                                      "source": "stripe"}])
    assert ev.status_code in (200, 202), ev.text
    assert receiver_seconds < 1.0, receiver_seconds      # generous: delivery is never on the request path
    until(lambda: len(api.ctx.alerts.outbox.pending()["slack"]) == 20, 15, "20 slack deliveries queued")
    until(lambda: 'revwatch_notifications_total{notifier="slack",outcome="retry"}' in api.get("/metrics").text, 15,
          "a failed attempt counted as retry")
    metrics = api.get("/metrics").text
    assert float(metrics.split('revwatch_notification_queue_depth{notifier="slack"} ')[1].split()[0]) == 20
    assert float(metrics.split('revwatch_notification_oldest_pending_seconds{notifier="slack"} ')[1].split()[0]) > 0
    sink.fail = False
    assert len(sink.wait("slack", 20, timeout=15)) == 20
    assert api.ctx.alerts.outbox.wait_idle(10)
    items = api.get("/api/v1/notifications").json()["items"]
    assert items and all(i["status"] == "delivered" for i in items) and max(i["attempts"] for i in items) >= 2
    assert "HTTP 503 (retry" in caplog.text                  # failures are logged …
    for secret in ("R0UTING", "s3cret", sink.base):           # … without routing keys, HMAC secrets or URLs
        assert secret not in caplog.text


def test_store_refusing_the_inbox_answers_503_so_alertmanager_retries(api_factory, sink):
    api = api_factory(config(sink.base))
    api.ctx.keys.preload()
    with store_outage(api.ctx.store, RuntimeError("disk full")):
        r = api.post("/api/v1/alerts/alertmanager", json=webhook())
    assert r.status_code == 503 and r.headers["retry-after"]


def test_no_notification_lost_across_a_restart(make_config, sink):
    sink.fail = True
    cfg = make_config(config(sink.base))
    from fastapi.testclient import TestClient
    app = create_app(cfg)
    with TestClient(app) as client:
        key = app.state.ctx.keys.create("ingest")[0]
        h = {"Authorization": f"Bearer {key}"}
        assert client.post("/api/v1/alerts/alertmanager", json=webhook(), headers=h).status_code == 200
        until(lambda: any(app.state.ctx.alerts.outbox.pending().values()), 10, "deliveries queued")
        assert sum(len(q) for q in app.state.ctx.alerts.outbox.pending().values()) == 3
    sink.fail = False                       # the sinks come back while revwatch is down
    app2 = create_app(cfg)
    with TestClient(app2) as client2:
        sink.wait("hook"), sink.wait("slack"), sink.wait("pd")
        assert app2.state.ctx.alerts.outbox.wait_idle(10)
        assert len(sink.got["pd"]) == 1 and sink.got["pd"][0]["event_action"] == "trigger"
        # the routing group survived the restart too: the resolve is routed and sent
        assert client2.post("/api/v1/alerts/alertmanager", json=webhook("resolved"), headers=h).status_code == 200
        assert sink.wait("pd", 2)[1]["event_action"] == "resolve"


def test_a_store_failure_while_flushing_loses_nothing(make_config, sink):
    cfg = make_config(config(sink.base))
    store = store_from_config(cfg)
    now = [time.time()]
    svc = AlertService(store, cfg.alerts, Metrics(), SloEngine(store, cfg), None, clock=lambda: now[0])
    svc.load()
    svc.submit(parse_webhook(webhook()))
    assert svc.process_inbox() == 1
    with store_outage(store, RuntimeError("store down")), pytest.raises(StoreError):
        svc.flush_due()
    assert svc.flush_due() == 1                     # decided again, not forgotten
    assert [len(q) for q in svc.outbox.pending().values()] == [1, 1, 1]
    assert svc.flush_due() == 0                     # and only once


def test_silences_api_mutes_and_validates(api_factory, sink):
    api = api_factory(config(sink.base))
    body = {"matchers": [{"name": "slo", "value": "pp"}], "duration": "1h", "createdBy": "ops", "comment": "maint"}
    assert api.post("/api/v1/silences", json=body, scope="ingest").status_code == 403
    r = api.post("/api/v1/silences", json=body, scope="admin")
    assert r.status_code == 200 and r.json()["status"]["state"] == "active"
    sid = r.json()["id"]
    api.post("/api/v1/alerts/alertmanager", json=webhook())
    until(api.ctx.alerts.settled, 10, "the alert applied")      # muted: nothing queued (over group intervals, on a
    assert "pd" not in sink.got                                  # simulated clock: test_a_silence_mutes_until_…)
    assert api.client.delete(f"/api/v1/silences/{sid}", headers=api.auth("admin")).json()["status"]["state"] == \
        "expired"
    sink.wait("pd")
    assert api.get("/api/v1/silences").json()["items"][0]["id"] == sid
    for bad, field in [({"matchers": []}, "matchers"),
                       ({"matchers": [{"name": "a", "value": "("}], "isRegex": True, "duration": "1h"}, "isRegex"),
                       ({"matchers": [{"name": "a", "value": "(", "isRegex": True}], "duration": "1h"},
                        "matchers.0.value"),
                       ({"matchers": [{"name": "a", "value": "b"}]}, "endsAt"),
                       ({"matchers": [{"name": "a", "value": "b"}], "duration": "soon"}, "duration"),
                       ({"matchers": [{"name": "a", "value": "b"}], "endsAt": "2001-01-01T00:00:00Z"}, "endsAt")]:
        r = api.post("/api/v1/silences", json=bad, scope="admin")
        assert r.status_code == 400 and r.json()["field"] == field, (bad, r.json())
    assert api.client.delete("/api/v1/silences/nope", headers=api.auth("admin")).status_code == 404


def test_internal_alerts_for_anomalies_and_probe_failures(api_factory, sink):
    api = api_factory(config(sink.base, extra="""
  internal: {interval: 100ms, anomaly_min_score: 0.8}
""".replace("\n  internal", "\n  internal")).replace(
        "  routes:\n", "  routes:\n    - {match_re: {alertname: 'Revwatch(Anomaly|ProbeDown)'}, notifiers: [hook], "
        "group_by: [alertname], group_wait: 0s, group_interval: 1s}\n"))
    now = dt.datetime.now(dt.timezone.utc)
    api.ctx.store.insert("anomalies", [("f1", "billing_variance", now, "inv_1", "INV/1", 0.95, ["billed 3x plan"],
                                        {"billed": "900.00"}, "open"),
                                       ("f2", "billing_variance", now, "inv_2", "INV/2", 0.1, ["meh"], {}, "open")],
                         ["Id", "Kind", "DetectedAt", "CorrelationId", "Ref", "Score", "Reasons", "Details", "Status"])
    [hook] = sink.wait("hook")
    assert [a["labels"]["ref"] for a in hook["alerts"]] == ["INV/1"]
    with api.ctx.probes._lock:
        api.ctx.probes.last_results["erp"] = {"probe": "erp", "type": "odoo", "up": False, "notes": ["timeout"]}
    hooks = sink.wait("hook", 2)
    assert hooks[1]["alerts"][0]["labels"]["alertname"] == "RevwatchProbeDown"
    with api.ctx.probes._lock:
        api.ctx.probes.last_results["erp"]["up"] = True
    hooks = sink.wait("hook", 3)
    assert hooks[2]["status"] == "resolved" and hooks[2]["alerts"][0]["labels"]["probe"] == "erp"


def test_bad_webhooks_are_400_and_scope(api_factory, sink):
    api = api_factory(config(sink.base))
    assert api.post("/api/v1/alerts/alertmanager", json={"status": "firing"}).json()["field"] == "alerts"
    bad = webhook()
    bad["alerts"][0]["status"] = "exploding"
    assert api.post("/api/v1/alerts/alertmanager", json=bad).json()["field"] == "alerts.0.status"
    bad = webhook()
    bad["alerts"][0]["startsAt"] = "yesterday"
    assert api.post("/api/v1/alerts/alertmanager", json=bad).json()["field"] == "alerts.0.startsAt"
    assert api.post("/api/v1/alerts/alertmanager", content=b"[", headers={"Content-Type": "application/json"}
                    ).status_code == 400
    assert api.post("/api/v1/alerts/alertmanager", json=webhook(), scope="read").status_code == 403
    r = api.post("/api/v1/alerts/alertmanager", json=webhook(slo="unknown"))
    assert r.status_code == 200 and r.json()["received"] == 1
    [hook] = sink.wait("hook")             # an alert naming no known SLO still pages, with what is known
    impact = hook["alerts"][0]["impact"]
    assert impact["attribution"] is None and (impact["class"], impact["reason"]) == ("P2", "severity page")


def test_config_file_refuses_unknown_alert_keys(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("alerts:\n  routes:\n    - {notifiers: [], group_wiat: 1s}\n")
    with pytest.raises(ConfigError, match=r"alerts.routes\[0\].group_wiat: unknown key"):
        load_config(p)


def test_anomaly_alerts_page_through_one_scan_and_honour_amount_threshold(make_config, sink):
    cfg = make_config(config(sink.base, extra="  internal: {anomaly_min_score: 0.9, anomaly_min_amount: 500}\n"))
    store = store_from_config(cfg)
    svc = AlertService(store, cfg.alerts, Metrics(), SloEngine(store, cfg))
    scan_at = dt.datetime.now(dt.timezone.utc)                # one scan stores all its findings at one instant
    rows = [(f"f{i}", "reconciliation_risk", scan_at, f"pay_{i}", f"PAY/{i}", 0.95, ["r"], {}, "open")
            for i in range(5)]
    rows += [("big", "billing_variance", scan_at, "inv_9", "INV/9", 0.2, ["billed 3x"], {"billed": "900.00"}, "open"),
             ("small", "billing_variance", scan_at, "inv_8", "INV/8", 0.2, ["x"], {"billed": "90.00"}, "open")]
    store.insert("anomalies", rows, ["Id", "Kind", "DetectedAt", "CorrelationId", "Ref", "Score", "Reasons", "Details",
                                     "Status"])
    alerts, cursor = svc._anomaly_alerts(page=2)
    assert sorted(a.labels["ref"] for a in alerts) == ["INV/9", "PAY/0", "PAY/1", "PAY/2", "PAY/3", "PAY/4"]
    assert "amount 900.00 ≥ 500" in next(a for a in alerts if a.labels["ref"] == "INV/9").annotations["summary"]
    store.put_state("alerts.anomaly_cursor", cursor)
    assert svc._anomaly_alerts(page=2)[0] == []                # nothing twice


def test_backoff_is_bounded_exponential_with_jitter(make_config, sink):
    cfg = make_config(config(sink.base))
    outbox = AlertService(store_from_config(cfg), cfg.alerts, Metrics(), None).outbox
    for attempts, step in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.4), (30, 0.4)]:   # 100ms doubling, capped at 400ms
        waits = [outbox.backoff(attempts) for _ in range(200)]
        assert all(step / 2 <= w <= step for w in waits) and len({round(w, 6) for w in waits}) > 100


def test_a_4xx_answer_is_final_and_does_not_block_others(api_factory, sink):
    sink.reject_paths = {"pd"}
    api = api_factory(config(sink.base))
    api.post("/api/v1/alerts/alertmanager", json=webhook())
    sink.wait("slack"), sink.wait("hook")
    assert api.ctx.alerts.outbox.wait_idle(10)              # the rejected row has left the queue: nothing can
    assert sink.rejected == 1                               # send it again (the same body cannot succeed)
    metrics = api.get("/metrics").text
    assert 'revwatch_notifications_total{notifier="pd",outcome="rejected"} 1.0' in metrics
    assert {i["notifier"]: i["status"] for i in api.get("/api/v1/notifications").json()["items"]} == \
        {"pd": "rejected", "slack": "delivered", "hook": "delivered"}


def test_a_new_incident_after_a_resolve_gets_new_notification_ids(make_config, sink):
    cfg = make_config(config(sink.base))
    store = store_from_config(cfg)
    now = [time.time()]
    svc = AlertService(store, cfg.alerts, Metrics(), SloEngine(store, cfg), None, clock=lambda: now[0])
    svc.load()                                          # outbox workers not started: everything stays pending
    for status in ("firing", "resolved", "firing"):
        svc.submit(parse_webhook(webhook(status)))
        svc.process_inbox()
        now[0] += 2                                     # past group_interval (1s)
        assert svc.flush_due() == 1
    ids = [d.id for q in svc.outbox.pending().values() for d in q]
    assert len(ids) == 9 and len(set(ids)) == 9        # the old incident's pending rows never hide the new one


def _clocked(make_config, sink):
    """An alert service without threads on a simulated clock: `step` is the dispatcher's pass; the outbox's queue
    (no workers) shows what would be sent."""
    cfg = make_config(config(sink.base))
    store = store_from_config(cfg)
    now = [time.time()]
    svc = AlertService(store, cfg.alerts, Metrics(), SloEngine(store, cfg), None, clock=lambda: now[0])
    svc.load()

    def queued() -> int:
        return sum(len(q) for q in svc.outbox.pending().values())
    return svc, now, queued


def test_resends_change_nothing_over_group_intervals(make_config, sink):
    svc, now, queued = _clocked(make_config, sink)
    svc.submit(parse_webhook(webhook()))
    svc.step()
    assert queued() == 3                                         # hook, slack, pd
    for _ in range(3):                                           # Alertmanager re-sends the same firing alert
        svc.submit(parse_webhook(webhook()))
    for seconds in (1.5, 1.5, 60):                               # past the 1 s group interval, again, a minute on
        now[0] += seconds
        svc.step()
        assert queued() == 3
    svc.submit(parse_webhook(webhook("resolved")))
    now[0] += 1.5
    svc.step()
    assert queued() == 6                                         # the resolve goes out, once


def test_a_silence_mutes_until_it_is_expired(make_config, sink):
    svc, now, queued = _clocked(make_config, sink)
    s = svc.add_silence([{"name": "slo", "value": "pp"}], now[0], now[0] + 3600, "ops", "maint")
    svc.submit(parse_webhook(webhook()))
    for _ in range(3):                                           # flushes at group intervals: muted each time
        svc.step()
        now[0] += 1.5
    assert queued() == 0
    svc.expire_silence(s.id)
    now[0] += 1.5
    svc.step()
    assert queued() == 3
