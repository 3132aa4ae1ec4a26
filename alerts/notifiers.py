"""Notification payloads, exactly as each provider documents them, and how one is sent.

A *notification* is the document the router produces for one flush of one alert group (see `alerts.routing`):
route, group labels, status and the alerts with their business impact. Each notifier turns it into request
bodies (`render`), stored in the outbox *without secrets*; `prepare` adds the secret at send time (PagerDuty's
routing key, the webhook's HMAC signature, Slack's webhook URL), so the store and the logs never hold one.

* webhook — the notification document itself (`"version": "1"`), JSON. With a secret, the header
  `X-Revwatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>` (Stripe's scheme:
  the receiver recomputes it over the raw body and rejects old timestamps, so captured requests cannot be
  replayed). One request per notification.
* slack — an incoming-webhook message with Block Kit blocks, within Slack's documented limits: at most 50 blocks
  per message, header text ≤ 150 characters, section text ≤ 3000, ≤ 10 section fields of ≤ 2000 characters each,
  ≤ 10 context elements, button text ≤ 75 and URL ≤ 3000; `text` is the notification fallback. Every value in a
  mrkdwn text and in `text` is escaped (& < >: `<!channel>` is shown, never pings); plain_text objects (header,
  buttons) are shown verbatim by Slack. Over-long values are cut with "…" (never inside an entity or a link),
  alerts beyond the block budget are counted in a last context block. One request.
* pagerduty — Events API v2 (`POST /v2/enqueue`): one event per alert identity, `event_action` trigger or
  resolve, `dedup_key` stable per SLO, group and severity (`revwatch/slo/<slo>/<group>/<severity>`; the forecast
  alert `…ForecastExhaustion` of the generated rules gets `/forecast` after it — it is another alert than the
  burn-rate page of the same SLO, and sharing its key let the forecast's resolve close the burn page's incident;
  other alerts: their fingerprint), `payload` {summary ≤ 1024, source, severity ∈ critical|error|warning|info,
  timestamp, component, group, class, custom_details with the impact}, `links` [{href, text}], `client`, `client_url`.
  A resolve carries only routing_key, event_action and dedup_key, as documented.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import orjson

from alerts.config import PagerDutyNotifier, SlackNotifier, WebhookNotifier
from revwatch.human import budget_phrase

SLACK_MAX_BLOCKS = 50
SLACK_HEADER_MAX = 150
SLACK_SECTION_MAX = 3000
SLACK_FIELD_MAX = 2000
SLACK_FIELDS_MAX = 10
SLACK_CONTEXT_ELEMENTS_MAX = 10
SLACK_BUTTON_TEXT_MAX = 75
SLACK_URL_MAX = 3000
PD_SUMMARY_MAX = 1024
PD_DEDUP_MAX = 255


class NotConfigured(Exception):
    """A notifier lacks its URL or secret (config or environment): retried, since the env may be fixed."""


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _absolute(url: str | None) -> str | None:
    """Only absolute http(s) URLs go into links and buttons: Slack and PagerDuty reject relative ones, and a
    rejected page is a lost page (no `public_url` configured → no links)."""
    return url if url and url.startswith(("http://", "https://")) else None


def _esc(text: object) -> str:
    """Slack mrkdwn control characters in user text (Slack's formatting reference: escape &, <, >), so a value
    such as `<!channel>`, `<@U123>` or `<b>` is shown, never acted on. Every value interpolated into a mrkdwn
    text (and the fallback `text`, which notifications show as mrkdwn) goes through here; `plain_text` objects
    (header, buttons) are shown verbatim by Slack and are not escaped."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str) -> str:
    """A mrkdwn link `<url|label>`: the URL escaped and `|` encoded (it would end the URL), the label escaped."""
    return f"<{_esc(url).replace('|', '%7C')}|{_esc(label)}>"


def _cut_mrkdwn(text: str, limit: int) -> str:
    """`_cut` for escaped mrkdwn: never cuts inside an entity (`&amp;`) or a link (`<…|…>`)."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    amp, lt = cut.rfind("&"), cut.rfind("<")
    if amp > cut.rfind(";"):
        cut = cut[:amp]
    if lt > cut.rfind(">"):
        cut = cut[:lt]
    return cut + "…"


def dumps(doc: Any) -> bytes:
    """The one JSON encoding of payloads (sorted keys: stable bodies, stable golden files)."""
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


# -- common wording ------------------------------------------------------------------------------------------
def _title(a: dict) -> str:
    labels = a["labels"]
    what = labels.get("slo") or labels.get("probe") or labels.get("anomaly_kind") or labels.get("alertname", "")
    group = labels.get("group")
    return f"{labels.get('alertname', 'alert')} {what}" + (f" [{group}]" if group else "")


def _money(impact: dict) -> str:
    money = (impact.get("attribution") or {}).get("money_at_risk") or {}
    return ", ".join(f"{cur} {amt}" for cur, amt in money.items()) or "none known"


def summary_line(a: dict) -> str:
    """One line for a person: impact class, what, money, team."""
    imp = a.get("impact") or {}
    parts = [f"[{imp['class']}]" if imp.get("class") else "", _title(a)]
    if a["status"] == "resolved":
        parts.append("resolved")
    else:
        parts.append(a["annotations"].get("summary", ""))
        if (imp.get("attribution") or {}).get("money_at_risk"):
            parts.append(f"money at risk {_money(imp)}")
        if imp.get("recommended_team"):
            parts.append(f"→ {imp['recommended_team']}")
    return " · ".join(p for p in parts if p)


# -- webhook -------------------------------------------------------------------------------------------------
def render_webhook(n: dict) -> list[dict]:
    return [{"version": "1", **n}]


def sign(secret: str, body: bytes, now: int) -> str:
    """The X-Revwatch-Signature header value for `body` sent at `now` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={now},v1={mac}"


# -- slack ---------------------------------------------------------------------------------------------------
def _alert_blocks(a: dict) -> list[dict]:
    imp = a.get("impact") or {}
    att = imp.get("attribution") or {}
    status = "RESOLVED" if a["status"] == "resolved" else "FIRING"
    text = f"*{status}* {_esc(_title(a))}"
    if a["annotations"].get("summary"):
        text += f"\n{_esc(a['annotations']['summary'])}"
    if a["annotations"].get("description") and a["status"] != "resolved":
        text += f"\n{_esc(a['annotations']['description'])}"
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn",
                                                        "text": _cut_mrkdwn(text, SLACK_SECTION_MAX)}}]
    if a["status"] == "resolved":
        return blocks
    fields = []
    if imp.get("class"):
        fields.append(f"*Impact*\n{_esc(imp['class'])}: {_esc(imp.get('reason', ''))}")
    if imp.get("recommended_team"):
        fields.append(f"*Route to*\n{_esc(imp['recommended_team'])} ({_esc(imp.get('recommendation_reason', ''))})")
    if att.get("money_at_risk") is not None and att.get("journey"):
        fields.append(f"*Money at risk*\n{_esc(_money(imp))}")
    inst = att.get("instances")
    if inst:
        fields.append(f"*Instances*\n{_esc(inst['stuck'])} stuck, {_esc(inst['late'])} late of "
                      f"{_esc(inst['started'])}")
    budget = att.get("budget") or {}
    if budget.get("remaining_ratio") is not None:
        days = (budget.get("days_until_exhausted") or {}).get("1h")
        fields.append(f"*Error budget*\n{budget_phrase(budget['remaining_ratio'])}" +   # overspend reads as such
                      (f", exhausted in {days:.1f} d at the 1h rate"
                       if days is not None and budget["remaining_ratio"] > 0 else ""))
    if att.get("failing_step"):
        fields.append(f"*Failing step*\n{_esc(att['failing_step'])}")
    over = att.get("over_represented") or []
    if over:
        fields.append("*Over-represented*\n" + ", ".join(
            f"{_esc(o['attribute'])}={_esc(o['value'])} ({o['bad_share']:.0%} of bad, {o['lift']}×)" for o in over[:3]))
    if fields:
        blocks[0]["fields"] = [{"type": "mrkdwn", "text": _cut_mrkdwn(f, SLACK_FIELD_MAX)}
                               for f in fields[:SLACK_FIELDS_MAX]]
    examples = att.get("oldest_stuck") or []
    if examples:
        def example(e: dict) -> str:
            ref = _link(e["link"], e["correlation_id"]) if _absolute(e.get("link")) else _esc(e["correlation_id"])
            return _cut_mrkdwn(f"{ref} {_esc(e.get('currency') or '')} {_esc(e.get('amount') or '')} waiting for "
                               f"{_esc(e['waiting_for'])} for {e['age_seconds'] / 60:.0f} min", SLACK_SECTION_MAX)
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": example(e)} for e in examples[:SLACK_CONTEXT_ELEMENTS_MAX]]})
    links = [(t, u) for t, u in (("Open SLO", _absolute(a.get("links", {}).get("slo"))),
                                 ("Stuck journeys", _absolute(a.get("links", {}).get("journeys")))) if u]
    if links:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": _cut(t, SLACK_BUTTON_TEXT_MAX)},
             "url": u[:SLACK_URL_MAX]} for t, u in links]})
    return blocks


