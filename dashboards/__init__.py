"""Grafana dashboards (JSON + provisioning) and the built-in HTML overview page."""
