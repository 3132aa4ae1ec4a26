"""`revwatch init`: write a commented config and create one key per scope."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Optional

import typer

from revwatch.cli.app import app, cli_path, fail, load_cli_config, out
from revwatch.config import DEFAULT_CONFIG_FILE, Config
from revwatch.store import StoreError, StoreLocked, store_from_config


@app.command()
def init(path: Optional[Path] = typer.Argument(None, help="where to write the config "
                                                         "(default: $REVWATCH_CONFIG, else ./revwatch.yaml)"),
         force: bool = typer.Option(False, "--force", help="overwrite an existing file"),
         keys: bool = typer.Option(True, "--keys/--no-keys", help="create an ingest, a read and an admin key")):
    """Write a commented config and create one key per scope (printed once, with the commands to use them)."""
    path = path or Path(os.environ.get("REVWATCH_CONFIG") or DEFAULT_CONFIG_FILE)
    if path.exists() and not force:
        fail(f"{path} exists (use --force to overwrite it, or `revwatch keys create --scope S` for more keys)")
    if path.parent != Path("") and not path.parent.is_dir():
        fail(f"{path.parent} is not a directory")
    example = resources.files("revwatch").joinpath("example-config.yaml").read_text()
    path.write_text(example)
    cfg = load_cli_config(path, required=False)
    out.print(f"wrote {path} (store: {cfg.store_dsn})", markup=False, highlight=False)
    if keys:
        _print_new_keys(cfg, path)


def _print_new_keys(cfg: Config, config_file: Path) -> None:
    """Create an ingest, a read and an admin key in the config's store and print them once, with their use."""
    from revwatch.auth import KeyStore
    try:
        store = store_from_config(cfg)
    except StoreLocked:
        fail("the store is held by a running server; create keys with `revwatch keys create --scope S` "
             "and REVWATCH_ADMIN_KEY", 1)
    except StoreError as e:
        fail(str(e), 1)
    ks = KeyStore(store)
    made = {scope: ks.create(scope, f"{scope} (revwatch init)")[0] for scope in ("ingest", "read", "admin")}
    rw = cli_path()
    cfg_arg = "" if config_file.resolve() == Path(DEFAULT_CONFIG_FILE).resolve() else f" --config {config_file}"
    base = f"http://{cfg.server.host}:{cfg.server.port}"
    out.print(f"""created an ingest, a read and an admin key; they are shown only now (the store keeps their hashes):
  ingest  {made['ingest']}   send events and traces
  read    {made['read']}   SLO status, journeys, /metrics
  admin   {made['admin']}   keys, anomaly scans (and everything else)

use them:
  export REVWATCH_INGEST_KEY={made['ingest']}
  export REVWATCH_READ_KEY={made['read']}
  export REVWATCH_ADMIN_KEY={made['admin']}
  {rw} serve{cfg_arg}                      # {base}
  {rw} simulate{cfg_arg} --days 1          # a simulated business, sent with the ingest key
  {rw} slo status{cfg_arg}                 # goes through the server while it runs (read key)
  curl -H "Authorization: Bearer $REVWATCH_READ_KEY" {base}/api/v1/slos""", markup=False, highlight=False)
