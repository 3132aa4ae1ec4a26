"""Import of Sloth SLO specs: `version: prometheus/v1` files and the Kubernetes `PrometheusServiceLevel` form.

Field for field as Sloth reads them (slok/sloth `pkg/prometheus/api/v1/v1.go`, `pkg/kubernetes/api/sloth/v1/types.go`,
`internal/storage/io/sloth.go`, `k8s_sloth.go`): `service`, `labels`, `slos[]` with `name`, `description`,
`objective` (percent), `labels`, `sli.events` (`error_query`/`total_query`) or `sli.raw` (`error_ratio_query`),
`alerting` (`name`, `labels`, `annotations`, `page_alert`/`ticket_alert` with `labels`, `annotations`, `disable`).
The SLO's id is `<service>-<name>` (Sloth's `sloth_id`), its labels the service labels overlaid by the SLO's.
Every file may hold several YAML documents, or a top-level list of them.

Refused with the file, document index and field: unknown fields, another `version`, SLI plugins and SLO plugin
chains other than Sloth's own core chain (plugins are Go code Sloth runs; revwatch cannot run them and will not
guess what they generate). The period is `sloth_period` (Sloth's `--default-slo-period`, 30d by default); alert
tiers come from the alert-window catalogue of that period, as in Sloth.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from revwatch.config import SloConfig
from slo.spec import SpecError
from slo.sloth_rules import WINDOW_VAR

# Sloth's core SLO plugins: a chain of only these generates exactly what Sloth generates without a chain
RULE_PLUGINS = {"sloth.dev/core/sli_rules/v1", "sloth.dev/core/metadata_rules/v1", "sloth.dev/core/alert_rules/v1"}
# output-neutral core plugins: validation, no-op, debug logging
CORE_PLUGINS = RULE_PLUGINS | {"sloth.dev/core/validate/v1", "sloth.dev/core/noop/v1", "sloth.dev/core/debug/v1"}
PROM_V1 = "prometheus/v1"
K8S_API = "sloth.slok.dev/v1"


class SlothError(SpecError):
    """A Sloth document cannot be imported; the message names the file, document and field."""


def _fields(kind: str) -> dict[str, dict[str, str]]:
    """Field names per object: the prometheus/v1 names, or the camelCase names of the Kubernetes CRD."""
    k8s = kind == "k8s"
    return {
        "spec": {"service": "service", "labels": "labels", "slos": "slos",
                 "plugins": "sloPlugins" if k8s else "slo_plugins"},
        "slo": {"name": "name", "description": "description", "objective": "objective", "labels": "labels",
                "sli": "sli", "alerting": "alerting", "plugins": "plugins"},
        "events": {"error": "errorQuery" if k8s else "error_query", "total": "totalQuery" if k8s else "total_query"},
        "raw": {"ratio": "errorRatioQuery" if k8s else "error_ratio_query"},
        "alerting": {"name": "name", "labels": "labels", "annotations": "annotations",
                     "page": "pageAlert" if k8s else "page_alert", "ticket": "ticketAlert" if k8s else "ticket_alert"},
    }


def _at(where: str, field: str) -> str:
    """`file: document 2: slos[0]` below a document's root (which ends in ': '), `...slos[0].sli` below that."""
    return where + field if where.endswith(": ") else f"{where}.{field}"


def _strict(obj: Any, allowed: set[str], where: str) -> dict:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise SlothError(f"{where}: must be a mapping")
    unknown = sorted(str(k) for k in set(obj) - allowed)
    if unknown:
        raise SlothError(f"{_at(where, unknown[0])}: unknown field (not part of Sloth's spec)")
    return obj


def _str_map(obj: Any, where: str) -> dict[str, str]:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise SlothError(f"{where}: must be a mapping of strings")
    out = {}
    for k, v in obj.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (int, float)):
            v = str(v)
        if not isinstance(v, str):
            raise SlothError(f"{where}.{k}: must be a string")
        out[str(k)] = v
    return out


