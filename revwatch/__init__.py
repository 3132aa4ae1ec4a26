"""revwatch: revwatch package."""
