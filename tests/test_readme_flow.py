"""The README's "Running it yourself" works verbatim from an empty directory: init (config + three keys), serve,
simulate, slo status through the running server, journeys search, trace, rules, dashboards, and a clean stop."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
RW = str(Path(sys.executable).with_name("revwatch"))


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Running it yourself"):]
    section = section[:section.index("\n## ", 5)]
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        for line in block.splitlines():
            cmd = line.split("  #")[0].strip()
            if cmd:
                cmds.append(cmd)
    return cmds


def test_running_it_yourself_verbatim(tmp_path):
    cmds = readme_commands()
    assert cmds[0] == ".venv/bin/revwatch init" and cmds[1] == ".venv/bin/revwatch serve &" and cmds[-1] == "kill %1"
    port = free_port()        # the documented REVWATCH_PORT override, so the test never meets a running demo
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVWATCH_")}
    env["REVWATCH_PORT"] = str(port)

    def run(cmd: str, **kw) -> subprocess.CompletedProcess:
        argv = cmd.split()
        assert argv[0] == ".venv/bin/revwatch", cmd
        r = subprocess.run([RW, *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, **kw)
        assert "Traceback" not in r.stdout + r.stderr, r.stderr
        assert r.returncode == 0, (cmd, r.stdout[-500:], r.stderr[-500:])
        return r

    init = run(cmds[0])
    exports = dict(re.findall(r"^\s*export (REVWATCH_\w+_KEY)=(\S+)$", init.stdout, re.M))
    assert set(exports) == {"REVWATCH_INGEST_KEY", "REVWATCH_READ_KEY", "REVWATCH_ADMIN_KEY"}, init.stdout
    assert (tmp_path / "revwatch.yaml").is_file()
    env.update(exports)
    server = subprocess.Popen([RW, "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise AssertionError("server did not start")
        ids: list[str] = []
        for cmd in cmds[2:-1]:
            if "CORRELATION_ID" in cmd:
                assert ids, "journeys search listed no IDs"
                cmd = cmd.replace("CORRELATION_ID", ids[0])
            r = run(cmd)
            if cmd.endswith("simulate --days 1"):
                assert re.search(r"sent [\d,]{4,} new events", r.stdout), r.stdout
            if cmd.endswith("slo status"):
                assert "payment-posting-15m" in r.stdout and "using its API" in r.stderr
            if " journeys search " in cmd:
                ids = re.findall(r"^(pay_[\w-]+)\s", r.stdout, re.M)
            if " trace " in cmd:
                assert f"correlation ID {ids[0]}" in r.stdout and "timeline" in r.stdout
        assert sorted(p.name for p in (tmp_path / "rules").iterdir())[0].startswith("revwatch-slo-")
        assert (tmp_path / "grafana" / "dashboards" / "executive-slo.json").is_file()
        stuck = subprocess.run([RW, "journeys", "search", "--stuck", "payment_to_posting", "--json"], cwd=tmp_path,
                               env=env, capture_output=True, text=True, timeout=60)
        assert stuck.returncode == 0 and isinstance(json.loads(stuck.stdout)["items"], list), stuck.stderr
        keys = subprocess.run([RW, "keys", "list"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert keys.stdout.splitlines()[0].split() == ["ID", "SCOPE", "STATE", "CREATED", "(UTC)", "NAME"]
        assert len(keys.stdout.splitlines()) == 4
    finally:
        server.send_signal(signal.SIGINT)                  # what `kill %1` / Ctrl-C does to the foreground server
        out, _ = server.communicate(timeout=60)
    assert "Traceback" not in out and out.strip().splitlines()[-1] == "revwatch: server stopped", out