def _plugins(obj: Any, where: str) -> None:
    """Accept a plugin chain only when Sloth would generate with it exactly what it generates without one."""
    spec = _strict(obj, {"overridePrevious", "chain"}, where)
    chain = spec.get("chain") or []
    ids = []
    for i, p in enumerate(chain):
        pid = p.get("id") if isinstance(p, dict) else None
        if not isinstance(pid, str) or pid not in CORE_PLUGINS:
            raise SlothError(f"{where}.chain[{i}].id: SLO plugin {pid!r} is not supported (only Sloth's core "
                             f"plugins, whose rules revwatch generates itself)")
        ids.append(pid)
    if spec.get("overridePrevious") and not RULE_PLUGINS <= set(ids):
        raise SlothError(f"{where}.overridePrevious: a chain that replaces Sloth's rule plugins is not supported")


def documents(path: Path) -> list[Any]:
    """The YAML documents of a file; a document that is a list counts as that many documents."""
    try:
        raw = list(yaml.safe_load_all(path.read_text()))
    except FileNotFoundError:
        raise SlothError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        raise SlothError(f"{path}: not valid YAML ({e})") from None
    out = []
    for d in raw:
        if isinstance(d, list):
            out.extend(d)
        elif d is not None:
            out.append(d)
    return out


def is_sloth(doc: Any) -> bool:
    return isinstance(doc, dict) and (doc.get("version") == PROM_V1 or
                                      (doc.get("kind") == "PrometheusServiceLevel"))


def load_sloth(path: str | Path, period: str = "30d") -> list[SloConfig]:
    """Every SLO of a Sloth file (all documents), as revwatch SLOs with a `prometheus` SLI."""
    path = Path(path)
    out: list[SloConfig] = []
    for i, doc in enumerate(documents(path)):
        out.extend(sloth_document(doc, f"{path}: document {i + 1}", period))
    if not out:
        raise SlothError(f"{path}: no Sloth SLO in the file")
    return out


def sloth_document(doc: Any, where: str, period: str = "30d") -> list[SloConfig]:
    """The SLOs of one Sloth document (prometheus/v1 or PrometheusServiceLevel)."""
    if not isinstance(doc, dict):
        raise SlothError(f"{where}: a Sloth document must be a mapping")
    if str(doc.get("apiVersion", "")).startswith("openslo/"):
        raise SlothError(f"{where}: apiVersion: {doc['apiVersion']} is not a Sloth spec (OpenSLO v1 files go under "
                         f"openslo_files; the pre-1.0 openslo/v1alpha format Sloth reads is not supported)")
    if doc.get("kind") == "PrometheusServiceLevel" or "apiVersion" in doc:
        top = _strict(doc, {"apiVersion", "kind", "metadata", "spec", "status"}, where)
        if top.get("apiVersion") != K8S_API or top.get("kind") != "PrometheusServiceLevel":
            raise SlothError(f"{where}: apiVersion/kind: expected {K8S_API} PrometheusServiceLevel, got "
                             f"{top.get('apiVersion')!r} {top.get('kind')!r}")
        spec, f, swhere, origin = top.get("spec"), _fields("k8s"), f"{where}: spec", K8S_API
    else:
        if doc.get("version") != PROM_V1:
            raise SlothError(f"{where}: version: must be {PROM_V1!r}, got {doc.get('version')!r}")
        spec, f, swhere, origin = ({k: v for k, v in doc.items() if k != "version"}, _fields("prom"), f"{where}: ",
                                   PROM_V1)
    fs = f["spec"]
    spec = _strict(spec, set(fs.values()), swhere)
    service = spec.get(fs["service"])
    if not isinstance(service, str) or not service:
        raise SlothError(f"{_at(swhere, fs['service'])}: required")
    if spec.get(fs["plugins"]) is not None:
        _plugins(spec[fs["plugins"]], _at(swhere, fs['plugins']))
    svc_labels = _str_map(spec.get(fs["labels"]), _at(swhere, fs['labels']))
    slos = spec.get(fs["slos"]) or []
    if not isinstance(slos, list) or not slos:
        raise SlothError(f"{_at(swhere, fs['slos'])}: at least one SLO is required")
    return [_slo(s, f, f"{_at(swhere, fs['slos'])}[{k}]", service, svc_labels, period, origin)
            for k, s in enumerate(slos)]


