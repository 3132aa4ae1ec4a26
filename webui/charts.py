"""Server-side SVG charts: small, dependency-free, escaped, readable without JavaScript.

Every chart is an inline `<svg>` with a `viewBox`, so it scales to its container (phone or desktop), and carries a
`<title>` for screen readers and hover. Values of None are gaps (no data), not zeros.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Protocol

from markupsafe import Markup

from revwatch.human import budget_phrase


@dataclass(frozen=True)
class Line:
    """A horizontal reference line (a burn-rate threshold, an objective)."""
    value: float
    label: str
    css: str = "thr"


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _path(points: list[tuple[float, float] | None]) -> str:
    out, pen = [], False
    for p in points:
        if p is None:
            pen = False
            continue
        out.append(("L" if pen else "M") + f"{p[0]:.1f},{p[1]:.1f}")
        pen = True
    return "".join(out)


def sparkline(values: list[float | None], title: str, width: int = 120, height: int = 28,
              alert_at: float | None = None) -> Markup:
    """A tiny line of recent values (e.g. hourly burn rate over 24 h); a dashed line at `alert_at`."""
    finite = [v for v in values if v is not None]
    top = max(finite + [alert_at or 0, 1e-9])
    n = max(len(values) - 1, 1)
    pts = [None if v is None else (i * width / n, height - 2 - (v / top) * (height - 4)) for i, v in enumerate(values)]
    ref = ""
    if alert_at is not None and alert_at <= top:
        y = height - 2 - (alert_at / top) * (height - 4)
        ref = f'<line class="thr" x1="0" x2="{width}" y1="{y:.1f}" y2="{y:.1f}"/>'
    last = finite[-1] if finite else None
    dot = ""
    if last is not None and pts and pts[-1] is not None:
        dot = f'<circle cx="{pts[-1][0]:.1f}" cy="{pts[-1][1]:.1f}" r="2"/>'
    return Markup(f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">'
                  f'<title>{escape(title)}</title>{ref}<path d="{_path(pts)}"/>{dot}</svg>')


class Mark(Protocol):
    """Something that happened at `time` (until `end`, if a span): slo.annotations.Annotation."""
    time: dt.datetime
    end: dt.datetime | None
    text: str
    tags: tuple[str, ...]


def _marks(marks: Sequence[Mark], times: list[dt.datetime], left: float, top: float, pw: float,
           ph: float) -> list[str]:
    """Budget adjustments (marks with an `end`) as shaded bands, annotations as vertical lines, each with a
    `<title>` tooltip; only what falls inside the axis [times[0], times[-1]], bands clipped to it. The x axis is
    linear in time between the first and last point, as the series are drawn."""
    if len(times) < 2 or times[-1] <= times[0]:
        return []
    t0, span = times[0], (times[-1] - times[0]).total_seconds()

    def x(t: dt.datetime) -> float:
        return left + (t - t0).total_seconds() / span * pw
    out: list[str] = []
    for m in sorted(marks, key=lambda m: m.end is None):          # bands first, lines drawn over them
        if m.end is not None:
            if m.end <= times[0] or m.time >= times[-1]:
                continue
            a, b = x(max(m.time, times[0])), x(min(m.end, times[-1]))
            css = "adj adj-good" if "good" in m.tags else "adj"
            tip = f"{m.time:%Y-%m-%d %H:%M} → {m.end:%Y-%m-%d %H:%M} UTC · {m.text}"
            out.append(f'<rect class="{css}" x="{a:.1f}" y="{top}" width="{max(b - a, 1.0):.1f}" height="{ph}">'
                       f'<title>{escape(tip)}</title></rect>')
        elif times[0] <= m.time <= times[-1]:
            tags = f" [{', '.join(m.tags)}]" if m.tags else ""
            tip = f"{m.time:%Y-%m-%d %H:%M} UTC · {m.text}{tags}"
            xm = x(m.time)
            out.append(f'<g class="note"><title>{escape(tip)}</title><line x1="{xm:.1f}" x2="{xm:.1f}" y1="{top}" '
                       f'y2="{top + ph}"/><path d="M{xm - 4:.1f},{top}L{xm + 4:.1f},{top}L{xm:.1f},{top + 6}Z"/></g>')
    return out


def line_chart(times: list[dt.datetime], series: dict[str, list[float | None]], title: str,
               lines: tuple[Line, ...] = (), y_min: float | None = None, y_max: float | None = None,
               y_format: str = "{:.3g}", width: int = 720, height: int = 220, marks: Sequence[Mark] = ()) -> Markup:
    """A time chart of one or more series with labelled horizontal reference lines and axis ticks; `marks`
    (annotations and budget-adjustment occurrences, slo/annotations.py `marks`) are drawn inside the plot."""
    left, right, top_pad, bottom = 56, 10, 10, 24
    pw, ph = width - left - right, height - top_pad - bottom
    vals = [v for s in series.values() for v in s if v is not None] + [ln.value for ln in lines]
    lo = y_min if y_min is not None else min(vals + [0.0])
    hi = y_max if y_max is not None else max(vals + [lo + 1e-9])
    if hi <= lo:
        hi = lo + 1
    n = max(len(times) - 1, 1)

    def y(v: float) -> float:
        return top_pad + ph - (min(max(v, lo), hi) - lo) / (hi - lo) * ph

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" preserveAspectRatio="none">'
             f'<title>{escape(title)}</title>',
             f'<rect class="plot" x="{left}" y="{top_pad}" width="{pw}" height="{ph}"/>']
    parts += _marks(marks, times, left, top_pad, pw, ph)
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        parts.append(f'<line class="grid" x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
                     f'<text class="tick" x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end">'
                     f'{escape(y_format.format(v))}</text>')
    if times:
        for k in range(5):
            i = round(k * n / 4)
            if i < len(times):
                x = left + i * pw / n
                anchor = "start" if k == 0 else "end" if k == 4 else "middle"
                parts.append(f'<text class="tick" x="{x:.1f}" y="{height - 6}" text-anchor="{anchor}">'
                             f'{times[i].strftime("%m-%d %H:%M")}</text>')
    for ln in lines:
        parts.append(f'<line class="{ln.css}" x1="{left}" x2="{left + pw}" y1="{y(ln.value):.1f}" '
                     f'y2="{y(ln.value):.1f}"/><text class="thr-label" x="{left + pw - 4}" '
                     f'y="{y(ln.value) - 3:.1f}" text-anchor="end">{escape(ln.label)}</text>')
    for idx, (name, vs) in enumerate(series.items()):
        pts = [None if v is None else (left + i * pw / n, y(v)) for i, v in enumerate(vs)]
        parts.append(f'<path class="s{idx % 4}" d="{_path(pts)}"><title>{escape(name)}</title></path>')
    # values on hover, without script (the CSP allows none inline): every point carries its own <title>, which the
    # browser shows as a tooltip; the hit area is a transparent circle a little larger than the line
    for idx, (name, vs) in enumerate(series.items()):
        for i, val in enumerate(vs):
            if val is None or i >= len(times):
                continue
            v = val
            label = f"{times[i]:%Y-%m-%d %H:%M} UTC · {name}: {y_format.format(v)}"
            parts.append(f'<circle class="pt s{idx % 4}" cx="{left + i * pw / n:.1f}" cy="{y(v):.1f}" r="4">'
                         f'<title>{escape(label)}</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))


def budget_bar(remaining_ratio: float | None) -> Markup:
    """A horizontal bar of error budget left, labelled with slo.state.budget_phrase (overspend says so: 'overspent
    by 801%', never a clipped 'exhausted'); None draws an empty 'no data' bar."""
    if remaining_ratio is None:
        return Markup('<div class="bar nodata" title="no decided events in the SLO window"><span style="width:0">'
                      '</span><em>no data</em></div>')
    pct = max(0.0, min(1.0, remaining_ratio)) * 100
    cls = "exhausted" if remaining_ratio <= 0 else "low" if remaining_ratio < 0.25 else "mid" \
        if remaining_ratio < 0.5 else "good"
    label = budget_phrase(remaining_ratio)
    return Markup(f'<div class="bar {cls}" title="error budget {escape(label)}"><span style="width:{pct:.1f}%">'
                  f'</span><em>{escape(label)}</em></div>')


def waterfall(spans: list[dict], width: int = 720, row: int = 18) -> Markup:
    """A span waterfall: one bar per span from its start for its duration, on a shared time axis, errors marked.
    `spans` items need at (ISO), duration_ms, name, system, error; a child span's label is indented under its
    parent (span_id / parent_span_id within the same trace)."""
    if not spans:
        return Markup("")
    depth = _depths(spans)
    starts = [dt.datetime.fromisoformat(s["at"].replace("Z", "+00:00")) for s in spans]
    t0 = min(starts)
    ends = [st + dt.timedelta(milliseconds=s["duration_ms"] or 0) for st, s in zip(starts, spans)]
    total = max((max(ends) - t0).total_seconds(), 1e-3)
    label_w = 260
    pw = width - label_w - 10
    height = row * len(spans) + 20
    parts = [f'<svg class="waterfall" viewBox="0 0 {width} {height}" role="img"><title>span waterfall</title>']
    for i, (s, st, en) in enumerate(zip(spans, starts, ends)):
        x = label_w + (st - t0).total_seconds() / total * pw
        w = max(2.0, (en - st).total_seconds() / total * pw)
        yy = i * row + 4
        label = f"{s['system']} · {s['name']}"
        indent = min(depth[i], 8) * 10
        parts.append(f'<text class="wf-label" x="{indent}" y="{yy + 11}">{escape(label[:40 - indent // 6])}</text>'
                     f'<rect class="{"wf-err" if s["error"] else "wf-ok"}" x="{x:.1f}" y="{yy}" width="{w:.1f}" '
                     f'height="{row - 6}"><title>{escape(label)}: {s["duration_ms"]:.1f} ms'
                     f'{" — " + escape(s.get("status_message") or "error") if s["error"] else ""}</title></rect>')
    parts.append(f'<text class="tick" x="{label_w}" y="{height - 4}">0</text><text class="tick" '
                 f'x="{width - 10}" y="{height - 4}" text-anchor="end">{_fmt(total)} s</text></svg>')
    return Markup("".join(parts))


def _depths(spans: list[dict]) -> list[int]:
    """Nesting depth of each span: 0 for a root (or a parent not in the list), parent's depth + 1 otherwise."""
    parent = {(s.get("trace_id"), s.get("span_id")): s.get("parent_span_id") for s in spans}
    out = []
    for s in spans:
        d, key, seen = 0, (s.get("trace_id"), s.get("parent_span_id")), set()
        while key[1] and key in parent and key not in seen:
            seen.add(key)
            d += 1
            key = (key[0], parent[key])
        out.append(d)
    return out


def funnel_chart(steps: list[dict], width: int = 720, row: int = 30) -> Markup:
    """A funnel: one bar per step, its length the share of started instances that reached it (`from_start`), the
    count and conversion from the previous step written beside it; a step where instances wait is marked."""
    if not steps:
        return Markup("")
    label_w, bar_w = 220, width - 220 - 150
    height = row * len(steps) + 8
    parts = [f'<svg class="chart funnel" viewBox="0 0 {width} {height}" role="img">'
             f'<title>{escape("funnel: " + " → ".join(s["step"] for s in steps))}</title>']
    for i, s in enumerate(steps):
        y = 4 + i * row
        share = s.get("from_start") or 0.0
        w = max(1.0, bar_w * share) if s["reached"] else 0.0
        conv = "" if i == 0 or s.get("conversion") is None else f" · {s['conversion'] * 100:.1f}% of previous"
        stop = f" · {s['stopped']} waiting" if s.get("stopped") else ""
        parts.append(f'<text x="{label_w - 8}" y="{y + row * 0.6:.1f}" text-anchor="end">{escape(s["step"])}</text>'
                     f'<rect class="bar{" stop" if s.get("stopped") else ""}" x="{label_w}" y="{y + 4}" '
                     f'width="{w:.1f}" height="{row - 10}"><title>{escape(s["step"])}: {s["reached"]} reached'
                     f'{escape(conv)}{escape(stop)}</title></rect>'
                     f'<text x="{label_w + w + 6:.1f}" y="{y + row * 0.6:.1f}">{s["reached"]}{escape(conv)}'
                     f'{escape(stop)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
