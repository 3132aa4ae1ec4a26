"""The CLI package's shape (one module per command group, one Target, no import cycle), the same answers from
the store and from the server that holds it, and `probes run` with and without `--once`."""
import ast
import inspect
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from revwatch.cli import target as target_mod
from tests.support.servers import ROOT, free_port, revwatch_cmd, wait_healthy

CLI_DIR = ROOT / "revwatch" / "cli"
SHARED = {"app", "target"}                       # what command modules may import from the package


def _imports(path: Path) -> set[str]:
    """Every module a file imports (absolute names; `from revwatch.cli import x` counts as revwatch.cli.x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def test_only_the_package_init_imports_the_command_modules_and_nothing_imports_it_back():
    modules = sorted(p for p in CLI_DIR.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    commands = {p.stem for p in modules} - SHARED
    assert {"serve", "init", "keys", "slo", "trace", "journeys", "anomaly", "probes", "sim", "dashboards"} <= commands
    for p in modules:
        cli_imports = {m for m in _imports(p) if m.startswith("revwatch.cli")}
        assert "revwatch.cli" not in cli_imports, f"{p.name} imports the package (a cycle through __init__)"
        allowed = {f"revwatch.cli.{m}" for m in SHARED if m != p.stem} | {
            f"revwatch.cli.{m}.{name}" for m in SHARED for name in dir(__import__(f"revwatch.cli.{m}", fromlist=["x"]))}
        assert cli_imports <= allowed, f"{p.name} imports {cli_imports - allowed}"
    assert not {m for m in _imports(CLI_DIR / "app.py") if m.startswith("revwatch.cli")}
    for p in ROOT.joinpath("revwatch").rglob("*.py"):        # no module outside the package reaches back into it
        if CLI_DIR not in p.parents and p.name != "__main__.py":
            assert not {m for m in _imports(p) if m == "revwatch.cli" or m.startswith("revwatch.cli.") and
                        m.split(".")[2] not in SHARED}, p


def test_commands_never_branch_on_the_kind_of_target():
    for p in CLI_DIR.glob("*.py"):
        if p.stem in ("target", "__init__", "app"):       # app: main() checks the return code type
            continue
        names = {n.id for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.Name)}
        assert not names & {"LocalTarget", "RemoteTarget", "isinstance"}, p.name
    for cls in (target_mod.LocalTarget, target_mod.RemoteTarget):
        assert not inspect.isabstract(cls), f"{cls.__name__} leaves {cls.__abstractmethods__} unimplemented"


def test_importing_a_command_module_first_works_in_a_fresh_interpreter():
    code = ("import revwatch.cli.anomaly, revwatch.cli.target; from revwatch.cli import app, main; "
            "print(len(app.registered_groups))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0 and r.stdout.strip() == "8", r.stderr


def _config(tmp_path: Path, port: int, probes: str = "") -> Path:
    cfg = tmp_path / "rw.yaml"
    cfg.write_text(f"store: {{dsn: 'chdb://{tmp_path}/data'}}\nspool: {{dir: '{tmp_path}/spool'}}\n"
                   f"server: {{host: 127.0.0.1, port: {port}}}\n{probes}")
    return cfg


def test_local_and_remote_targets_answer_the_same(tmp_path):
    port = free_port()
    cfg = _config(tmp_path, port)
    made = revwatch_cmd("keys", "create", "--scope", "admin", "--name", "first", "--config", str(cfg))
    assert made.returncode == 0, made.stderr
    env = {"REVWATCH_ADMIN_KEY": made.stdout.strip()}
    reads = [("keys", "list", "--json"), ("anomaly", "list", "--json"), ("journeys", "search", "--json"),
             ("slo", "status", "--json", "--at", "2026-01-05T00:00:00Z")]
    local = [revwatch_cmd(*a, "--config", str(cfg)) for a in reads]
    assert all(r.returncode == 0 for r in local), [r.stderr for r in local]
    server = subprocess.Popen([sys.executable, "-m", "revwatch", "serve", "--config", str(cfg)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
        remote = [revwatch_cmd(*a, "--config", str(cfg), env=env) for a in reads]
        for a, lo, rem in zip(reads, local, remote):
            assert rem.returncode == 0 and "using its API" in rem.stderr, (a, rem.stderr)
            assert json.loads(rem.stdout) == json.loads(lo.stdout), a
        gone = revwatch_cmd("keys", "revoke", "nosuchid", "--config", str(cfg), env=env)
        assert gone.returncode == 2 and len(gone.stderr.strip().splitlines()) == 2    # the API line + the error
        no_key = revwatch_cmd("keys", "list", "--config", str(cfg), env={"REVWATCH_ADMIN_KEY": "",
                                                                          "REVWATCH_API_KEY": ""})
        assert no_key.returncode == 2 and "REVWATCH_ADMIN_KEY" in no_key.stderr
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
    gone = revwatch_cmd("keys", "revoke", "nosuchid", "--config", str(cfg))
    assert gone.returncode == 2 and "no key with id 'nosuchid'" in gone.stderr


def _probe_up_rows(cfg: Path) -> int:
    code = ("from revwatch.config import load_config; from revwatch.store import store_from_config; "
            f"s = store_from_config(load_config({str(cfg)!r})); "
            "print(s.query(f\"SELECT count() FROM {s.table('samples')} WHERE Name = 'probe_up'\").rows[0][0])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    return int(r.stdout.strip())


def test_probes_run_once_runs_once_and_without_it_runs_on_the_schedule(tmp_path):
    health = f"http://127.0.0.1:{free_port()}/nothing-listens"     # the probe runs (up); its check fails
    cfg = _config(tmp_path, free_port(), "probes:\n  - {name: web, type: http, url: '" + health +
                  "', interval: 1s, timeout: 2s}\n")
    once = revwatch_cmd("probes", "run", "--once", "--json", "--config", str(cfg))
    assert once.returncode == 0, once.stderr
    (res,) = json.loads(once.stdout)
    assert res["probe"] == "web" and res["up"]
    assert {s["name"]: s["value"] for s in res["samples"]}["http_check_success"] == 0
    assert _probe_up_rows(cfg) == 1                                # exactly one run, written through the intake
    proc = subprocess.Popen([sys.executable, "-m", "revwatch", "probes", "run", "--json", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        lines = [proc.stdout.readline() for _ in range(2)]         # two scheduled runs, one JSON line each
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(30)
    assert [json.loads(ln)["probe"] for ln in lines] == ["web", "web"]
    assert rc == 130 and "on their schedule" in proc.stderr.read()
    assert _probe_up_rows(cfg) >= 3
