"""OpenSLO v1 import, exactly: every field is honoured or refused with file, document index and field.

Files hold several YAML documents and/or top-level lists of objects. Kinds: `SLO` (imported), `SLI` (for
`indicatorRef`), `AlertPolicy` / `AlertCondition` / `AlertNotificationTarget` (for refs), `DataSource` (for
`metricSourceRef`), `Service` (validated). Only `apiVersion: openslo/v1`.

Mapping onto revwatch SLOs (one per objective; `<name>-<k>` when an SLO has several):
* `metadata.name` → name, `displayName`, `labels` (a list value is joined with ","), `annotations`;
  `spec.description`, `spec.service`.
* `timeWindow`: rolling `duration` (m h d w; M/Q/Y have no fixed length and are refused for rolling windows) or
  calendar (`isRolling: false`, `calendar.startTime` wall-clock in `calendar.timeZone`, any duration: slo/calendar.py).
* `budgetingMethod`: Occurrences / Timeslices (`timeSliceTarget`) / RatioTimeslices (average of per-slice ratios).
  `timeSliceWindow` (default 1m): any duration for Prometheus sources (PromQL subqueries step by it), whole minutes
  for revwatch sources (the engine scores epoch-aligned slices of that length: slo/engine.py).
* Metric sources (`type`, possibly from the referenced `DataSource`):
  - `Prometheus` (`spec.query`): a Prometheus-backed SLO (slo/sloth_rules.py). Queries may use Sloth's
    `{{.window}}`; without it, counters (`counter: true`) are read with `increase((q)[W:])`, gauges with
    `sum_over_time((q)[W:])`, raw ratios with `avg_over_time((q)[W:])`, threshold metrics as the share of evaluations
    breaching `op value`.
  - `revwatch` (or no type): revwatch's own data — `spec.sli` (a revwatch SLI), `spec.journey` (thresholdMetric →
    journey latency with `spec.unit` for `value`; ratioMetric → journey completion within `spec.max_age`), or
    `spec.service` (span latency / span error ratio); `spec.group_by` optional.
  Other types (Datadog, AppDynamics …) are refused: revwatch cannot query them.
* `alertPolicies` (inline or `alertPolicyRef`) → alert tiers: each `burnrate` condition (`op` gt/gte, `threshold`,
  `lookbackWindow` L) is a tier over L confirmed by L/12 (the workbook's short window); `severity` page/critical →
  page, ticket/warning → ticket; notification target names become the alert label `notification_targets`.
  `alertAfter` becomes the tier's hold time (the rule's `for:`; one per severity, since a severity is one alert);
  `alertWhenNoData: true` and `alertWhenBreaching: false` are refused (no such alerts).
* Export annotations `revwatch.io/alerting` (JSON) carry what OpenSLO has no field for (min_events, catalogue,
  per-severity names/labels/annotations) so an exported file imports back to the same SLOs (slo/export.py).
"""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from revwatch.config import SloConfig
from revwatch.units import format_duration, parse_duration
from slo.sloth import documents
from slo.spec import SpecError

API = "openslo/v1"
# export annotations (slo/export.py): what OpenSLO has no field for, so an export imports back exactly
ALERTING_ANNOTATION = "revwatch.io/alerting"       # the SLO's alerting section (JSON)
NAME_ANNOTATION = "revwatch.io/name"               # a revwatch name that is not an RFC 1123 name
IMPORT_SPEC_ANNOTATION = "revwatch.io/import-spec"  # the format the SLO was first imported from
BUDGETED_ANNOTATION = "revwatch.io/query-budgeted"  # "true": the PromQL already applies the budgeting method
DISPLAY_NAME_ANNOTATION = "revwatch.io/display-name"  # a display name longer than OpenSLO's 63 characters
DESCRIPTION_ANNOTATION = "revwatch.io/description"    # a description longer than OpenSLO's 1050 characters
KINDS = {"SLO", "SLI", "AlertPolicy", "AlertCondition", "AlertNotificationTarget", "Service", "DataSource"}
META = {"name", "displayName", "labels", "annotations"}
SEVERITY = {"page": "page", "critical": "page", "ticket": "ticket", "warning": "ticket"}
_DURATION = re.compile(r"^([1-9][0-9]*)([mhdwMQY])$")
RFC1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")     # metadata.name (slo/export.py writes them)
_LABEL_KEY = re.compile(r"[a-zA-Z0-9]([-._a-zA-Z0-9]{0,61}[a-zA-Z0-9])?")
_ANNOTATION_KEY = re.compile(r"([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*/)?"
                             r"[a-zA-Z0-9]([-._a-zA-Z0-9]{0,61}[a-zA-Z0-9])?")
_ANNOTATION_LENGTH = re.compile(r"(.{0,253}/)?.{0,63}")
DISPLAY_NAME_MAX = 63
DESCRIPTION_MAX = 1050
_BREACH = {"lte": ">", "lt": ">=", "gte": "<", "gt": "<="}
_OP_SYMBOL = {"lte": "<=", "lt": "<", "gte": ">=", "gt": ">"}
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


class OpenSloError(SpecError):
    """An OpenSLO document cannot be imported; the message names file, document index and field."""