def render_slack(n: dict) -> list[dict]:
    firing = [a for a in n["alerts"] if a["status"] == "firing"]
    resolved = [a for a in n["alerts"] if a["status"] == "resolved"]
    worst = min((a.get("impact", {}).get("class") or "P9" for a in firing), default=None)
    head = (f"[{'FIRING:' + str(len(firing)) if firing else 'RESOLVED'}]"
            + (f" {worst}" if worst and worst != "P9" else "") + " " + ", ".join(
                f"{k}={v}" for k, v in n["group_labels"].items()))
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": _cut(head, SLACK_HEADER_MAX)}}]
    shown = 0
    for a in firing + resolved:
        more = _alert_blocks(a)
        if len(blocks) + len(more) + 1 > SLACK_MAX_BLOCKS:   # keep one block for the "more" note
            break
        blocks += more
        shown += 1
    if shown < len(n["alerts"]):
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"+{len(n['alerts']) - shown} more alert(s) not shown"}]})
    # the fallback is mrkdwn too (push notifications, clients without blocks): every value escaped
    text = _cut_mrkdwn(_esc(head) + "\n" + "\n".join(_esc(summary_line(a)) for a in firing + resolved),
                       SLACK_SECTION_MAX)
    return [{"text": text, "blocks": blocks}]


