"""Correlation-ID and journey extraction (docs/events.md "Traces").

Order: an event's own `correlation_id`; a span attribute from the configured list (`correlation.id`,
`odoo.correlation_id`, `x-correlation-id`, …, resource attributes too); a W3C baggage entry `correlation.id`
(as recorded by a baggage span processor, or a captured `baggage` header); else the trace id.
"""
from __future__ import annotations

from urllib.parse import unquote

_BAGGAGE_ATTRS = ("baggage", "http.request.header.baggage", "w3c.baggage")


def parse_baggage(header: str) -> dict[str, str]:
    """Parse a W3C baggage header value (`k=v;prop, k2=v2`) into a dict; malformed members are skipped."""
    out: dict[str, str] = {}
    text = header.strip()
    if text.startswith("[") and text.endswith("]"):     # captured header attributes are string arrays
        text = text[1:-1].replace('"', "")
    for member in text.split(","):
        kv = member.split(";", 1)[0]
        if "=" not in kv:
            continue
        k, v = kv.split("=", 1)
        if k.strip():
            out[unquote(k.strip())] = unquote(v.strip())
    return out


class CorrelationRules:
    """Configured attribute names for correlation IDs and journeys."""

    def __init__(self, span_attributes: list[str], baggage_keys: list[str], journey_attribute: str = "journey"):
        self.span_attributes = list(span_attributes)
        self.baggage_keys = list(baggage_keys)
        self.journey_attribute = journey_attribute

    @classmethod
    def from_config(cls, cfg) -> "CorrelationRules":
        """Build from `revwatch.config.CorrelationConfig`."""
        return cls(cfg.span_attributes, cfg.baggage_keys, cfg.journey_attribute)

    def from_span(self, span_attrs: dict[str, str], resource_attrs: dict[str, str]) -> str | None:
        """The correlation ID a span carries itself, or None (the caller falls back to the trace id)."""
        for key in self.span_attributes:
            v = span_attrs.get(key) or resource_attrs.get(key)
            if v:
                return v
        for key in self.baggage_keys:                     # baggage entries copied onto the span
            v = span_attrs.get(f"baggage.{key}")
            if v:
                return v
        for attr in _BAGGAGE_ATTRS:
            raw = span_attrs.get(attr)
            if raw:
                bag = parse_baggage(raw)
                for key in self.baggage_keys:
                    if bag.get(key):
                        return bag[key]
        return None

    def journey_of(self, span_attrs: dict[str, str], resource_attrs: dict[str, str]) -> str:
        """The journey a span declares (span attribute, then resource attribute), or ''."""
        return span_attrs.get(self.journey_attribute) or resource_attrs.get(self.journey_attribute) or ""
