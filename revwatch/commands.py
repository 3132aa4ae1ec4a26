"""CLI commands of the simulator, demo, probes and anomaly packages, registered on the main typer app."""
from __future__ import annotations