# -- pagerduty ------------------------------------------------------------------------------------------------
def dedup_key(labels: dict[str, str], fingerprint: str) -> str:
    """Stable per SLO, group and severity (so re-sends and resolves hit the same PagerDuty alert)."""
    if labels.get("slo"):
        key = f"revwatch/slo/{labels['slo']}/{labels.get('group', '')}/{labels.get('severity', '')}"
        if labels.get("alertname", "").endswith("ForecastExhaustion"):     # slo/rules.py: its own incident
            key += "/forecast"
    else:
        key = f"revwatch/alert/{fingerprint}"
    return key if len(key) <= PD_DEDUP_MAX else "revwatch/" + hashlib.sha256(key.encode()).hexdigest()


def render_pagerduty(n: dict, cfg: PagerDutyNotifier) -> list[dict]:
    out = []
    for a in n["alerts"]:
        key = dedup_key(a["labels"], a["fingerprint"])
        if a["status"] == "resolved":
            out.append({"event_action": "resolve", "dedup_key": key})
            continue
        imp = a.get("impact") or {}
        att = imp.get("attribution") or {}
        labels = a["labels"]
        event: dict[str, Any] = {
            "event_action": "trigger", "dedup_key": key,
            "payload": {
                "summary": _cut(summary_line(a), PD_SUMMARY_MAX),
                "source": labels.get("journey") or labels.get("instance") or "revwatch",
                "severity": cfg.severity.get(labels.get("severity", ""), "error"),
                "timestamp": a["starts_at"],
                "component": att.get("failing_system") or labels.get("probe") or labels.get("slo") or "revwatch",
                "group": labels.get("journey") or labels.get("slo") or labels.get("alertname", ""),
                "class": labels.get("alertname", ""),
                "custom_details": {"impact": imp, "labels": labels, "annotations": a["annotations"]},
            },
            "client": "revwatch",
        }
        links = [{"href": u, "text": t} for t, u in (("SLO", _absolute(a.get("links", {}).get("slo"))),
                                                    ("Stuck journeys", _absolute(a.get("links", {}).get("journeys"))))
                 if u]
        links += [{"href": e["link"], "text": f"Oldest stuck: {e['correlation_id']}"}
                  for e in (att.get("oldest_stuck") or [])[:3] if _absolute(e.get("link"))]
        if links:
            event["links"] = links
        if _absolute(n.get("public_url")):
            event["client_url"] = n["public_url"]
        out.append(event)
    return out


# -- dispatch -------------------------------------------------------------------------------------------------
def render(notifier, n: dict) -> list[dict]:
    """The request bodies (without secrets) a notifier sends for notification `n`."""
    if isinstance(notifier, WebhookNotifier):
        return render_webhook(n)
    if isinstance(notifier, SlackNotifier):
        return render_slack(n)
    return render_pagerduty(n, notifier)


def prepare(notifier, body: dict, now: int | None = None) -> tuple[str, bytes, dict[str, str]]:
    """(url, raw body, headers) ready to POST: the secret is added here and nowhere else."""
    headers = {"Content-Type": "application/json", "User-Agent": "revwatch-notifier/1"}
    url = notifier.resolve("url")
    if not url:
        raise NotConfigured("no url configured (url or url_env)")
    if isinstance(notifier, PagerDutyNotifier):
        key = notifier.resolve("routing_key")
        if not key:
            raise NotConfigured("no routing key configured (routing_key or routing_key_env)")
        body = {"routing_key": key, **body}
    raw = dumps(body)
    if isinstance(notifier, WebhookNotifier):
        headers.update(notifier.headers)
        secret = notifier.resolve("secret")
        if secret:
            headers["X-Revwatch-Signature"] = sign(secret, raw, int(now if now is not None else time.time()))
    return url, raw, headers
