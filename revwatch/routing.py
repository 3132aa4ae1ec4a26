"""The app's route table as the error handlers and the OpenAPI document both see it.

Core (below the composition root): `revwatch.api`'s 405 handler needs `allowed_methods` at request time, and
`revwatch.openapi` (composition root) builds the document from the same `api_routes`, so both read one definition.
"""
from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from fastapi.routing import APIRoute
from starlette.routing import Match


def api_routes(routes) -> list[APIRoute]:
    """The app's APIRoutes, also inside included routers (newer FastAPI keeps them wrapped, unprefixed here)."""
    found: list[APIRoute] = []
    for r in routes:
        if isinstance(r, APIRoute):
            found.append(r)
        elif hasattr(r, "original_router"):
            found += api_routes(r.original_router.routes)
    return found


def allowed_methods(app, scope: MutableMapping[str, Any]) -> list[str]:
    """Every method some route serves at the request's path (Starlette's 405 names only the first route's). A
    literal route wins over a templated one that also matches (`/api/v1/anomalies/scan` is not a finding id), as
    the OpenAPI document lists them."""
    matching = [r for r in api_routes(app.routes)
                if r.methods and r.matches({**scope, "method": next(iter(r.methods))})[0] == Match.FULL]
    literal = [r for r in matching if "{" not in r.path]
    methods: set[str] = set()
    for r in literal or matching:
        methods |= r.methods or set()
    return sorted(methods)
