"""revwatch: anomaly package."""
