"""revwatch: collector package."""
