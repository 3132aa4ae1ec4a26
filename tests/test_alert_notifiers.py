"""Each notifier's payload, pinned by golden files (regenerate with REVWATCH_UPDATE_GOLDEN=1), within the providers'
documented limits; secrets are added only when sending."""
import hashlib
import hmac
import json
import os
import re
from pathlib import Path

import orjson
import pytest

from alerts.config import AlertsConfig
from alerts.notifiers import (SLACK_FIELD_MAX, SLACK_HEADER_MAX, SLACK_MAX_BLOCKS, SLACK_SECTION_MAX, dedup_key,
                              prepare, render)

GOLDEN = Path(__file__).parent / "golden" / "alerts"

IMPACT = {
    "class": "P2", "reason": "money at risk EUR 1500.00 ≥ 1000; severity page",
    "recommended_team": "erp-team",
    "recommendation_reason": "failing step payment.posted is owned by erp-team (ownership.steps)",
    "attribution": {
        "slo": "payment-posting-15m", "group": "stripe", "journey": "payment_to_posting", "objective": 0.995,
        "at": "2026-11-23T10:05:00Z",
        "budget": {"remaining_ratio": -0.42, "days_until_exhausted": {"1h": 0.0, "6h": 0.0},
                   "burn_rate": {"5m": 180.0, "1h": 96.5}, "bad": 71, "allowed_bad": 50.0, "unit": "events"},
        "instances": {"started": 412, "stuck": 12, "late": 3, "bad": 15, "lookback_seconds": 604800.0,
                      "threshold_seconds": 900.0},
        "steps": [{"step": "payment.posted", "after": "payment.settled", "stuck": 12, "late": 3}],
        "failing_step": "payment.posted", "failing_system": "stripe",
        "over_represented": [{"attribute": "company", "value": "ACME GmbH", "bad": 12, "total": 40,
                              "bad_share": 0.8, "overall_share": 0.0971, "lift": 8.24}],
        "money_at_risk": {"EUR": "1500.00", "USD": "99.90"}, "customers_affected": 11,
        "oldest_stuck": [{"correlation_id": "pay_3008", "started_at": "2026-11-23T09:20:00Z", "age_seconds": 2700.0,
                          "overdue_seconds": 1800.0, "waiting_for": "payment.posted", "source": "stripe",
                          "amount": "250.00", "currency": "EUR",
                          "link": "https://revwatch.example.com/api/v1/journeys/pay_3008"}],
    },
}


def notification(status="firing") -> dict:
    firing = {"fingerprint": "0f3c2a", "status": "firing",
              "labels": {"alertname": "RevwatchSLOBurnRatePage", "slo": "payment-posting-15m", "group": "stripe",
                         "journey": "payment_to_posting", "severity": "page"},
              "annotations": {"summary": "SLO payment-posting-15m is burning its error budget too fast",
                              "description": "burn rate 96.5 over 1h (threshold 14.4)"},
              "starts_at": "2026-11-23T10:00:00.000Z", "ends_at": None, "origin": "alertmanager",
              "links": {"slo": "https://revwatch.example.com/api/v1/slos/payment-posting-15m",
                        "journeys": "https://revwatch.example.com/api/v1/journeys?journey=payment_to_posting"
                                    "&status=overdue"},
              "impact": IMPACT}
    alerts = [firing]
    if status == "resolved":
        alerts = [{**firing, "status": "resolved", "ends_at": "2026-11-23T10:40:00.000Z"}]
        del alerts[0]["impact"]
    return {"id": "a1b2c3-1", "route": "pages", "group_key": "a1b2c3", "group_labels": {"slo": "payment-posting-15m"},
            "status": status, "alerts": alerts, "public_url": "https://revwatch.example.com",
            "created_at": "2026-11-23T10:05:00.000Z"}


CFG = AlertsConfig.model_validate({"notifiers": {
    "hook": {"type": "webhook", "url": "https://hooks.example.com/rw", "secret_env": "RW_TEST_HOOK_SECRET"},
    "slack": {"type": "slack", "url_env": "RW_TEST_SLACK_URL"},
    "pd": {"type": "pagerduty", "routing_key_env": "RW_TEST_PD_KEY"}}})


