"""Current values of Prometheus-backed SLOs, read from Prometheus's HTTP query API (`prometheus_url`).

Prometheus computes these SLOs from the rules `revwatch slo rules` wrote (slo/sloth_rules.py), so revwatch reads
back the same recordings Sloth's dashboards read: `slo:sli_error:ratio_rate<W>` per window (label `sloth_window`),
`slo:period_error_budget_remaining:ratio`, and the firing `ALERTS` of the SLO's alerts (`sloth_severity`).
Three instant queries per read cover every SLO (selected by `sloth_id`), as of `at` when given.

A Prometheus that is down, slow or answers garbage degrades only these SLOs: each gets `state: unknown` and an
`error` naming the cause; nothing raises into the API.
"""
from __future__ import annotations

import datetime as dt
import logging
import re

import httpx

from slo.sloth_rules import objective_percent, prom_duration, slo_id_labels
from slo.spec import SloSpec
from slo.state import decide

log = logging.getLogger("revwatch.slo")


def _regex_alternation(values: list[str]) -> str:
    return "|".join(re.escape(v).replace("\\", "\\\\").replace('"', '\\"') for v in values)


class PrometheusReader:
    """Reads Prometheus-backed SLO values; one instance per server, thread-safe (httpx.Client is)."""

    def __init__(self, url: str, timeout: float = 5.0, transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        self.client = httpx.Client(timeout=timeout, transport=transport)

    def _query(self, promql: str, at: dt.datetime | None) -> list[dict]:
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        r = self.client.get(f"{self.url}/api/v1/query", params=params)
        body = r.json()
        if r.status_code != 200 or body.get("status") != "success":
            raise ValueError(f"HTTP {r.status_code}: {body.get('error', 'query failed')}")
        if body["data"]["resultType"] != "vector":
            raise ValueError(f"unexpected result type {body['data']['resultType']}")
        return body["data"]["result"]

    def read(self, specs: list[SloSpec], at: dt.datetime | None = None) -> list[dict]:
        """One document per SLO: SLI error ratio and burn rate per window, budget left, alert state."""
        if not specs:
            return []
        ids = {slo_id_labels(s)["sloth_id"]: s for s in specs}
        sel = f'sloth_id=~"{_regex_alternation(list(ids))}"'
        try:
            ratios = self._query(f'{{__name__=~"slo:sli_error:ratio_rate.+",{sel}}}', at)
            budgets = self._query(f"slo:period_error_budget_remaining:ratio{{{sel}}}", at)
            alerts = self._query(f'ALERTS{{alertstate="firing",{sel}}}', at)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
            log.warning("reading Prometheus-backed SLOs from %s failed: %s", self.url, e)
            return [self._doc(s, at, error=f"Prometheus at {self.url} unavailable: {e}") for s in specs]
        docs = {sid: self._doc(s, at) for sid, s in ids.items()}
        for sample in ratios:
            m = sample["metric"]
            doc = docs.get(m.get("sloth_id"))
            if doc is None or "sloth_window" not in m:
                continue
            err = float(sample["value"][1])
            budget = (100 - objective_percent(ids[m["sloth_id"]])) / 100
            doc["windows"][m["sloth_window"]] = {"error_ratio": err, "sli": 1 - err, "burn_rate": err / budget}
        for sample in budgets:
            doc = docs.get(sample["metric"].get("sloth_id"))
            if doc is not None:
                doc["budget"]["remaining_ratio"] = float(sample["value"][1])
        for sample in alerts:
            m = sample["metric"]
            doc = docs.get(m.get("sloth_id"))
            if doc is None:
                continue
            sev = m.get("sloth_severity", "")
            doc["alerts"].append({"alertname": m.get("alertname"), "severity": sev, "firing": True})
        for sid, doc in docs.items():
            period = prom_duration(ids[sid].nominal_period.total_seconds())
            if period in doc["windows"]:
                doc["sli"] = doc["windows"][period]["sli"]
            # the one decision (slo/state.py); Prometheus gives no event count: a window with a ratio has data
            doc["state"] = decide((a["severity"] for a in doc["alerts"]), doc["budget"]["remaining_ratio"],
                                  no_data=not doc["windows"])
        return list(docs.values())

    @staticmethod
    def _doc(spec: SloSpec, at: dt.datetime | None, error: str | None = None) -> dict:
        c = spec.config
        return {"name": c.name, "source": "prometheus", **spec.ownership.as_dict(), "kind": "prometheus",
                "objective": c.objective, "window": c.window, "at": at.isoformat() if at else None,
                "state": "unknown" if error else "ok", "sli": None, "windows": {}, "budget": {"remaining_ratio": None},
                "alerts": [], "labels": c.labels, "description": c.description, "warnings": list(spec.warnings),
                "error": error}

    def close(self) -> None:
        self.client.close()
