"""Alertmanager webhook receiver, business-impact enrichment, routing to on-call notifiers."""
