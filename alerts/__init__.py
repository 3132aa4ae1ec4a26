"""revwatch: alerts package."""
