"""Annotations: deploys, Odoo upgrades, incidents — a point in time with a text, on the SLO charts
(docs/slo-policy.md).

Written through `POST /api/v1/annotations` (ingest scope: deploy pipelines hold ingest keys) or `revwatch annotate`,
kept in the `annotations` table. An annotation with `slos` belongs to those SLOs; one without belongs to every SLO.
Budget adjustments are shown beside them as annotations of their own (tag `adjustment`, one per occurrence,
computed from slo/adjustments.py, never stored twice). Readers: the SLO document (`annotations` of the 24 hours up to
the evaluated instant, so an as-of evaluation carries the ones around it), `GET /api/v1/annotations`, the web UI's
charts, and Grafana through `revwatch_annotation_time_seconds` (the last 7 days, at most `EXPOSED` of them).
"""
from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from revwatch.store import Store
from slo.adjustments import Adjustment

TAG_RE = re.compile(r"^[A-Za-z0-9_.:/\-]{1,64}$")
LOOKBACK = dt.timedelta(hours=24)          # annotations returned with an evaluation: this long before its instant
PER_RESULT = 50                            # at most this many per SLO result (the latest)
EXPOSED = 200                              # at most this many exposed to Prometheus/Grafana
EXPOSED_SPAN = dt.timedelta(days=7)


class AnnotationError(ValueError):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class AnnotationRequest(BaseModel):
    """`POST /api/v1/annotations` body."""
    model_config = ConfigDict(extra="forbid")
    time: dt.datetime
    text: str = Field(min_length=1, max_length=2000)
    slos: list[str] = Field(default_factory=list, max_length=50)
    tags: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("time")
    @classmethod
    def _aware(cls, v: dt.datetime) -> dt.datetime:
        if v.tzinfo is None:
            raise ValueError("time needs an offset (RFC 3339, e.g. 2026-12-06T14:00:00Z)")
        if not 1970 <= v.year <= 2199:
            raise ValueError("time is outside the years 1970-2199")
        return v.astimezone(dt.timezone.utc)

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        for t in v:
            if not TAG_RE.fullmatch(t):
                raise ValueError(f"tag {t!r} must be 1-64 letters, digits, '_', '.', ':', '/', '-'")
        return v


@dataclass(frozen=True)
class Annotation:
    id: str
    time: dt.datetime
    text: str
    slos: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    created_by: str | None = None
    end: dt.datetime | None = None         # adjustments: the end of the occurrence

    def applies_to(self, slo: str) -> bool:
        return not self.slos or slo in self.slos

    def as_dict(self) -> dict:
        return {"id": self.id, "time": self.time.isoformat(), "end": self.end.isoformat() if self.end else None,
                "text": self.text, "slos": list(self.slos), "tags": list(self.tags), "created_by": self.created_by}


def adjustment_annotations(adjustments: list[Adjustment], lo: dt.datetime, hi: dt.datetime) -> list[Annotation]:
    """Each occurrence of each adjustment starting in [lo, hi) as an annotation (tag `adjustment`)."""
    out = []
    for a in adjustments:
        for start, end in a.occurrences(lo, hi):
            verb = "excluded from the budget" if a.config.effect == "exclude" else "counted as good"
            out.append(Annotation(f"adjustment:{a.name}:{int(start.timestamp())}", start,
                                  f"budget adjustment {a.name}: minutes {verb}" + (
                                      f" ({a.config.description})" if a.config.description else ""),
                                  tuple(a.config.slos or ()), ("adjustment", a.config.effect), a.source, end))
    return out


class AnnotationLog:
    """The stored annotations."""

    def __init__(self, store: Store):
        self.store = store

    def add(self, req: AnnotationRequest, created_by: str | None, slo_names: set[str]) -> Annotation:
        unknown = sorted(set(req.slos) - slo_names)
        if unknown:
            raise AnnotationError(f"unknown SLO {unknown[0]!r}", "slos")
        a = Annotation(uuid.uuid4().hex, req.time, req.text, tuple(req.slos), tuple(req.tags), created_by)
        self.store.insert("annotations", [(a.id, a.time, a.text, list(a.slos), list(a.tags), dt.datetime.now(
            dt.timezone.utc), a.created_by or "")], ["Id", "Time", "Text", "Slos", "Tags", "CreatedAt", "CreatedBy"])
        return a

    def between(self, lo: dt.datetime, hi: dt.datetime, slo: str | None = None, tags: list[str] | None = None,
                limit: int = 1000) -> list[Annotation]:
        """Annotations with lo ≤ time ≤ hi (of `slo`: its own and the global ones; with every tag of `tags`),
        newest first."""
        where = ["Time >= {lo:DateTime64(3, 'UTC')}", "Time <= {hi:DateTime64(3, 'UTC')}"]
        params: dict = {"lo": lo, "hi": hi, "limit": limit}
        if slo is not None:
            where.append("(empty(Slos) OR has(Slos, {slo:String}))")
            params["slo"] = slo
        if tags:
            where.append("hasAll(Tags, {tags:Array(String)})")
            params["tags"] = tags
        rows = self.store.query(
            f"SELECT Id, Time, Text, Slos, Tags, CreatedBy FROM {self.store.table('annotations')} "
            f"WHERE {' AND '.join(where)} ORDER BY Time DESC, Id LIMIT {{limit:UInt32}}", params).rows
        return [Annotation(i, t.replace(tzinfo=dt.timezone.utc), text, tuple(s), tuple(tg), by or None)
                for i, t, text, s, tg, by in rows]

    def for_results(self, slos: list[str], at: dt.datetime) -> dict[str, list[Annotation]]:
        """Per SLO, its annotations of the LOOKBACK before `at` (newest first, at most PER_RESULT)."""
        every = self.between(at - LOOKBACK, at, limit=PER_RESULT * max(len(slos), 1))
        return {s: [a for a in every if a.applies_to(s)][:PER_RESULT] for s in slos}


def marks(log: AnnotationLog, adjustments: list[Adjustment], lo: dt.datetime, hi: dt.datetime,
          slo: str | None = None, tags: list[str] | None = None, limit: int = 500) -> list[Annotation]:
    """What a chart of [lo, hi] marks: the stored annotations and the adjustments' occurrences (of `slo`, with every
    tag of `tags`), newest first — the one list the API and the web UI show."""
    stored = log.between(lo, hi, slo, tags or None, limit)
    adjusted = [a for a in adjustment_annotations(adjustments, lo, hi)
                if (slo is None or a.applies_to(slo)) and set(tags or ()) <= set(a.tags) and a.time <= hi]
    return sorted(stored + adjusted, key=lambda a: a.time, reverse=True)[:limit]
