"""The built-in HTML overview: SLO table with burn rates and budgets, for people without Grafana."""
from __future__ import annotations

import html


def _pct(x) -> str:
    return "–" if x is None else f"{x * 100:.3f}%"


def render_overview(results) -> str:
    """A self-contained HTML page of SLO results (no scripts, no external assets)."""
    rows = []
    for r in results:
        d = r.as_dict()
        w = d["windows"]
        b = d["budget"]
        days = b["days_until_exhausted"].get("1h")
        state = d["state"]
        colour = {"page": "#c0392b", "ticket": "#d68910"}.get(state, "#1e8449")
        rows.append(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
                d["name"] + (f" [{d['group']}]" if d["group"] else ""), d["journey"] or "", f"{d['objective']:.3%}",
                _pct(d["sli"]), f"{w['1h']['burn_rate']:.2f}", f"{w['6h']['burn_rate']:.2f}",
                f"{w['1d']['burn_rate']:.2f}", f"{b['remaining_ratio'] * 100:.1f}%",
                "never" if days is None else f"{days:.1f} d"))
            + f"<td style='color:{colour};font-weight:bold'>{html.escape(state)}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("SLO", "journey", "objective", "SLI (window)", "burn 1h", "burn 6h",
                                             "burn 1d", "budget left", "exhausted in (1h burn)", "state"))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>revwatch</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}</style></head>
<body><h1>revwatch — business SLOs</h1><table><tr>{head}</tr>{''.join(rows) or '<tr><td colspan=10>no SLOs configured</td></tr>'}</table>
<p>API: <code>/api/v1/slos</code>, <code>/api/v1/journeys/&lt;correlation id&gt;</code>, <code>/metrics</code></p>
</body></html>"""
