"""revwatch: slo package."""
