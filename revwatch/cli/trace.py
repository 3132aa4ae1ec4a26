"""`revwatch trace CID`: everything that happened to one correlation ID, as a timeline."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from revwatch.cli.app import ConfigOpt, JsonOpt, app, fail, load_cli_config, out
from revwatch.cli.target import open_target


@app.command()
def trace(correlation_id: str, config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt):
    """Everything that happened to one correlation ID, across systems, as a timeline."""
    doc = open_target(load_cli_config(config)).trace(correlation_id)
    if doc is None:
        fail(f"nothing is recorded for correlation ID {correlation_id!r}", 1)
    if as_json:
        print(json.dumps(doc, default=str))
        return
    from revwatch.report import journey_timeline
    out.print(journey_timeline(doc))
