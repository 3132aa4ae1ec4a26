"""OpenSLO v2alpha `BudgetAdjustment` documents (`openslo_v2alpha_files:`), imported as budget adjustments and
exported from them (docs/slo-policy.md).

The v2alpha object (OpenSLO go-sdk `pkg/openslo/v2alpha`): `apiVersion: openslo.com/v2alpha`, `kind:
BudgetAdjustment`, `metadata: {name, labels?, annotations?}`, `spec: {description, service, indicatorRef, startTime
(RFC 3339), endTime | duration}`. It has no recurrence, effect or time zone; revwatch carries those in annotations
(`revwatch.io/rrule`, `revwatch.io/time-zone`, `revwatch.io/effect`, `revwatch.io/slos` — `*` for every SLO —,
`revwatch.io/name`, `revwatch.io/description` when the spec's is a stand-in), which
the import reads back, so an export imports to the same adjustments. Without `revwatch.io/slos` the adjustment
applies to the SLOs whose indicator is `indicatorRef` (revwatch's exported SLI names are `<slo>-sli`, slo/export.py)
or that are named so.

Composite SLOs (`kind: SLO` whose `spec.objectives[]` carry `sliRef`/`sli`, the go-sdk's `SLOSpec.
HasCompositeObjectives`) are imported as revwatch composites (slo/composite.py; `load_composites`):
* each objective is one member: its `sliRef` names the SLI of a revwatch SLO (matched as for `indicatorRef`
  above); an inline `sli` is refused (a member must be an SLO revwatch already evaluates);
* `compositeWeight` (> 0, default 1) → `composite.weights`; rollup `weighted` (the v2alpha notion), or
  `least_healthy` from the annotation `revwatch.io/rollup`;
* the composite's objective: the weight-averaged objective `target` (or `targetPercent`/100) — with a weighted SLI
  that is the level the composite sits at when every member meets its own target exactly;
* `timeWindow`: one rolling window (a composite needs one); `budgetingMethod: Occurrences` (the roll-up averages
  the members' SLIs, each already counted by its own method); `spec.service` → the ownership `service`.
`alertPolicies` are refused (the composite takes revwatch's default multi-window tiers, or the `revwatch.io/alerting`
annotation's). Non-composite v2alpha SLOs are refused (import them as openslo/v1). Other kinds are refused; each
refusal is one line naming file, document and field.

Export (`export_composites`, `revwatch slo export --format openslo-v2alpha`): each composite as such a document, one
objective per member with the member's own objective as `target` and its weight as `compositeWeight`. What v2alpha
has no field for travels in `revwatch.io/` annotations the import reads first, so an export imports to the same
config: `objective` (the composite's own, exact; without it the weighted average of the targets), `rollup`,
`alerting` (JSON, as the v1 export), `ownership` (JSON: owner, team, tier, runbook), `no-data-after`, `service`
(empty: the SLO has none; v2alpha requires one), `import-spec` and `name`. A member's `sliRef` may name a composite
declared earlier in the same or a previous v2alpha file (composites of composites).
"""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from revwatch.config import AdjustmentConfig, SloConfig
from revwatch.units import format_duration, parse_duration, parse_instant
from slo.adjustments import Adjustment

API = "openslo.com/v2alpha"
PREFIX = "revwatch.io/"
_DNS = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class OpenSloV2Error(ValueError):
    """A v2alpha document revwatch cannot import; the message names file, document and field."""


def k8s_name(name: str) -> str:
    n = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:63].strip("-")
    return n or "x"


