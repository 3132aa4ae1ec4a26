"""What the ingest benchmarks share: a throw-away `revwatch serve` in a subprocess on its own embedded store."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
RW = [sys.executable, "-m", "revwatch"]


def write_config(tmp: Path, port: int, extra: str = "", server_extra: str = "") -> Path:
    """A config on `tmp` (store, spool) listening on `port`; `extra` YAML appended."""
    cfg = tmp / "rw.yaml"
    cfg.write_text(f"store: {{dsn: 'chdb://{tmp}/data'}}\nserver: {{port: {port}{server_extra}}}\n"
                   f"spool: {{dir: '{tmp}/spool', max_bytes: 8GiB}}\nevaluator: {{enabled: false}}\n{extra}")
    return cfg


def create_key(cfg: Path, scope: str) -> str:
    """A new API key of `scope` (the store is opened directly: no server may hold it yet)."""
    return subprocess.run(RW + ["keys", "create", "--scope", scope, "--config", str(cfg)], capture_output=True,
                          text=True, check=True, cwd=ROOT).stdout.split()[-1]


def start_server(cfg: Path, base: str) -> subprocess.Popen:
    """Start `revwatch serve` and wait until /healthz answers."""
    p = subprocess.Popen(RW + ["serve", "--config", str(cfg)], cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return p
        except httpx.HTTPError:
            time.sleep(0.1)
    p.kill()
    raise SystemExit("server did not start")
