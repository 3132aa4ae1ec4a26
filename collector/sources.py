"""Named event sources (placeholder while being built)."""
from __future__ import annotations


class SourceRegistry:
    def type_of(self, source: str, name: str) -> str | None:
        return None
