"""revwatch: probes package."""
