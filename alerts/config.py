"""The typed `alerts:` section of the config: notifiers, routes, impact classes, ownership, internal alerts.

Unknown keys are refused (a typo such as `group_wiat` must not silently mean "default"). Secrets (webhook HMAC
secrets, Slack webhook URLs, PagerDuty routing keys) come from the file or, better, from an environment variable
named by `*_env`; they are resolved when a notification is sent, never stored in the outbox and never logged.

This module imports nothing of revwatch but `revwatch.units`, so `revwatch.config` can embed it.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from revwatch.units import iana_time_zone, parse_duration

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _dur(v: Any) -> dt.timedelta:
    return v if isinstance(v, dt.timedelta) else parse_duration(v)


class _Secret(_Model):
    """Resolve `<name>` or `<name>_env`: the literal value, else the named environment variable."""

    def resolve(self, name: str) -> str | None:
        value = getattr(self, name, None)
        if value:
            return value
        env = getattr(self, f"{name}_env", None)
        return os.environ.get(env) if env else None


class _Endpoint(_Secret):
    url: str | None = None
    url_env: str | None = None
    timeout: dt.timedelta = dt.timedelta(seconds=10)
    _t = field_validator("timeout", mode="before")(classmethod(lambda cls, v: _dur(v)))


class WebhookNotifier(_Endpoint):
    """Generic JSON webhook. With a secret, `X-Revwatch-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret,
    "<unix>." + body)>` (the timestamp is signed too, so a captured request cannot be replayed later)."""
    type: Literal["webhook"]
    secret: str | None = None
    secret_env: str | None = None
    headers: dict[str, str] = {}


class SlackNotifier(_Endpoint):
    """Slack incoming webhook (the URL is the secret)."""
    type: Literal["slack"]


class PagerDutyNotifier(_Endpoint):
    """PagerDuty Events API v2."""
    type: Literal["pagerduty"]
    url: str | None = "https://events.pagerduty.com/v2/enqueue"
    routing_key: str | None = None
    routing_key_env: str | None = None
    severity: dict[str, Literal["critical", "error", "warning", "info"]] = {
        "page": "critical", "ticket": "warning", "critical": "critical", "warning": "warning", "info": "info"}


Notifier = Annotated[Union[WebhookNotifier, SlackNotifier, PagerDutyNotifier], Field(discriminator="type")]


class QuietHours(_Model):
    """Notifications of the route are held (not dropped) from `start` to `end` local time on `days`; they go
    out when the quiet time ends if the alerts still warrant it. `end` before `start` spans midnight."""
    start: dt.time
    end: dt.time
    timezone: str = "UTC"
    days: list[Day] = list(DAYS)

    _tz = field_validator("timezone")(classmethod(lambda cls, v: iana_time_zone(v)))

    def quiet_until(self, now: dt.datetime) -> dt.datetime | None:
        """When the quiet time containing `now` ends (UTC), or None when `now` is not quiet."""
        local = now.astimezone(ZoneInfo(self.timezone))
        for back in (0, 1):                      # a window that began yesterday may still run
            day = local.date() - dt.timedelta(days=back)
            if DAYS[day.weekday()] not in self.days:
                continue
            start = dt.datetime.combine(day, self.start, local.tzinfo)
            end = dt.datetime.combine(day + dt.timedelta(days=1 if self.end <= self.start else 0), self.end,
                                      local.tzinfo)
            if start <= local < end:
                return end.astimezone(dt.timezone.utc)
        return None


class RouteConfig(_Model):
    """Alerts whose labels equal every `match` value and fully match every `match_re` regex go to `notifiers`,
    grouped by `group_by` with Alertmanager's group_wait / group_interval / repeat_interval. Routes are tried
    in order; the first match wins unless it says `continue: true`."""
    name: str | None = None
    match: dict[str, str] = {}
    match_re: dict[str, str] = {}
    notifiers: list[str]
    group_by: list[str] = ["alertname", "slo", "group"]
    group_wait: dt.timedelta = dt.timedelta(seconds=30)
    group_interval: dt.timedelta = dt.timedelta(minutes=5)
    repeat_interval: dt.timedelta = dt.timedelta(hours=4)
    send_resolved: bool = True
    continue_: bool = Field(False, alias="continue")
    quiet_hours: QuietHours | None = None

    _d = field_validator("group_wait", "group_interval", "repeat_interval", mode="before")(
        classmethod(lambda cls, v: _dur(v)))

    @field_validator("match_re")
    @classmethod
    def _regexes(cls, v: dict[str, str]) -> dict[str, str]:
        for k, rx in v.items():
            try:
                re.compile(rx)
            except re.error as e:
                raise ValueError(f"match_re.{k}: not a regular expression ({e})") from e
        return v

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(k, "") == v for k, v in self.match.items()) and \
            all(re.fullmatch(rx, labels.get(k, "")) for k, rx in self.match_re.items())


class ImpactClass(_Model):
    """An impact class; it applies when ANY of its set conditions holds (classes are tried most severe first)."""
    name: str
    min_amount: dict[str, float] = {}      # money at risk in a currency ≥ this
    min_customers: int | None = None       # customers (or instances) affected ≥ this
    criticality: list[str] = []            # the journey's declared criticality is one of these
    max_budget_left: float | None = None   # error budget remaining ratio ≤ this
    severity: list[str] = []               # the alert's severity label is one of these


def _default_classes() -> list[ImpactClass]:
    return [ImpactClass(name="P1", min_amount={"EUR": 10000, "USD": 10000, "GBP": 10000}, min_customers=100,
                        criticality=["critical"], max_budget_left=0.0),
            ImpactClass(name="P2", min_amount={"EUR": 1000, "USD": 1000, "GBP": 1000}, min_customers=10,
                        criticality=["high"], max_budget_left=0.25, severity=["page"]),
            ImpactClass(name="P3", min_amount={"EUR": 1, "USD": 1, "GBP": 1}, min_customers=1,
                        max_budget_left=0.75)]


class ImpactConfig(_Model):
    classes: list[ImpactClass] = Field(default_factory=_default_classes)
    default_class: str = "P4"
    criticality: dict[str, Literal["critical", "high", "medium", "low"]] = {}   # journey → criticality


class OwnershipConfig(_Model):
    """Who owns what: the failing step (event type), source system, service, journey or SLO → team."""
    steps: dict[str, str] = {}
    systems: dict[str, str] = {}
    services: dict[str, str] = {}
    journeys: dict[str, str] = {}
    slos: dict[str, str] = {}
    default: str | None = None


class InternalAlertsConfig(_Model):
    """Revwatch's own alerts (anomaly findings, failing probes), routed like Alertmanager's."""
    enabled: bool = True
    interval: dt.timedelta = dt.timedelta(seconds=30)
    anomaly_min_score: float = 0.9
    anomaly_min_amount: float | None = None       # a finding with details.amount ≥ this alerts whatever its score
    anomaly_severity: str = "ticket"
    anomaly_ttl: dt.timedelta = dt.timedelta(hours=1)   # a finding resolves this long after it was last seen
    probe_severity: str = "page"

    _d = field_validator("interval", "anomaly_ttl", mode="before")(classmethod(lambda cls, v: _dur(v)))


class DeliveryConfig(_Model):
    """Outbox delivery: exponential backoff from `backoff_initial` doubling to `backoff_max` (full jitter),
    giving up after `give_up_after` (the notification is then marked failed and counted)."""
    backoff_initial: dt.timedelta = dt.timedelta(seconds=1)
    backoff_max: dt.timedelta = dt.timedelta(minutes=5)
    give_up_after: dt.timedelta = dt.timedelta(hours=24)
    tick: dt.timedelta = dt.timedelta(milliseconds=200)

    _d = field_validator("backoff_initial", "backoff_max", "give_up_after", "tick", mode="before")(
        classmethod(lambda cls, v: _dur(v)))


class InhibitRule(_Model):
    """Alertmanager's inhibition: while an alert matching `source_match` fires, alerts matching `target_match`
    whose `equal` labels have the same values are muted (left out of notifications, like a silence)."""
    source_match: dict[str, str]
    target_match: dict[str, str]
    equal: list[str] = []

    def inhibits(self, source: dict[str, str], target: dict[str, str]) -> bool:
        return all(source.get(k, "") == v for k, v in self.source_match.items()) and \
            all(target.get(k, "") == v for k, v in self.target_match.items()) and \
            all(source.get(k, "") == target.get(k, "") for k in self.equal)


def _default_inhibit() -> list[InhibitRule]:
    return [InhibitRule(source_match={"severity": "page"}, target_match={"severity": "ticket"},
                        equal=["slo", "group"])]


class DirectConfig(_Model):
    """revwatch's own SLO alerts go from the evaluator straight into the inbox and routing (alerts/direct.py).

    A severity fires once its condition has held for the tiers' `alert_after` (Prometheus `for:`), and resolves
    once the condition has been false for `keep_firing_for` (Prometheus `keep_firing_for`). While enabled,
    Alertmanager alerts from the generated rules of the same SLOs are not routed (they would page twice).

    `history_retention`: how long the per-SLO alert history (alerts/history.py) keeps a transition (its rows'
    `ExpiresAt`; the table's TTL drops them after). 400 days by default: a year of monthly reports and a margin."""
    enabled: bool = True
    keep_firing_for: dt.timedelta = dt.timedelta(0)
    history_retention: dt.timedelta = dt.timedelta(days=400)

    _d = field_validator("keep_firing_for", "history_retention", mode="before")(
        classmethod(lambda cls, v: _dur(v)))

    @field_validator("history_retention")
    @classmethod
    def _positive_retention(cls, v: dt.timedelta) -> dt.timedelta:
        if v < dt.timedelta(days=1):
            raise ValueError("must be at least 1d (the history is read over days and windows)")
        return v


class AlertsConfig(_Model):
    public_url: str = ""                       # base of links a person opens (the revwatch UI/API as reachable)
    notifiers: dict[str, Notifier] = {}
    routes: list[RouteConfig] = []
    impact: ImpactConfig = Field(default_factory=ImpactConfig)
    ownership: OwnershipConfig = Field(default_factory=OwnershipConfig)
    internal: InternalAlertsConfig = Field(default_factory=InternalAlertsConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    inhibit_rules: list[InhibitRule] = Field(default_factory=_default_inhibit)
    direct: DirectConfig = Field(default_factory=DirectConfig)

    @model_validator(mode="after")
    def _known_notifiers(self) -> "AlertsConfig":
        for i, r in enumerate(self.routes):
            for n in r.notifiers:
                if n not in self.notifiers:
                    raise ValueError(f"routes.{i}.notifiers: unknown notifier {n!r} (define it under "
                                     f"alerts.notifiers)")
        return self