def golden(name: str, doc) -> None:
    p = GOLDEN / name
    text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get("REVWATCH_UPDATE_GOLDEN"):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    assert p.read_text() == text, f"{name} differs from the golden file (REVWATCH_UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize("notifier", ["hook", "slack", "pd"])
@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_payload_golden(notifier, status):
    golden(f"{notifier}-{status}.json", render(CFG.notifiers[notifier], notification(status)))


def test_pagerduty_event_shape_and_secret_added_only_when_sending(monkeypatch):
    [trigger] = render(CFG.notifiers["pd"], notification())
    assert "routing_key" not in trigger           # what the outbox stores has no secret
    assert trigger["event_action"] == "trigger" and trigger["payload"]["severity"] == "critical"
    assert set(trigger["payload"]) == {"summary", "source", "severity", "timestamp", "component", "group", "class",
                                       "custom_details"}
    assert trigger["payload"]["custom_details"]["impact"]["attribution"]["money_at_risk"] == {"EUR": "1500.00",
                                                                                             "USD": "99.90"}
    assert all(set(link) == {"href", "text"} for link in trigger["links"])
    [resolve] = render(CFG.notifiers["pd"], notification("resolved"))
    assert resolve == {"event_action": "resolve", "dedup_key": trigger["dedup_key"]}
    assert trigger["dedup_key"] == "revwatch/slo/payment-posting-15m/stripe/page"
    assert dedup_key({"slo": "x" * 300, "severity": "page"}, "f").startswith("revwatch/") and \
        len(dedup_key({"slo": "x" * 300}, "f")) <= 255
    monkeypatch.delenv("RW_TEST_PD_KEY", raising=False)
    with pytest.raises(Exception, match="routing key"):
        prepare(CFG.notifiers["pd"], trigger)
    monkeypatch.setenv("RW_TEST_PD_KEY", "R0UT1NGKEY")
    url, raw, headers = prepare(CFG.notifiers["pd"], trigger)
    assert url == "https://events.pagerduty.com/v2/enqueue" and orjson.loads(raw)["routing_key"] == "R0UT1NGKEY"


def test_webhook_hmac_signature_verifies(monkeypatch):
    monkeypatch.setenv("RW_TEST_HOOK_SECRET", "s3cret")
    [body] = render(CFG.notifiers["hook"], notification())
    url, raw, headers = prepare(CFG.notifiers["hook"], body, now=1_790_000_000)
    t, v1 = (kv.split("=", 1)[1] for kv in headers["X-Revwatch-Signature"].split(","))
    assert t == "1790000000"
    assert v1 == hmac.new(b"s3cret", b"1790000000." + raw, hashlib.sha256).hexdigest()
    assert orjson.loads(raw)["alerts"][0]["impact"]["class"] == "P2"


def test_slack_stays_within_block_kit_limits():
    n = notification()
    big = n["alerts"][0]
    big["annotations"] = {"summary": "S" * 5000, "description": "D" * 5000}
    n["group_labels"] = {"slo": "L" * 400}
    n["alerts"] = [{**big, "fingerprint": f"f{i}"} for i in range(60)]
    [msg] = render(CFG.notifiers["slack"], n)
    blocks = msg["blocks"]
    assert len(blocks) <= SLACK_MAX_BLOCKS
    assert len(blocks[0]["text"]["text"]) <= SLACK_HEADER_MAX
    for b in blocks:
        if b["type"] == "section":
            assert len(b["text"]["text"]) <= SLACK_SECTION_MAX
            assert len(b.get("fields", [])) <= 10 and all(len(f["text"]) <= SLACK_FIELD_MAX for f in b["fields"])
        if b["type"] == "context":
            assert len(b["elements"]) <= 10
    assert "more alert(s) not shown" in blocks[-1]["elements"][0]["text"]
    assert len(msg["text"]) <= SLACK_SECTION_MAX


