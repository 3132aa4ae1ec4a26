"""The metric detector online: configured sample series (probe gauges, journey lag, queue depth, …) are fed to one
causal detector per label set as new samples arrive; a point scoring at or above the series' alarm level becomes a
`metric` finding naming the series, the time, the value and the score.

One incident, one finding: while a shape anomaly climbs after its alarm (anomaly.metric, StreamDetector._refract)
its higher scores raise that incident's finding (same id, the alarm's time) instead of adding findings.

Restart-safe: each series' position (last timestamp fed) is kept in kv_state; on start the detector is warmed up on
the series' recent history before that position, so its state matches what it would have been, and no point is
fed twice. Finding ids are derived from (series, labels, timestamp), so a replay cannot duplicate a finding.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field

from anomaly.findings import Finding, record
from anomaly.metric import DetectorParams, StreamDetector
from revwatch.store import Store, StoreError

log = logging.getLogger("revwatch.anomaly.online")
KIND = "metric"
WARMUP_POINTS = 5000


@dataclass
class WatchedSeries:
    name: str
    sample: str
    labels: dict[str, str] = field(default_factory=dict)
    alarm: float = 0.8


class MetricWatcher:
    """Feeds configured series to their detectors; `run_once` is the scheduled job."""

    def __init__(self, store: Store, series: list[WatchedSeries]):
        self.store, self.series = store, series
        self.detectors: dict[tuple[str, str], StreamDetector] = {}
        self.positions: dict[tuple[str, str], dt.datetime] = {}
        self.incidents: dict[tuple[str, str], dt.datetime] = {}    # time of the alarm that opened the incident
        self.last_error: str | None = None

    def _where(self, s: WatchedSeries) -> tuple[str, dict]:
        params: dict = {"name": s.sample}
        conds = ["Name = {name:String}"]
        for i, (k, v) in enumerate(sorted(s.labels.items())):
            conds.append(f"Labels[{{k{i}:String}}] = {{v{i}:String}}")
            params[f"k{i}"], params[f"v{i}"] = k, v
        return " AND ".join(conds), params

    def _state_key(self, s: WatchedSeries, labels: str) -> str:
        return f"anomaly.metric.position:{s.name}:{labels}"

    def _detector(self, s: WatchedSeries, labels: str, where: str, params: dict) -> StreamDetector:
        key = (s.name, labels)
        if key not in self.detectors:
            d = StreamDetector(DetectorParams(alarm=s.alarm))     # one incident, one finding at this level
            mark = self.store.get_state(self._state_key(s, labels))
            if mark:
                pos = dt.datetime.fromisoformat(mark)
                rows = self.store.query(f"""
                    SELECT Timestamp, Value FROM (SELECT Value, Timestamp FROM {self.store.table('samples')}
                        WHERE {where} AND toJSONString(Labels) = {{labels:String}}
                          AND Timestamp <= {{pos:DateTime64(3, 'UTC')}}
                        ORDER BY Timestamp DESC LIMIT {WARMUP_POINTS}) ORDER BY Timestamp""",
                                        {**params, "labels": labels, "pos": pos}).rows
                for ts, v in rows:
                    self._incident(key, d, d.update(float(v), ts), s.alarm, ts)
                self.positions[key] = pos
            self.detectors[key] = d
        return self.detectors[key]

    def run_once(self) -> dict:
        """Feed every new sample; returns counts (points fed, findings)."""
        fed = flagged = 0
        try:
            for s in self.series:
                where, params = self._where(s)
                sets = [r[0] for r in self.store.query(
                    f"SELECT DISTINCT toJSONString(Labels) FROM {self.store.table('samples')} WHERE {where}",
                    params).rows]
                for labels in sets:
                    d = self._detector(s, labels, where, params)
                    pos = self.positions.get((s.name, labels))
                    rows = self.store.query(f"""
                        SELECT Timestamp, Value FROM {self.store.table('samples')}
                        WHERE {where} AND toJSONString(Labels) = {{labels:String}}
                          {'AND Timestamp > {pos:DateTime64(3, ' + "'UTC'" + ')}' if pos else ''}
                        ORDER BY Timestamp LIMIT 1 BY Timestamp""",
                                            {**params, "labels": labels, **({"pos": pos} if pos else {})}).rows
                    found: dict[str, Finding] = {}
                    for ts, v in rows:
                        score = d.update(float(v), ts)
                        fed += 1
                        if score >= s.alarm:
                            at = self._incident((s.name, labels), d, score, s.alarm, ts)
                            f = Finding(KIND, f"{s.name}|{labels}|{at.isoformat()}", s.name, round(score, 4),
                                        [f"{s.sample}{_fmt(labels)} = {float(v):g} at {ts:%Y-%m-%d %H:%M:%S} "
                                         f"UTC is unusual for this series (score {score:.2f})"],
                                        {"cause": "metric_outlier", "series": s.name, "sample": s.sample,
                                         "labels": labels, "value": f"{float(v):g}", "at": ts.isoformat()})
                            found[f.id] = f             # a climb replaces its incident's earlier score
                    if found:
                        flagged += record(self.store, KIND, list(found.values()), [], "")["new"]
                    if rows:
                        self.positions[(s.name, labels)] = rows[-1][0]
                        self.store.put_state(self._state_key(s, labels), rows[-1][0].isoformat())
            self.last_error = None
        except StoreError as e:              # the next run resumes from the stored positions
            self.last_error = str(e)
            log.warning("metric anomaly watch failed: %s", e)
        return {"fed": fed, "findings": flagged}

    def _incident(self, key: tuple[str, str], d: StreamDetector, score: float, alarm: float,
                  ts: dt.datetime) -> dt.datetime:
        """The time naming the incident of a point scored `score`: its own for a new alarm, the opening alarm's for
        the climb of a shape anomaly (d.climbed)."""
        if score >= alarm and not (d.climbed and key in self.incidents):
            self.incidents[key] = ts
        return self.incidents.get(key, ts)


def _fmt(labels: str) -> str:
    try:
        m = json.loads(labels)
    except ValueError:
        return ""
    return "{" + ",".join(f"{k}={v}" for k, v in sorted(m.items())) + "}" if m else ""