def _documents(path: Path, kind: str):
    """(metadata, spec, annotations, err) of every `kind` document of a v2alpha file; raises on a kind not imported
    and on a document of `kind` without a DNS-label name or a spec."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        raise OpenSloV2Error(f"{path}: cannot read ({e})") from None
    for i, doc in enumerate(docs):
        where = f"{path}: document {i + 1}"

        def err(field: str, msg: str, where: str = where) -> OpenSloV2Error:
            return OpenSloV2Error(f"{where}: {field}: {msg}")
        if not isinstance(doc, dict):
            raise err("(document)", "must be a mapping")
        if doc.get("apiVersion") != API:
            raise err("apiVersion", f"must be {API}")
        if doc.get("kind") not in ("BudgetAdjustment", "SLO"):
            raise err("kind", f"only BudgetAdjustment and composite SLO are imported from v2alpha files, got "
                              f"{doc.get('kind')!r}")
        if doc["kind"] != kind:
            continue
        meta, spec = doc.get("metadata"), doc.get("spec")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not _DNS.fullmatch(meta["name"]):
            raise err("metadata.name", "required, an RFC 1123 DNS label")
        if not isinstance(spec, dict):
            raise err("spec", "required")
        ann: dict[str, Any] = meta.get("annotations") or {}
        yield meta, spec, ann, err


def _slos_of_ref(ref: str, slo_names: list[str]) -> list[str]:
    """The SLOs whose indicator an OpenSLO SLI name designates (`<slo>-sli` as slo/export.py writes, or the name)."""
    return [n for n in slo_names if ref in (f"{k8s_name(n)}-sli", n, k8s_name(n))]


def load_adjustments(path: Path, slo_names: list[str]) -> list[Adjustment]:
    """The BudgetAdjustments of one file, as adjustments (source: the file)."""
    out = []
    for meta, spec, ann, err in _documents(path, "BudgetAdjustment"):
        for key in ("description", "service", "indicatorRef", "startTime"):
            if not isinstance(spec.get(key), str) or not spec[key]:
                raise err(f"spec.{key}", "required")
        if ("endTime" in spec) == ("duration" in spec):
            raise err("spec", "give exactly one of endTime and duration")
        try:
            start = parse_instant(spec["startTime"])
        except ValueError as e:
            raise err("spec.startTime", str(e)) from None
        try:
            duration = (parse_instant(spec["endTime"]) - start if "endTime" in spec
                        else parse_duration(str(spec["duration"])))
        except ValueError as e:
            raise err("spec.endTime" if "endTime" in spec else "spec.duration", str(e)) from None
        if PREFIX + "slos" in ann:
            slos = None if ann[PREFIX + "slos"] == "*" else [s for s in str(ann[PREFIX + "slos"]).split(",") if s]
        else:
            ref = spec["indicatorRef"]
            slos = _slos_of_ref(ref, slo_names)
            if not slos:
                raise err("spec.indicatorRef", f"{ref!r} is the indicator of no SLO")
        raw = {"name": ann.get(PREFIX + "name", meta["name"]), "start": start, "duration": format_duration(duration),
               "rrule": ann.get(PREFIX + "rrule"), "time_zone": ann.get(PREFIX + "time-zone", "UTC"),
               "slos": slos, "effect": ann.get(PREFIX + "effect", "exclude"),
               "description": ann.get(PREFIX + "description", spec["description"])}
        try:
            cfg = AdjustmentConfig.model_validate(raw)
        except ValidationError as e:
            first = e.errors()[0]
            raise err(".".join(map(str, first["loc"])) or "spec", first["msg"].removeprefix("Value error, ")) from None
        out.append(Adjustment(cfg, str(path)))
    return out


def load_composites(path: Path, slo_names: list[str]) -> list[SloConfig]:
    """The composite SLOs of one v2alpha file (module docstring), members resolved against `slo_names` and the
    composites of this file."""
    out = []
    slo_names = slo_names + [ann.get(PREFIX + "name", meta["name"]) for meta, _, ann, _ in _documents(path, "SLO")]
    for meta, spec, ann, err in _documents(path, "SLO"):
        objectives = spec.get("objectives")
        if not isinstance(objectives, list) or not objectives:
            raise err("spec.objectives", "required, a non-empty list")
        if not all(isinstance(o, dict) and ("sli" in o or "sliRef" in o) for o in objectives):
            raise err("spec.sli" if ("sli" in spec or "sliRef" in spec) else "spec.objectives",
                      "only composite SLOs (every objective with sliRef) are imported from v2alpha files; import "
                      "other SLOs as openslo/v1")
        for key in ("sli", "sliRef", "alertPolicies"):
            if key in spec:
                raise err(f"spec.{key}", "not imported for a composite SLO" if key == "alertPolicies" else
                          "a composite SLO has its SLIs on its objectives, not on the spec")
        if not isinstance(spec.get("service"), str) or not spec["service"]:
            raise err("spec.service", "required")
        if spec.get("budgetingMethod") != "Occurrences":
            raise err("spec.budgetingMethod", f"a composite is imported with Occurrences only, got "
                                              f"{spec.get('budgetingMethod')!r}")
        tw = spec.get("timeWindow")
        if (not isinstance(tw, list) or len(tw) != 1 or not isinstance(tw[0], dict)
                or tw[0].get("isRolling") is not True or "calendar" in tw[0]):
            raise err("spec.timeWindow", "exactly one rolling window (isRolling: true) is needed by a composite")
        try:
            window = str(tw[0].get("duration"))
            parse_duration(window)
        except ValueError as e:
            raise err("spec.timeWindow[0].duration", str(e)) from None
        members: list[str] = []
        weights: dict[str, float] = {}
        targets: list[tuple[float, float]] = []
        for k, o in enumerate(objectives):
            f = f"spec.objectives[{k}]"
            if "sli" in o:
                raise err(f"{f}.sli", "an inline SLI is not imported: a member must be an SLO revwatch evaluates; "
                                      "name its SLI with sliRef")
            found = _slos_of_ref(str(o["sliRef"]), slo_names)
            if len(found) != 1:
                raise err(f"{f}.sliRef", f"{o['sliRef']!r} is the indicator of no SLO" if not found else
                          f"{o['sliRef']!r} is ambiguous ({', '.join(found)})")
            w = o.get("compositeWeight", 1)
            if isinstance(w, bool) or not isinstance(w, (int, float)) or w <= 0:
                raise err(f"{f}.compositeWeight", f"must be a number > 0, got {w!r}")
            if ("target" in o) == ("targetPercent" in o):
                raise err(f"{f}.target", "give exactly one of target and targetPercent")
            t = o["target"] if "target" in o else o["targetPercent"]
            if isinstance(t, bool) or not isinstance(t, (int, float)):
                raise err(f"{f}.{'target' if 'target' in o else 'targetPercent'}", f"must be a number, got {t!r}")
            targets.append((float(w), t if "target" in o else t / 100))
            members.append(found[0])
            if w != 1:
                weights[found[0]] = float(w)
        raw = {"name": ann.get(PREFIX + "name", meta["name"]), "objective":
               sum(w * t for w, t in targets) / sum(w for w, _ in targets), "window": window,
               "composite": {"members": members, "rollup": ann.get(PREFIX + "rollup", "weighted"), "weights": weights},
               "description": spec.get("description") or "", "service": spec["service"],
               "display_name": meta.get("displayName"), "import_spec": API, "labels": meta.get("labels") or {},
               "annotations": {k: v for k, v in ann.items() if not str(k).startswith(PREFIX)}}
        for key, field in (("objective", "objective"), ("no-data-after", "no_data_after"), ("service", "service"),
                           ("import-spec", "import_spec")):
            if PREFIX + key in ann:            # revwatch's own export: the exact value (module docstring)
                raw[field] = ann[PREFIX + key] if ann[PREFIX + key] not in ("", "none") else None
        for key in ("alerting", "ownership"):
            if PREFIX + key in ann:
                try:
                    extra = json.loads(ann[PREFIX + key])
                    assert isinstance(extra, dict)
                except (ValueError, AssertionError):
                    raise err(f"metadata.annotations.{PREFIX}{key}", "must be a JSON object") from None
                raw.update({"alerting": extra} if key == "alerting" else extra)
        try:
            out.append(SloConfig.model_validate(raw))
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(map(str, first["loc"]))
            field = {"objective": "spec.objectives[].target", "composite.members": "spec.objectives"}.get(loc, loc)
            raise err(field or "spec", first["msg"].removeprefix("Value error, ")) from None
    return out


def composite_document(spec, objectives: dict[str, float]) -> dict:
    """The v2alpha composite SLO of one revwatch composite (module docstring); `objectives`: SLO name → objective,
    the members' targets."""
    from slo.export import plain
    c = spec.config
    comp = c.composite
    assert comp is not None, "only composites are exported to v2alpha"
    ann = {**c.annotations, PREFIX + "name": c.name, PREFIX + "rollup": comp.rollup,
           PREFIX + "objective": repr(c.objective), PREFIX + "import-spec": c.import_spec or "none",
           PREFIX + "alerting": json.dumps(plain(c.alerting.model_dump()), sort_keys=True, separators=(",", ":"))}
    owners = {k: getattr(c, k) for k in ("owner", "team", "tier", "runbook") if getattr(c, k) is not None}
    if owners:
        ann[PREFIX + "ownership"] = json.dumps(owners, sort_keys=True, separators=(",", ":"))
    if c.no_data_after is not None:
        ann[PREFIX + "no-data-after"] = format_duration(c.no_data_after)
    if c.service is None:
        ann[PREFIX + "service"] = ""                   # v2alpha requires a service: a stand-in, "none" kept here
    meta: dict[str, Any] = {"name": k8s_name(c.name)}
    if c.display_name:
        meta["displayName"] = c.display_name
    if c.labels:
        meta["labels"] = dict(c.labels)
    meta["annotations"] = ann
    objectives_doc = []
    for m in comp.members:
        o: dict[str, Any] = {"sliRef": f"{k8s_name(m)}-sli", "target": objectives[m]}
        if m in comp.weights:
            o["compositeWeight"] = comp.weights[m]
        objectives_doc.append(o)
    body: dict[str, Any] = {"description": c.description} if c.description else {}
    body.update({"service": c.service or "revwatch", "budgetingMethod": "Occurrences",
                 "timeWindow": [{"duration": c.window, "isRolling": True}], "objectives": objectives_doc})
    return {"apiVersion": API, "kind": "SLO", "metadata": meta, "spec": body}