def _slo(s: Any, f: dict, where: str, service: str, svc_labels: dict, period: str, origin: str) -> SloConfig:
    fo = f["slo"]
    s = _strict(s, set(fo.values()), where)
    name = s.get("name")
    if not isinstance(name, str) or not name:
        raise SlothError(f"{where}.name: required")
    if s.get("plugins") is not None:
        _plugins(s["plugins"], f"{where}.plugins")
    objective = s.get("objective")
    if isinstance(objective, bool) or not isinstance(objective, (int, float)) or not 0 < objective < 100:
        raise SlothError(f"{where}.objective: must be a percentage in (0, 100), got {objective!r}")
    sli = _strict(s.get("sli"), {"events", "raw", "plugin"}, f"{where}.sli")
    if "plugin" in sli:
        raise SlothError(f"{where}.sli.plugin: SLI plugins are not supported (write the query as sli.events or "
                         f"sli.raw)")
    if ("events" in sli) == ("raw" in sli):
        raise SlothError(f"{where}.sli: exactly one of events or raw is required")
    if "events" in sli:
        ev = _strict(sli["events"], set(f["events"].values()), f"{where}.sli.events")
        q = {"error_query": ev.get(f["events"]["error"]), "total_query": ev.get(f["events"]["total"])}
    else:
        raw = _strict(sli["raw"], set(f["raw"].values()), f"{where}.sli.raw")
        q = {"error_ratio_query": raw.get(f["raw"]["ratio"])}
    for k, v in q.items():
        if not isinstance(v, str) or not v.strip():
            raise SlothError(f"{where}.sli: {k} is required")
        if "{{" in WINDOW_VAR.sub("", v):
            raise SlothError(f"{where}.sli: {k}: only the {{{{.window}}}} template variable is supported")
    fa = f["alerting"]
    al = _strict(s.get("alerting"), set(fa.values()), f"{where}.alerting")
    metas = {}
    for sev in ("page", "ticket"):
        m = _strict(al.get(fa[sev]), {"disable", "labels", "annotations"}, f"{where}.alerting.{fa[sev]}")
        if not isinstance(m.get("disable", False), bool):
            raise SlothError(f"{where}.alerting.{fa[sev]}.disable: must be true or false")
        metas[sev] = {"disable": m.get("disable", False),
                      "labels": _str_map(m.get("labels"), f"{where}.alerting.{fa[sev]}.labels"),
                      "annotations": _str_map(m.get("annotations"), f"{where}.alerting.{fa[sev]}.annotations")}
    if not (metas["page"]["disable"] and metas["ticket"]["disable"]) and not al.get("name"):
        raise SlothError(f"{where}.alerting.name: required when an alert is enabled")
    raw_cfg = {
        "name": f"{service}-{name}", "service": service, "import_spec": origin, "objective": objective / 100,
        "window": period,
        "description": s.get("description") or "",
        "labels": {**svc_labels, **_str_map(s.get("labels"), f"{where}.labels")},
        "sli": {"kind": "prometheus", **q},
        "alerting": {"name": al.get("name"), "labels": _str_map(al.get("labels"), f"{where}.alerting.labels"),
                     "annotations": _str_map(al.get("annotations"), f"{where}.alerting.annotations"),
                     "page_alert": metas["page"], "ticket_alert": metas["ticket"]},
    }
    try:
        return SloConfig.model_validate(raw_cfg)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise SlothError(f"{where}: {loc}: {first['msg'].removeprefix('Value error, ')}") from None