def test_without_public_url_no_relative_links_and_slack_text_is_escaped():
    n = notification()
    n["public_url"] = ""
    a = n["alerts"][0]
    a["links"] = {}
    a["annotations"] = {"summary": "fees <5% & rising > plan"}
    a["impact"] = {**IMPACT, "attribution": {**IMPACT["attribution"], "oldest_stuck": [
        {**IMPACT["attribution"]["oldest_stuck"][0], "link": "/api/v1/journeys/pay_3008"}]}}
    [trigger] = render(CFG.notifiers["pd"], n)
    assert "links" not in trigger and "client_url" not in trigger
    [msg] = render(CFG.notifiers["slack"], n)
    assert not any(b["type"] == "actions" for b in msg["blocks"])
    assert "fees &lt;5% &amp; rising &gt; plan" in msg["blocks"][1]["text"]["text"]
    context = next(b for b in msg["blocks"] if b["type"] == "context")
    assert context["elements"][0]["text"].startswith("pay_3008 EUR 250.00")     # plain id, no broken link


HOSTILE = "<!channel> <@U123> & <b>x</b>"


def _hostile(value):
    """Every string of a document replaced by text that Slack mrkdwn would act on (keys and links kept)."""
    if isinstance(value, dict):
        return {k: (v if k in ("link", "slo", "journeys") and isinstance(v, str) and v.startswith("http")
                    else _hostile(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_hostile(v) for v in value]
    return f"{value} {HOSTILE}" if isinstance(value, str) else value


def _mrkdwn_texts(body: dict) -> list[str]:
    out = [body["text"]]
    for b in body["blocks"]:
        for t in [b.get("text")] + b.get("fields", []) + b.get("elements", []):
            if isinstance(t, dict) and t.get("type") == "mrkdwn":
                out.append(t["text"])
    return out


def test_slack_escapes_every_value_in_every_mrkdwn_field_and_the_fallback_text():
    n = notification()
    n["alerts"][0] = {**_hostile(n["alerts"][0]), "status": "firing"}
    n["group_labels"] = _hostile(n["group_labels"])
    n["alerts"][0]["impact"]["attribution"]["oldest_stuck"][0]["link"] = \
        "https://revwatch.example.com/ui/journeys/pay|<x>&y"
    (body,) = render(AlertsConfig.model_validate({"notifiers": {"s": {"type": "slack", "url": "http://x"}}})
                     .notifiers["s"], n)
    texts = _mrkdwn_texts(body)
    assert len(texts) >= 8                             # fallback, section, every field, the context example
    link = "<https://revwatch.example.com/ui/journeys/pay%7C&lt;x&gt;&amp;y|"
    for t in texts:
        bare = re.sub(r"<https://[^|<>]+\|[^<>]*>", "", t)    # well-formed links are the only markup left
        assert "<" not in bare and ">" not in bare, t
        assert "<!channel>" not in t and "<@U123>" not in t and "<b>" not in t, t
        assert not re.search(r"&(?!amp;|lt;|gt;)", t), t
    assert "&lt;!channel&gt;" in body["text"] and "&lt;@U123&gt;" in body["text"] and "&amp;" in body["text"]
    assert any(link in t for t in texts)
    # plain_text objects are shown verbatim by Slack: the header keeps the value as is
    assert HOSTILE in body["blocks"][0]["text"]["text"] and body["blocks"][0]["text"]["type"] == "plain_text"


def test_slack_cuts_never_split_an_entity():
    from alerts.notifiers import _cut_mrkdwn
    assert _cut_mrkdwn("ab&amp;cd", 5) == "ab…"
    assert _cut_mrkdwn("ab<http://x|y>cd", 8) == "ab…"
    assert _cut_mrkdwn("abc&amp;", 20) == "abc&amp;"


def test_the_forecast_page_and_the_burn_rate_page_are_separate_pagerduty_incidents():
    """Both carry the SLO's page labels (slo/rules.py); on one key the forecast's resolve closed the burn page's
    incident in PagerDuty while the SLO still burned."""
    page = {"alertname": "RevwatchSLOBurnRatePage", "slo": "pp", "group": "", "severity": "page"}
    forecast = {**page, "alertname": "RevwatchSLOForecastExhaustion"}
    assert dedup_key(page, "f1") == "revwatch/slo/pp//page"
    assert dedup_key(forecast, "f2") == "revwatch/slo/pp//page/forecast"
    assert dedup_key({**forecast, "alertname": "PaymentsForecastExhaustion"}, "f3").endswith("/forecast")