class _Doc:
    """One object with where it came from, for error messages."""

    def __init__(self, obj: Any, where: str):
        if not isinstance(obj, dict):
            raise OpenSloError(f"{where}: an OpenSLO object must be a mapping")
        self.obj, self.where = obj, where

    def err(self, field: str, msg: str) -> OpenSloError:
        return OpenSloError(f"{self.where}: {field}: {msg}")


def _strict(obj: Any, allowed: set[str], doc: _Doc, field: str) -> dict:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise doc.err(field, "must be a mapping")
    unknown = sorted(str(k) for k in set(obj) - allowed)
    if unknown:
        raise doc.err(f"{field}.{unknown[0]}" if field else unknown[0], "unknown field (not part of OpenSLO v1)")
    return obj


def _metadata(obj: dict, doc: _Doc, field: str = "metadata") -> dict:
    """metadata per the OpenSLO v1 spec (README "General Schema"; limits as OpenSLO/go-sdk validates them): name an
    RFC 1123 DNS label (≤ 63 lower-case alphanumerics or '-', alphanumeric at both ends), displayName ≤ 63
    characters, label keys ≤ 63 ([a-zA-Z0-9] at both ends, - _ . between), annotation keys an optional DNS-subdomain
    prefix (≤ 253) and '/' before such a name."""
    meta = _strict(obj.get("metadata"), META, doc, field)
    name = meta.get("name")
    if not isinstance(name, str) or not RFC1123_LABEL.fullmatch(name):
        raise doc.err(f"{field}.name", f"must be an RFC 1123 name (at most 63 lower-case letters, digits or '-', "
                                       f"a letter or digit at both ends), got {str(name)[:80]!r}")
    display = meta.get("displayName")
    if display is not None and (not isinstance(display, str) or len(display) > DISPLAY_NAME_MAX):
        raise doc.err(f"{field}.displayName", f"must be a string of at most {DISPLAY_NAME_MAX} characters"
                                              + (f", got {len(display)}" if isinstance(display, str) else ""))
    for key in ("labels", "annotations"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise doc.err(f"{field}.{key}", "must be a mapping")
    for k in meta.get("labels") or {}:
        if not isinstance(k, str) or not _LABEL_KEY.fullmatch(k):
            raise doc.err(f"{field}.labels", f"key {str(k)[:80]!r} must be at most 63 characters: letters, digits, "
                                             f"'-', '_' or '.', a letter or digit at both ends")
    for k in meta.get("annotations") or {}:
        if not isinstance(k, str) or not _ANNOTATION_KEY.fullmatch(k) or not _ANNOTATION_LENGTH.fullmatch(k):
            raise doc.err(f"{field}.annotations", f"key {str(k)[:80]!r} must be [prefix/]name: an optional DNS "
                                                  f"subdomain (≤ 253) and a name of at most 63 characters")
    return meta


def _description(spec: Any, doc: _Doc, field: str) -> None:
    """spec.description: optional, a string of at most 1050 characters (every kind, OpenSLO v1)."""
    d = spec.get("description") if isinstance(spec, dict) else None
    if d is not None and (not isinstance(d, str) or len(d) > DESCRIPTION_MAX):
        raise doc.err(f"{field}.description", f"must be a string of at most {DESCRIPTION_MAX} characters"
                                              + (f", got {len(d)}" if isinstance(d, str) else ""))


def _labels(meta: dict, doc: _Doc) -> dict[str, str]:
    out = {}
    for k, v in (meta.get("labels") or {}).items():
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            v = ",".join(v)
        if not isinstance(v, str):
            raise doc.err(f"metadata.labels.{k}", "must be a string or a list of strings")
        out[str(k)] = v
    return out


def _annotations(meta: dict, doc: _Doc) -> dict[str, str]:
    out = {}
    for k, v in (meta.get("annotations") or {}).items():
        if not isinstance(v, str):
            raise doc.err(f"metadata.annotations.{k}", "must be a string")
        out[str(k)] = v
    return out


def openslo_duration(text: Any, doc: _Doc, field: str) -> tuple[int, str]:
    """OpenSLO duration shorthand: a count and m h d w M Q Y (case-sensitive: m minutes, M months)."""
    m = _DURATION.match(str(text)) if isinstance(text, (str, int)) else None
    if not m:
        raise doc.err(field, f"invalid duration {text!r} (a count and one of m h d w M Q Y)")
    return int(m.group(1)), m.group(2)


def _slice(obj: dict, doc: _Doc, field: str) -> str:
    """timeSliceWindow: a duration, or a bare number of minutes."""
    v = obj.get("timeSliceWindow")
    if v is None:
        return "1m"
    if isinstance(v, int) and not isinstance(v, bool) and v > 0:
        return f"{v}m"
    n, unit = openslo_duration(v, doc, field)
    if unit in "MQY":
        raise doc.err(field, "a time slice must be minutes, hours, days or weeks")
    return f"{n}{unit}"


class Catalogue:
    """Every object of a set of files, by kind and name (refs resolve across the files of one import)."""

    def __init__(self):
        self.objects: dict[tuple[str, str], _Doc] = {}
        self.slos: list[_Doc] = []

    def add_file(self, path: Path) -> None:
        for i, obj in enumerate(documents(path)):
            doc = _Doc(obj, f"{path}: document {i + 1}")
            api, kind = obj.get("apiVersion"), obj.get("kind")
            if api != API:
                raise doc.err("apiVersion", f"only {API} is supported, got {api!r}")
            if not isinstance(kind, str) or kind not in KINDS:
                raise doc.err("kind", f"unknown OpenSLO v1 kind {kind!r}")
            _strict(obj, {"apiVersion", "kind", "metadata", "spec"}, doc, "")
            meta = _metadata(obj, doc)
            self._check_kind(kind, obj.get("spec"), doc)
            self.objects[(kind, meta["name"])] = doc
            if kind == "SLO":
                doc.obj = obj
                doc.where = f"{doc.where} (SLO {meta['name']})"
                self.slos.append(doc)

    def validate(self) -> None:
        """Every object of every file, whether an SLO of the importing file references it or not: alert policies
        with their conditions and targets (refs resolved across the files), SLIs with their metric sources.
        An SLI's metric source type is checked only when an SLO imports it (revwatch computes only its own and
        Prometheus sources; an unused Datadog SLI is valid OpenSLO)."""
        for (kind, _name), doc in self.objects.items():
            spec = doc.obj.get("spec")
            if kind == "AlertPolicy":
                _policy(spec, doc, "spec", self)
            elif kind == "SLI":
                _check_sli(spec, doc, "spec", self)

    def _check_kind(self, kind: str, spec: Any, doc: _Doc) -> None:
        """Field checks of the kinds that are only referenced (SLOs are checked while importing)."""
        _description(spec, doc, "spec")
        if kind == "Service":
            _strict(spec, {"description"}, doc, "spec")
        elif kind == "DataSource":
            s = _strict(spec, {"description", "type", "connectionDetails"}, doc, "spec")
            if not isinstance(s.get("type"), str):
                raise doc.err("spec.type", "required")
        elif kind == "AlertNotificationTarget":
            s = _strict(spec, {"description", "target"}, doc, "spec")
            if not isinstance(s.get("target"), str):
                raise doc.err("spec.target", "required")
        elif kind == "AlertCondition":
            _condition(spec, doc, "spec")
        elif kind == "AlertPolicy":
            _strict(spec, {"description", "alertWhenNoData", "alertWhenResolved", "alertWhenBreaching", "conditions",
                           "notificationTargets"}, doc, "spec")
        elif kind == "SLI":
            _strict(spec, {"description", "thresholdMetric", "ratioMetric"}, doc, "spec")

    def get(self, kind: str, name: Any, doc: _Doc, field: str) -> _Doc:
        found = self.objects.get((kind, name)) if isinstance(name, str) else None
        if found is None:
            raise doc.err(field, f"no {kind} named {name!r} in the imported files")
        return found


def _condition(spec: Any, doc: _Doc, field: str) -> tuple[str, float, str, str]:
    """An AlertCondition spec → (severity, burn-rate threshold, lookback window)."""
    s = _strict(spec, {"description", "severity", "condition"}, doc, field)
    c = _strict(s.get("condition"), {"kind", "op", "threshold", "lookbackWindow", "alertAfter"}, doc,
                f"{field}.condition")
    if c.get("kind") != "burnrate":
        raise doc.err(f"{field}.condition.kind", f"only burnrate conditions exist in OpenSLO v1, got {c.get('kind')!r}")
    if c.get("op") not in ("gt", "gte"):
        raise doc.err(f"{field}.condition.op", f"a burn-rate alert fires above its threshold: gt or gte, "
                                               f"got {c.get('op')!r}")
    thr = c.get("threshold")
    if isinstance(thr, bool) or not isinstance(thr, (int, float)) or thr <= 0:
        raise doc.err(f"{field}.condition.threshold", "must be a positive number")
    n, unit = openslo_duration(c.get("lookbackWindow"), doc, f"{field}.condition.lookbackWindow")
    if unit in "MQY":
        raise doc.err(f"{field}.condition.lookbackWindow", "must be minutes, hours, days or weeks")
    after = c.get("alertAfter", "0m")
    if after in (0, "0"):
        after = "0m"
    an, aunit = openslo_duration(after, doc, f"{field}.condition.alertAfter") if after != "0m" else (0, "m")
    if aunit in "MQY":
        raise doc.err(f"{field}.condition.alertAfter", "must be minutes, hours, days or weeks")
    sev = SEVERITY.get(str(s.get("severity", "")).lower())
    if sev is None:
        raise doc.err(f"{field}.severity", f"must be page, critical, ticket or warning, got {s.get('severity')!r}")
    return sev, float(thr), f"{n}{unit}", f"{an}{aunit}"


def _weeks_as_days(d: str) -> str:
    return f"{int(d[:-1]) * 7}d" if d.endswith("w") else d


def load_openslo(path: str | Path, more: list[Path] | None = None) -> list[SloConfig]:
    """Every SLO of an OpenSLO v1 file (refs may point into `more` files of the same import)."""
    cat = Catalogue()
    for p in [Path(path), *(more or [])]:
        cat.add_file(p)
    cat.validate()
    out = []
    for doc in cat.slos:
        if doc.where.startswith(f"{path}:"):
            out.extend(_slo(doc, cat))
    return out


def _slo(doc: _Doc, cat: Catalogue) -> list[SloConfig]:
    obj = doc.obj
    meta = obj["metadata"]
    spec = _strict(obj.get("spec"), {"description", "service", "indicator", "indicatorRef", "timeWindow",
                                     "budgetingMethod", "objectives", "alertPolicies"}, doc, "spec")
    _description(spec, doc, "spec")
    annotations = _annotations(meta, doc)
    extra = annotations.pop(ALERTING_ANNOTATION, None)
    name = annotations.pop(NAME_ANNOTATION, meta["name"])
    import_spec: str | None = annotations.pop(IMPORT_SPEC_ANNOTATION, API)
    import_spec = None if import_spec == "none" else import_spec
    budgeted = annotations.pop(BUDGETED_ANNOTATION, "false") == "true"
    long_display = annotations.pop(DISPLAY_NAME_ANNOTATION, None)
    long_description = annotations.pop(DESCRIPTION_ANNOTATION, None)
    window, calendar = _time_window(spec.get("timeWindow"), doc)
    method = spec.get("budgetingMethod")
    budgeting = {"Occurrences": "occurrences", "Timeslices": "timeslices",
                 "RatioTimeslices": "ratio_timeslices"}.get(method) if isinstance(method, str) else None
    if budgeting is None:
        raise doc.err("spec.budgetingMethod", f"must be Occurrences, Timeslices or RatioTimeslices, got {method!r}")
    if ("indicator" in spec) == ("indicatorRef" in spec):
        raise doc.err("spec", "exactly one of indicator or indicatorRef is required")
    if "indicator" in spec:
        ind_obj = _strict(spec["indicator"], {"metadata", "spec"}, doc, "spec.indicator")
        _metadata(ind_obj, doc, "spec.indicator.metadata")
        sli_spec, sli_doc, sli_field = ind_obj.get("spec"), doc, "spec.indicator.spec"
    else:
        ref = cat.get("SLI", spec["indicatorRef"], doc, "spec.indicatorRef")
        sli_spec, sli_doc, sli_field = ref.obj.get("spec"), ref, "spec"
    sli_spec = _strict(sli_spec, {"description", "thresholdMetric", "ratioMetric"}, sli_doc, sli_field)
    _description(sli_spec, sli_doc, sli_field)
    tiers, targets = _alert_policies(spec.get("alertPolicies"), doc, cat)
    objectives = spec.get("objectives")
    if not isinstance(objectives, list) or not objectives:
        raise doc.err("spec.objectives", "at least one objective is required")
    if "thresholdMetric" in sli_spec and len(objectives) > 1:
        raise doc.err("spec.objectives", "a thresholdMetric SLO has exactly one objective (OpenSLO v1)")
    out = []
    for k, o in enumerate(objectives):
        field = f"spec.objectives[{k}]"
        o = _strict(o, {"displayName", "op", "value", "target", "targetPercent", "timeSliceTarget", "timeSliceWindow",
                        "indicator", "indicatorRef", "compositeWeight"}, doc, field)
        for composite in ("indicator", "indicatorRef", "compositeWeight"):
            if composite in o:
                raise doc.err(f"{field}.{composite}", "composite SLOs are not supported")
        target = _target(o, doc, field)
        slice_window = _slice(o, doc, f"{field}.timeSliceWindow")
        tst = o.get("timeSliceTarget")
        if budgeting == "timeslices":
            if isinstance(tst, bool) or not isinstance(tst, (int, float)) or not 0 < tst <= 1:
                raise doc.err(f"{field}.timeSliceTarget", "Timeslices needs a timeSliceTarget in (0, 1]")
        elif tst is not None:
            raise doc.err(f"{field}.timeSliceTarget", f"only meaningful with Timeslices, not {method}")
        if budgeting == "occurrences" and "timeSliceWindow" in o:
            raise doc.err(f"{field}.timeSliceWindow", "only meaningful with Timeslices or RatioTimeslices")
        sli, journey, group_by = _indicator(sli_spec, sli_doc, sli_field, o, doc, field,
                                            "occurrences" if budgeted else budgeting, slice_window, cat)
        if sli["kind"] == "prometheus" and calendar is not None:
            raise doc.err("spec.timeWindow[0].calendar", "calendar windows cannot be computed by Prometheus range "
                                                         "queries; use a rolling window for Prometheus sources")
        raw = {"name": name if len(objectives) == 1 else f"{name}-{k}", "objective": target,
               "window": window, "calendar": calendar, "sli": sli, "journey": journey, "group_by": group_by,
               "description": long_description or spec.get("description") or "", "service": spec.get("service"),
               "display_name": o.get("displayName") if len(objectives) > 1 else
               (long_display or meta.get("displayName")),
               "labels": _labels(meta, doc), "annotations": annotations, "budgeting": budgeting,
               "import_spec": import_spec}
        if budgeting == "timeslices":
            raw["timeslice_target"] = tst
        if budgeting != "occurrences" and sli["kind"] != "prometheus":
            raw["timeslice_window"] = _minutes(slice_window, doc, f"{field}.timeSliceWindow")
        alerting: dict = {}
        if tiers is not None:
            alerting = {"page": [t for s, t in tiers if s == "page"], "ticket": [t for s, t in tiers if s == "ticket"]}
            if targets:
                alerting["labels"] = {"notification_targets": ",".join(targets)}
        if extra is not None:
            try:
                alerting.update(json.loads(extra))
            except ValueError:
                raise doc.err(f"metadata.annotations.{ALERTING_ANNOTATION}", "must be a JSON object") from None
        if alerting:
            raw["alerting"] = alerting
        try:
            out.append(SloConfig.model_validate({k: v for k, v in raw.items() if v is not None}))
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            raise doc.err(field, f"{loc}: {first['msg'].removeprefix('Value error, ')}") from None
    return out


def _minutes(window: str, doc: _Doc, field: str) -> str:
    """revwatch's own data is counted per minute, so its slices are whole minutes."""
    if parse_duration(window).total_seconds() % 60:
        raise doc.err(field, f"{window}: time slices of revwatch metric sources are whole minutes")
    return window


def _target(o: dict, doc: _Doc, field: str) -> float:
    if ("target" in o) == ("targetPercent" in o):
        raise doc.err(field, "exactly one of target or targetPercent is required")
    v = o.get("target", o.get("targetPercent"))
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise doc.err(f"{field}.{'target' if 'target' in o else 'targetPercent'}", "must be a number")
    t = v if "target" in o else v / 100
    if not 0 < t < 1:
        raise doc.err(f"{field}.{'target' if 'target' in o else 'targetPercent'}", "must be in (0, 1) / (0, 100)")
    return t


def _time_window(tw: Any, doc: _Doc) -> tuple[str, dict | None]:
    if not isinstance(tw, list) or len(tw) != 1:
        raise doc.err("spec.timeWindow", "required: exactly one window")
    w = _strict(tw[0], {"duration", "isRolling", "calendar"}, doc, "spec.timeWindow[0]")
    n, unit = openslo_duration(w.get("duration"), doc, "spec.timeWindow[0].duration")
    rolling = w.get("isRolling", False)
    if not isinstance(rolling, bool):
        raise doc.err("spec.timeWindow[0].isRolling", "must be true or false")
    if rolling:
        if "calendar" in w:
            raise doc.err("spec.timeWindow[0].calendar", "a rolling window has no calendar")
        if unit in "MQY":
            raise doc.err("spec.timeWindow[0].duration", f"a rolling {n}{unit} window has no fixed length (months "
                                                          f"differ); write it in days or weeks, e.g. 30d or 4w")
        return f"{n}{unit}", None
    cal = _strict(w.get("calendar"), {"startTime", "timeZone"}, doc, "spec.timeWindow[0].calendar")
    if not cal:
        raise doc.err("spec.timeWindow[0].calendar", "a calendar window (isRolling: false) needs calendar.startTime "
                                                      "and calendar.timeZone")
    if unit in "mh":
        raise doc.err("spec.timeWindow[0].duration", f"calendar windows are days, weeks, months, quarters or years; "
                                                      f"{n}{unit} is {'minutes' if unit == 'm' else 'hours'} "
                                                      f"(in OpenSLO 'm' is minutes, 'M' months)")
    start: Any = cal.get("startTime")            # YAML: a string, or a datetime it parsed itself
    start = start.isoformat(sep=" ") if hasattr(start, "isoformat") else start
    if not isinstance(start, str) or not re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", start):
        raise doc.err("spec.timeWindow[0].calendar.startTime", f"must be 'YYYY-MM-DD hh:mm:ss', got {start!r}")
    if not isinstance(cal.get("timeZone"), str):
        raise doc.err("spec.timeWindow[0].calendar.timeZone", "required (an IANA time zone)")
    start_t = dt.datetime.fromisoformat(start)
    if cal["timeZone"] == "UTC" and start_t.time() == dt.time(0):
        # the same periods as revwatch's own calendar windows: months from the 1st, weeks from Monday, 00:00 UTC
        if f"{n}{unit}" == "1M" and start_t.day == 1:
            return "calendar_month", None
        if f"{n}{unit}" == "1w" and start_t.weekday() == 0:
            return "calendar_week", None
    return "calendar", {"duration": f"{n}{unit}", "start": start.replace(" ", "T"), "time_zone": cal["timeZone"]}


def _source(ms: Any, doc: _Doc, field: str, cat: Catalogue) -> tuple[str, dict]:
    """(type, spec) of a metricSource, the type from a referenced DataSource when it has none itself."""
    ms = _strict(ms, {"metricSourceRef", "type", "spec"}, doc, field)
    kind = ms.get("type")
    if kind is None and ms.get("metricSourceRef"):
        kind = cat.get("DataSource", ms["metricSourceRef"], doc, f"{field}.metricSourceRef").obj["spec"]["type"]
    kind = kind or "revwatch"
    spec = ms.get("spec") or {}
    if not isinstance(spec, dict):
        raise doc.err(f"{field}.spec", "must be a mapping")
    if str(kind).lower() not in ("prometheus", "revwatch"):
        raise doc.err(f"{field}.type", f"metric source {kind!r} is not supported: revwatch computes SLIs from its own "
                                       f"data (type revwatch) or from Prometheus (type Prometheus)")
    return str(kind).lower(), spec


def _promql(spec: dict, doc: _Doc, field: str) -> str:
    q = spec.get("query") or spec.get("promql")
    if not isinstance(q, str) or not q.strip() or set(spec) - {"query", "promql"}:
        raise doc.err(f"{field}.spec", "a Prometheus source needs exactly spec.query (PromQL)")
    return q


def _windowed(q: str, how: str) -> str:
    return q if "{{.window}}" in q.replace(" ", "") else f"{how}(({q})[{{{{.window}}}}:])"


def _indicator(sli: dict, sdoc: _Doc, sfield: str, obj: dict, odoc: _Doc, ofield: str, budgeting: str,
               slice_window: str, cat: Catalogue) -> tuple[dict, str | None, list[str]]:
    """The revwatch SLI (and journey, group_by) an OpenSLO indicator and objective describe."""
    if ("thresholdMetric" in sli) == ("ratioMetric" in sli):
        raise sdoc.err(sfield, "exactly one of thresholdMetric or ratioMetric is required")
    if "thresholdMetric" in sli:
        tm = _strict(sli["thresholdMetric"], {"metricSource"}, sdoc, f"{sfield}.thresholdMetric")
        kind, src = _source(tm.get("metricSource"), sdoc, f"{sfield}.thresholdMetric.metricSource", cat)
        op, value = obj.get("op"), obj.get("value")
        if (not isinstance(op, str) or op not in _BREACH or isinstance(value, bool)
                or not isinstance(value, (int, float))):
            raise odoc.err(ofield, "a thresholdMetric objective needs op (lte, lt, gte, gt) and a numeric value")
        if kind == "prometheus":
            q = _promql(src, sdoc, f"{sfield}.thresholdMetric.metricSource")
            # the share of rule evaluations (subquery at the evaluation interval) at which the value breached
            breach = f"avg_over_time((({q}) {_BREACH[op]} bool {value!r})[{{{{.window}}}}:])"
            return _prom_budgeted(breach, obj, budgeting, slice_window), None, []
        if "sli" in src:
            return src["sli"], src.get("journey"), src.get("group_by", [])
        unit = src.get("unit")
        if not isinstance(unit, str) or unit not in _UNITS:
            raise sdoc.err(f"{sfield}.thresholdMetric.metricSource.spec.unit",
                           f"the unit of the objective's value is required: one of {', '.join(_UNITS)}")
        if op not in ("lte", "lt"):
            raise odoc.err(f"{ofield}.op", "a latency objective is met at or below its value: lte or lt")
        threshold = f"{int(round(value * _UNITS[unit] * 1000))}ms"
        extra = set(src) - {"journey", "service", "unit", "group_by", "span_name"}
        if extra:
            raise sdoc.err(f"{sfield}.thresholdMetric.metricSource.spec.{sorted(extra)[0]}", "unknown field")
        if src.get("journey"):
            return {"kind": "journey_latency", "threshold": threshold}, src["journey"], src.get("group_by", [])
        if src.get("service"):
            s = {"kind": "span_latency", "service": src["service"], "threshold": threshold}
            if src.get("span_name"):
                s["span_name"] = src["span_name"]
            return s, None, src.get("group_by", [])
        raise sdoc.err(f"{sfield}.thresholdMetric.metricSource.spec", "needs journey, service or sli")
    if obj.get("op", "gt") not in ("gt", "gte") or "value" in obj:
        raise _ratio_op_error(odoc, ofield)
    rm = _strict(sli["ratioMetric"], {"counter", "good", "bad", "total", "raw", "rawType"}, sdoc,
                 f"{sfield}.ratioMetric")
    f = f"{sfield}.ratioMetric"
    parts = {}
    for part in ("good", "bad", "total", "raw"):
        if part in rm:
            p = _strict(rm[part], {"metricSource"}, sdoc, f"{f}.{part}")
            parts[part] = _source(p.get("metricSource"), sdoc, f"{f}.{part}.metricSource", cat)
    if "raw" in parts:
        if set(parts) != {"raw"} or rm.get("rawType") not in ("success", "failure"):
            raise sdoc.err(f, "raw needs rawType success or failure and no good/bad/total")
    elif "total" not in parts or ("good" in parts) == ("bad" in parts):
        raise sdoc.err(f, "needs total and exactly one of good or bad (or raw with rawType)")
    kinds = {k for k, _ in parts.values()}
    if len(kinds) != 1:
        raise sdoc.err(f, "all parts must come from the same kind of metric source")
    if kinds == {"prometheus"}:
        queries = {part: _promql(spec, sdoc, f"{f}.{part}.metricSource") for part, (_, spec) in parts.items()}
        if "raw" in queries:
            ratio = _windowed(queries["raw"], "avg_over_time")
            err = ratio if rm["rawType"] == "failure" else f"1 - ({ratio})"
        elif "bad" in queries and all("{{.window}}" in v.replace(" ", "") for v in queries.values()) \
                and budgeting == "occurrences":
            # windowed bad/total event queries: Sloth's events SLI, as written
            return {"kind": "prometheus", "error_query": queries["bad"], "total_query": queries["total"]}, None, []
        else:
            how = "increase" if rm.get("counter") else "sum_over_time"
            total = _windowed(queries["total"], how)
            err = f"({_windowed(queries['bad'], how)}) / ({total})" if "bad" in queries else \
                f"1 - (({_windowed(queries['good'], how)}) / ({total}))"
        return _prom_budgeted(err, obj, budgeting, slice_window), None, []
    merged: dict = {}
    for _, spec in parts.values():
        merged.update(spec)
    if "sli" in merged:
        extra = set(merged) - {"sli", "journey", "group_by"}
        if extra:
            raise sdoc.err(f"{f}: metricSource.spec.{sorted(extra)[0]}", "unknown field next to sli")
        return merged["sli"], merged.get("journey"), merged.get("group_by", [])
    extra = set(merged) - {"journey", "service", "max_age", "bad_when", "group_by", "span_name"}
    if extra:
        raise sdoc.err(f"{f}: metricSource.spec.{sorted(extra)[0]}", "unknown field")
    if merged.get("journey"):
        if not merged.get("max_age"):
            raise sdoc.err(f"{f}: metricSource.spec.max_age", "required: how long a journey may take to complete")
        return ({"kind": "journey_completion", "max_age": merged["max_age"]}, merged["journey"],
                merged.get("group_by", []))
    if merged.get("service"):
        s = {"kind": "span_ratio", "service": merged["service"],
             "bad_when": merged.get("bad_when", {"StatusCode": "Error"})}
        if merged.get("span_name"):
            s["span_name"] = merged["span_name"]
        return s, None, merged.get("group_by", [])
    raise sdoc.err(f"{f}: metricSource.spec", "needs journey, service or sli")


def _ratio_op_error(odoc: _Doc, ofield: str) -> OpenSloError:
    """op/value belong to thresholdMetric objectives; a ratio objective is met when the ratio is above target."""
    return odoc.err(f"{ofield}.op", "a ratioMetric objective is met above its target: op may only be gt or gte, "
                                    "and value belongs to thresholdMetric objectives")


def _prom_budgeted(err: str, obj: dict, budgeting: str, slice_window: str) -> dict:
    """The error-ratio PromQL for the budgeting method, from the window's error ratio `err` (with `{{.window}}`):
    Occurrences as is; RatioTimeslices the mean of each slice's error ratio; Timeslices the share of slices whose
    good ratio is below timeSliceTarget — slices evaluated every `slice_window` over the window."""
    if budgeting == "occurrences":
        return {"kind": "prometheus", "error_ratio_query": err}
    per_slice = err.replace("{{.window}}", slice_window)
    if budgeting == "ratio_timeslices":
        return {"kind": "prometheus",
                "error_ratio_query": f"avg_over_time(({per_slice})[{{{{.window}}}}:{slice_window}])"}
    bad_slice = 1 - float(obj["timeSliceTarget"])
    return {"kind": "prometheus",
            "error_ratio_query": f"avg_over_time((({per_slice}) > bool {bad_slice!r})[{{{{.window}}}}:{slice_window}])"}


def _alert_policies(policies: Any, doc: _Doc, cat: Catalogue) -> tuple[list | None, list[str]]:
    """alertPolicies → ([(severity, tier)], notification target names), or (None, []) when there are none."""
    if policies is None:
        return None, []
    if not isinstance(policies, list):
        raise doc.err("spec.alertPolicies", "must be a list")
    tiers, targets = [], []
    for i, p in enumerate(policies):
        field = f"spec.alertPolicies[{i}]"
        if isinstance(p, dict) and "alertPolicyRef" in p:
            _strict(p, {"alertPolicyRef"}, doc, field)
            pdoc = cat.get("AlertPolicy", p["alertPolicyRef"], doc, f"{field}.alertPolicyRef")
            pspec, pd, pf = pdoc.obj.get("spec"), pdoc, "spec"
        else:
            p = _strict(p, {"kind", "metadata", "spec"}, doc, field)
            if p.get("kind") != "AlertPolicy":
                raise doc.err(f"{field}.kind", "must be AlertPolicy")
            _metadata(p, doc, f"{field}.metadata")
            pspec, pd, pf = p.get("spec"), doc, f"{field}.spec"
        sev, tier, names = _policy(pspec, pd, pf, cat)
        tiers.append((sev, tier))
        targets += names
    return tiers, targets


def _policy(pspec: Any, pd: _Doc, pf: str, cat: Catalogue) -> tuple[str, dict, list[str]]:
    """One AlertPolicy spec → (severity, alert tier, notification target names); refs resolved in `cat`."""
    s = _strict(pspec, {"description", "alertWhenNoData", "alertWhenResolved", "alertWhenBreaching", "conditions",
                        "notificationTargets"}, pd, pf)
    _description(s, pd, pf)
    for flag in ("alertWhenNoData", "alertWhenResolved", "alertWhenBreaching"):
        if flag in s and not isinstance(s[flag], bool):
            raise pd.err(f"{pf}.{flag}", "must be true or false")
    if s.get("alertWhenNoData"):
        raise pd.err(f"{pf}.alertWhenNoData", "no-data alerts are not generated; remove it or set false")
    if s.get("alertWhenBreaching") is False:
        raise pd.err(f"{pf}.alertWhenBreaching", "revwatch alerts on breaching burn rates; false is not supported")
    conditions = s.get("conditions")
    if not isinstance(conditions, list) or len(conditions) != 1:
        raise pd.err(f"{pf}.conditions", "exactly one condition (OpenSLO v1)")
    c = conditions[0]
    if isinstance(c, dict) and "conditionRef" in c:
        _strict(c, {"conditionRef"}, pd, f"{pf}.conditions[0]")
        cdoc = cat.get("AlertCondition", c["conditionRef"], pd, f"{pf}.conditions[0].conditionRef")
        sev, thr, lookback, after = _condition(cdoc.obj.get("spec"), cdoc, "spec")
    else:
        c = _strict(c, {"kind", "metadata", "spec"}, pd, f"{pf}.conditions[0]")
        if c.get("kind") != "AlertCondition":
            raise pd.err(f"{pf}.conditions[0].kind", "must be AlertCondition (or use conditionRef)")
        _metadata(c, pd, f"{pf}.conditions[0].metadata")
        _description(c.get("spec"), pd, f"{pf}.conditions[0].spec")
        sev, thr, lookback, after = _condition(c.get("spec"), pd, f"{pf}.conditions[0].spec")
    targets = s.get("notificationTargets") or []
    if not isinstance(targets, list):
        raise pd.err(f"{pf}.notificationTargets", "must be a list")
    names = []
    for j, t in enumerate(targets):
        tf = f"{pf}.notificationTargets[{j}]"
        if isinstance(t, dict) and "targetRef" in t:
            _strict(t, {"targetRef"}, pd, tf)
            names.append(cat.get("AlertNotificationTarget", t["targetRef"], pd, f"{tf}.targetRef").obj[
                "metadata"]["name"])
        else:
            t = _strict(t, {"kind", "metadata", "spec"}, pd, tf)
            if t.get("kind") != "AlertNotificationTarget":
                raise pd.err(f"{tf}.kind", "must be AlertNotificationTarget (or use targetRef)")
            tspec = _strict(t.get("spec"), {"description", "target"}, pd, f"{tf}.spec")
            _description(tspec, pd, f"{tf}.spec")
            if not isinstance(tspec.get("target"), str):
                raise pd.err(f"{tf}.spec.target", "required")
            names.append(_metadata(t, pd, f"{tf}.metadata")["name"])
    long = parse_duration(_weeks_as_days(lookback))
    return sev, {"long": format_duration(long), "short": format_duration(long / 12), "burn_rate": thr,
                 "alert_after": _weeks_as_days(after)}, names


def _check_sli(spec: Any, doc: _Doc, field: str, cat: Catalogue) -> None:
    """An SLI's structure (OpenSLO v1 "SLI"): exactly one of thresholdMetric and ratioMetric; a ratio has total with
    exactly one of good / bad, or raw with rawType; every metricSource names a type or a DataSource that exists."""
    s = _strict(spec, {"description", "thresholdMetric", "ratioMetric"}, doc, field)
    _description(s, doc, field)
    if ("thresholdMetric" in s) == ("ratioMetric" in s):
        raise doc.err(field, "exactly one of thresholdMetric or ratioMetric is required")

    def source(ms: Any, f: str) -> None:
        ms = _strict(ms, {"metricSourceRef", "type", "spec"}, doc, f)
        if ms.get("metricSourceRef") is not None:
            cat.get("DataSource", ms["metricSourceRef"], doc, f"{f}.metricSourceRef")
        elif not isinstance(ms.get("type"), str):
            raise doc.err(f"{f}.type", "required when there is no metricSourceRef")
    if "thresholdMetric" in s:
        tm = _strict(s["thresholdMetric"], {"metricSource"}, doc, f"{field}.thresholdMetric")
        source(tm.get("metricSource"), f"{field}.thresholdMetric.metricSource")
        return
    rm = _strict(s["ratioMetric"], {"counter", "good", "bad", "total", "raw", "rawType"}, doc, f"{field}.ratioMetric")
    parts = [p for p in ("good", "bad", "total", "raw") if p in rm]
    if "raw" in parts:
        if parts != ["raw"] or rm.get("rawType") not in ("success", "failure"):
            raise doc.err(f"{field}.ratioMetric", "raw needs rawType success or failure and no good/bad/total")
    elif "total" not in parts or ("good" in parts) == ("bad" in parts):
        raise doc.err(f"{field}.ratioMetric", "needs total and exactly one of good or bad (or raw with rawType)")
    if "counter" in rm and not isinstance(rm["counter"], bool):
        raise doc.err(f"{field}.ratioMetric.counter", "must be true or false")
    for p in parts:
        part = _strict(rm[p], {"metricSource"}, doc, f"{field}.ratioMetric.{p}")
        source(part.get("metricSource"), f"{field}.ratioMetric.{p}.metricSource")
