"""The documented limits, factors and filters are the ones the code enforces (issue #26): numbers and value lists
are read from docs/events.md, docs/prometheus.md and docs/http.md and tried against the validator, the SLO spec
defaults and the running API — so a doc that drifts from the code fails here."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from collector.events import validate_event
from revwatch.config import Config
from slo.spec import resolve

DOCS = Path(__file__).resolve().parents[1] / "docs"
EVENTS = (DOCS / "events.md").read_text()
GOOD = {"event_id": "e1", "type": "payment.settled", "correlation_id": "c1", "occurred_at": "2026-01-01T00:00:00Z",
        "source": "stripe"}


def _field_row(field: str) -> str:
    return next(line for line in EVENTS.splitlines() if line.startswith(f"| `{field}` |"))


@pytest.mark.parametrize("field", ["event_id", "correlation_id", "source"])
def test_documented_id_lengths(field):
    lo, hi = map(int, re.search(r"string, (\d+)–(\d+) chars", _field_row(field)).groups())
    assert validate_event({**GOOD, field: "x" * hi})[1] is None
    assert validate_event({**GOOD, field: "x" * (hi + 1)})[2] == field
    assert validate_event({**GOOD, field: "x" * (lo - 1)})[1] is not None


def test_documented_attribute_count_amount_digits_and_years():
    keys = int(re.search(r"up to (\d+) keys", _field_row("attributes"))[1])
    assert validate_event({**GOOD, "attributes": {f"k{i}": "v" for i in range(keys)}})[1] is None
    assert validate_event({**GOOD, "attributes": {f"k{i}": "v" for i in range(keys + 1)}})[2] == "attributes"
    whole, frac = map(int, re.search(r"up to (\d+) integer and (\d+) fraction digits", _field_row("amount")).groups())
    assert validate_event({**GOOD, "amount": "9" * whole + "." + "9" * frac, "currency": "EUR"})[1] is None
    assert validate_event({**GOOD, "amount": "9" * (whole + 1), "currency": "EUR"})[2] == "amount"
    assert validate_event({**GOOD, "amount": "1." + "9" * (frac + 1), "currency": "EUR"})[2] == "amount"
    first, last = map(int, re.search(r"years (\d{4})–(\d{4})", _field_row("occurred_at")).groups())
    for year, ok in ((first, True), (last, True), (first - 1, False), (last + 1, False)):
        r = validate_event({**GOOD, "occurred_at": f"{year}-06-01T00:00:00Z"})
        assert (r[1] is None) is ok, (year, r)


def test_documented_default_burn_rate_pairs():
    text = (DOCS / "prometheus.md").read_text()
    page, ticket = re.search(r"workbook's ([\d.]+/[\d.]+) and ([\d.]+/[\d.]+) pairs by default", text).groups()
    cfg = Config.model_validate({"journeys": {"j": {"start": "a.b", "end": "c.d"}}, "slos": [
        {"name": "s", "journey": "j", "objective": 0.99, "window": "30d",
         "sli": {"kind": "journey_latency", "threshold": "15m"}}]})
    (spec,) = resolve(cfg)
    got = {sev: sorted(t.burn_rate for t in spec.tiers_of(sev)) for sev in ("page", "ticket")}
    assert got == {"page": sorted(float(x) for x in page.split("/")),
                   "ticket": sorted(float(x) for x in ticket.split("/"))}


def _documented_filters() -> list[tuple[str, str, list[str]]]:
    """(route, parameter, values) of every `name=a|b|c` on a GET /api/v1 route without path parameters."""
    out = []
    for line in (DOCS / "http.md").read_text().splitlines():
        m = re.match(r"\| GET \| `(/api/v1/[^`{]+)` \|[^|]+\|(.*)\|\s*$", line)
        if not m:
            continue
        for name, values in re.findall(r"`(\w+)=([\w.]+(?:\\\|[\w.]+)+)`", m[2]):
            out.append((m[1], name, values.split("\\|")))
    return out


def test_every_documented_filter_value_is_accepted_and_others_are_refused(api):
    filters = _documented_filters()
    assert {(r, n) for r, n, _ in filters} >= {("/api/v1/anomalies", "kind"), ("/api/v1/anomalies", "status")}
    headers = {"Authorization": f"Bearer {api.keys['admin']}"}
    for route, name, values in filters:
        for value in values:
            r = api.client.get(route, params={name: value}, headers=headers)
            assert r.status_code == 200, (route, name, value, r.text[:200])
        r = api.client.get(route, params={name: "not-a-documented-value"}, headers=headers)
        assert r.status_code == 400 and r.json()["field"] == name, (route, name, r.text[:200])