def export_composites(specs: list) -> list[dict]:
    """The v2alpha documents of every composite among `specs` (members among `specs` too)."""
    objectives = {s.name: s.config.objective for s in specs}
    return [composite_document(s, objectives) for s in specs if s.is_composite]


def export_v2alpha(specs: list, adjustments: list[Adjustment], services: dict[str, str | None]) -> str:
    """Every composite SLO, then every budget adjustment, as one multi-document v2alpha YAML stream."""
    return yaml.safe_dump_all(export_composites(specs) + [adjustment_document(a, services) for a in adjustments],
                              sort_keys=False, width=120, allow_unicode=True)


def adjustment_document(adj: Adjustment, services: dict[str, str | None]) -> dict:
    """The v2alpha BudgetAdjustment of one adjustment; `services`: SLO name → its ownership service."""
    c = adj.config
    first = (c.slos or sorted(services) or ["revwatch"])[0]
    start = c.start.replace(tzinfo=_zone(c.time_zone)).astimezone(dt.timezone.utc)
    ann = {PREFIX + "name": c.name, PREFIX + "effect": c.effect, PREFIX + "time-zone": c.time_zone,
           PREFIX + "slos": ",".join(c.slos) if c.slos else "*"}         # "*": every SLO
    if c.rrule:
        ann[PREFIX + "rrule"] = c.rrule
    if not c.description:                             # v2alpha requires one: a stand-in, the empty original kept
        ann[PREFIX + "description"] = ""
    return {"apiVersion": API, "kind": "BudgetAdjustment",
            "metadata": {"name": k8s_name(c.name), "annotations": ann},
            "spec": {"description": c.description or f"revwatch budget adjustment {c.name}",
                     "service": k8s_name(services.get(first) or "revwatch"), "indicatorRef": f"{k8s_name(first)}-sli",
                     "startTime": start.isoformat().replace("+00:00", "Z"), "duration": format_duration(c.duration)}}


def export_adjustments(adjustments: list[Adjustment], services: dict[str, str | None]) -> str:
    """Every adjustment as a multi-document v2alpha YAML stream."""
    return export_v2alpha([], adjustments, services)


def _zone(name: str):
    from zoneinfo import ZoneInfo
    return ZoneInfo(name)
