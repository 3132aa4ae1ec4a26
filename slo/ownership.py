"""Ownership of an SLO: owner, team, service, tier and runbook (docs/slo-policy.md).

The keys are declared on SLOs and on journeys (`revwatch.config.OwnershipFields`); an SLO's unset key falls back to
its journey's, resolved once here so the SLO document, the CLI, the UI, notifications and alert routing all read the
same `Ownership`. Invariant: `Ownership.as_dict()` always carries all five keys (None when unknown), so readers never
guess whether a key was left out or is unknown.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from revwatch.config import JourneyConfig, OwnershipFields

KEYS = ("owner", "team", "service", "tier", "runbook")


@dataclass(frozen=True)
class Ownership:
    owner: str | None = None
    team: str | None = None
    service: str | None = None
    tier: str | None = None
    runbook: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def labels(self) -> dict[str, str]:
        """The keys that are set, as alert labels (routing matches on them; runbook is an annotation)."""
        return {k: v for k, v in self.as_dict().items() if v is not None and k != "runbook"}

    def matches(self, text: str) -> bool:
        """Case-insensitive substring search over owner, team, service and tier (the overview's search box)."""
        needle = text.strip().lower()
        return not needle or any(needle in v.lower() for k, v in self.as_dict().items()
                                 if v is not None and k != "runbook")


def resolve(own: OwnershipFields, journey: JourneyConfig | None = None) -> Ownership:
    """The SLO's (or journey's) own keys, each unset one taken from `journey`."""
    def pick(key: str) -> str | None:
        v = getattr(own, key)
        return v if v is not None or journey is None else getattr(journey, key)
    return Ownership(**{k: pick(k) for k in KEYS})
