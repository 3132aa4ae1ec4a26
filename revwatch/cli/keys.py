"""`revwatch keys create|list|revoke`: API keys, in the store or through the server that holds it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from revwatch.cli.app import ConfigOpt, JsonOpt, app, err, fail, load_cli_config, out
from revwatch.cli.target import open_target

keys_app = typer.Typer(help="Manage API keys (stored hashed).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(scope: str = typer.Option(..., "--scope", help="ingest | read | admin"),
                name: str = typer.Option("", "--name", help="a label to recognise the key by"),
                config: Optional[Path] = ConfigOpt):
    """Create an API key and print it once (only its hash is stored)."""
    from revwatch.auth import SCOPES
    if scope not in SCOPES:
        fail(f"--scope must be one of {', '.join(SCOPES)}")
    token = open_target(load_cli_config(config)).keys_create(scope, name)
    article = "an" if scope[0] in "aeiou" else "a"
    err.print(f"created {article} {scope} key; it is shown only now (the store keeps its hash):", markup=False)
    print(token)


@keys_app.command("list")
def keys_list(config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt):
    """List key ids, scopes and states."""
    keys = open_target(load_cli_config(config)).keys_list()
    if as_json:
        print(json.dumps(keys, default=str))
        return
    if not keys:
        out.print("no keys yet: `revwatch keys create --scope ingest|read|admin` (or `revwatch init`)", markup=False)
        return
    out.print(f"{'ID':8}  {'SCOPE':7}  {'STATE':7}  {'CREATED (UTC)':19}  NAME", markup=False, highlight=False)
    for k in keys:
        created = str(k.get("created_at", ""))[:19].replace("T", " ")
        out.print(f"{k['id']:8}  {k['scope']:7}  {'revoked' if k['revoked'] else 'active':7}  {created:19}  "
                  f"{k['name']}", markup=False, highlight=False)


@keys_app.command("revoke")
def keys_revoke(key_id: str, config: Optional[Path] = ConfigOpt):
    """Revoke a key by its id (the 8 characters after 'rw_')."""
    if not open_target(load_cli_config(config)).keys_revoke(key_id):
        fail(f"no key with id {key_id!r}")
    out.print(f"revoked {key_id}")
