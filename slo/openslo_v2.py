"""OpenSLO v2alpha `BudgetAdjustment` documents (`openslo_v2alpha_files:`), imported as budget adjustments and
exported from them (docs/slo-policy.md).

The v2alpha object (OpenSLO go-sdk `pkg/openslo/v2alpha`): `apiVersion: openslo.com/v2alpha`, `kind:
BudgetAdjustment`, `metadata: {name, labels?, annotations?}`, `spec: {description, service, indicatorRef, startTime
(RFC 3339), endTime | duration}`. It has no recurrence, effect or time zone; revwatch carries those in annotations
(`revwatch.io/rrule`, `revwatch.io/time-zone`, `revwatch.io/effect`, `revwatch.io/slos` — `*` for every SLO —,
`revwatch.io/name`, `revwatch.io/description` when the spec's is a stand-in), which
the import reads back, so an export imports to the same adjustments. Without `revwatch.io/slos` the adjustment
applies to the SLOs whose indicator is `indicatorRef` (revwatch's exported SLI names are `<slo>-sli`, slo/export.py)
or that are named so. Other kinds in these files are refused (one line naming file, document and field).
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from revwatch.config import AdjustmentConfig
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


def load_adjustments(path: Path, slo_names: list[str]) -> list[Adjustment]:
    """The BudgetAdjustments of one file, as adjustments (source: the file)."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        raise OpenSloV2Error(f"{path}: cannot read ({e})") from None
    out = []
    for i, doc in enumerate(docs):
        where = f"{path}: document {i + 1}"

        def err(field: str, msg: str, where: str = where) -> OpenSloV2Error:
            return OpenSloV2Error(f"{where}: {field}: {msg}")
        if not isinstance(doc, dict):
            raise err("(document)", "must be a mapping")
        if doc.get("apiVersion") != API:
            raise err("apiVersion", f"must be {API}")
        if doc.get("kind") != "BudgetAdjustment":
            raise err("kind", f"only BudgetAdjustment is imported from v2alpha files, got {doc.get('kind')!r}")
        meta, spec = doc.get("metadata"), doc.get("spec")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not _DNS.fullmatch(meta["name"]):
            raise err("metadata.name", "required, an RFC 1123 DNS label")
        if not isinstance(spec, dict):
            raise err("spec", "required")
        ann: dict[str, Any] = meta.get("annotations") or {}
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
            slos = [n for n in slo_names if ref in (f"{k8s_name(n)}-sli", n, k8s_name(n))]
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
    return yaml.safe_dump_all([adjustment_document(a, services) for a in adjustments], sort_keys=False, width=120)


def _zone(name: str):
    from zoneinfo import ZoneInfo
    return ZoneInfo(name)
