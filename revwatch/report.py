"""Rich renderings for the terminal: the SLO table and a journey timeline (from the API's JSON documents)."""
from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from revwatch.human import budget_phrase, units_phrase

STATE_STYLE = {"page": "bold red", "exhausted": "bold magenta", "ticket": "bold yellow", "ok": "green",
               "no_data": "dim"}


def _pct(x) -> str:
    return "–" if x is None else f"{x * 100:.3f}%"


def _duration(days: float) -> str:
    """Days until exhaustion, in the unit a person reads at a glance (0.02 d is "29 min")."""
    if days >= 1:
        return f"{days:.1f} d"
    hours = days * 24
    return f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.0f} min"


def _budget(d: dict) -> str:
    """The budget cell: the one phrase (slo.state) and the units left or over; 'no data' for an empty window."""
    b = d["budget"]
    if d["state"] == "no_data" or b.get("remaining_ratio") is None:
        return "no data"
    return f"{budget_phrase(b['remaining_ratio'])} ({units_phrase(b['remaining'], b['unit'])})"


def _exhaustion(d: dict, days: float | None) -> str:
    """When the budget runs out at the 1 h burn rate: '–' without data, 'exhausted' / 'overspent' when it has."""
    ratio = d["budget"].get("remaining_ratio")
    if d["state"] == "no_data" or ratio is None:
        return "–"
    if ratio <= 0:
        return "exhausted" if ratio == 0 else "overspent"
    return "not burning" if days is None else _duration(days)


def slo_table(docs: list[dict]) -> Table:
    """SLO status: owner, SLI, burn rates per window, budget left, exhaustion forecast, coverage, alert state."""
    t = Table(title="SLOs", title_justify="left")
    for col in ("SLO", "team / owner", "objective", "SLI (window)", "burn 5m", "burn 1h", "burn 6h", "burn 1d",
                "burn 3d", "budget left", "exhausted in", "coverage 1h / window", "state"):
        t.add_column(col, justify="left" if col in ("SLO", "team / owner", "state") else "right",
                     no_wrap=col in ("SLO", "state"))       # names and states stay whole (scripts grep them)
    for d in docs:
        w, b = d["windows"], d["budget"]
        days = b["days_until_exhausted"].get("1h")
        name = d["name"] + (f" [{d['group']}]" if d.get("group") else "")
        owner = " / ".join(x for x in (d.get("team"), d.get("owner")) if x) or "-"
        cov = d.get("coverage") or {}
        cw = cov.get("windows", {})
        coverage = " / ".join(_pct(cw[k]["ratio"]) if k in cw else "-" for k in ("1h", "slo"))
        state = d["state"] + (f" ({cov['no_data_for_minutes']} min)" if d["state"] == "no_data"
                              and cov.get("no_data_for_minutes") is not None else "")
        if cov.get("held_alerts"):
            state += " held: " + ", ".join(cov["held_alerts"])
        t.add_row(Text(name), Text(owner), f"{d['objective']:.2%}", _pct(d["sli"]),
                  *(f"{w[k]['burn_rate']:.2f}" for k in ("5m", "1h", "6h", "1d", "3d")),
                  _budget(d), _exhaustion(d, days), coverage,
                  Text(state, style=STATE_STYLE.get(d["state"], "")))
    return t


def journey_timeline(doc: dict) -> Group:
    """A correlation ID's timeline with journeys, milestones and errors."""
    parts: list[Text | Table] = [Text(f"correlation ID {doc['correlation_id']}  ({doc['counts']['events']} events, "
                  f"{doc['counts']['spans']} spans, {doc['counts']['errors']} errors)", style="bold")]
    for j in doc["journeys"]:
        line = Text(f"journey {j['journey']}: {j['status']}", style="bold red" if j["status"] == "overdue" else "")
        parts.append(line)
        for m in j["milestones"]:
            if m["reached"]:
                parts.append(Text(f"   ✓ {m['type']:28} {m['at']}  (+{m['lag_seconds']:.0f}s)"))
            else:
                over = m.get("overdue_seconds")
                extra = f" overdue by {over:.0f}s" if over else f" waiting {m.get('waiting_seconds', 0):.0f}s"
                parts.append(Text(f"   ✗ {m['type']:28} missing{extra}", style="red" if over else "yellow"))
    t = Table(title="timeline", title_justify="left")
    for col in ("time", "system", "kind", "what", "detail"):
        t.add_column(col)
    for x in doc["timeline"]:
        detail = (f"{x['duration_ms']:.1f} ms {x['status']}" if x["kind"] == "span"
                  else " ".join(filter(None, [x.get("amount"), x.get("currency")])))
        t.add_row(x["at"], x["system"], x["kind"], x["name"], detail, style="red" if x["error"] else None)
    parts.append(t)
    for r in doc.get("related", []):
        parts.append(Text(f"related {r['attribute']}={r['value']}: {', '.join(r['correlation_ids']) or '—'}"))
    return Group(*parts)
