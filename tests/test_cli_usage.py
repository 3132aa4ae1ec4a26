"""The CLI never shows a traceback: every command's --help works, and wrong invocations and bad configs give
exit 2 with one line on stderr (naming the file, key path and problem for configs)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import typer

from revwatch.cli import app, main


def _is_group(cmd) -> bool:
    return hasattr(cmd, "commands")


def _command_paths() -> list[list[str]]:
    """Every command and group of the CLI, as argv prefixes."""
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(cmd, prefix):
        paths.append(prefix)
        if _is_group(cmd):
            for name, sub in cmd.commands.items():
                walk(sub, prefix + [name])
    walk(root, [])
    return paths


def run(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    cap = capsys.readouterr()
    return e.value.code, cap.out, cap.err


COMMANDS = _command_paths()


def test_the_cli_has_the_documented_commands():
    names = {" ".join(p) for p in COMMANDS}
    for expected in ("serve", "init", "demo", "simulate", "trace", "keys create", "keys list", "keys revoke",
                     "slo status", "slo rules", "anomaly scan", "probes run", "dashboards export",
                     "journeys search"):
        assert expected in names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "revwatch")
def test_every_help_works(path, capsys):
    code, out, err = run(path + ["--help"], capsys)
    assert code == 0, err
    assert "Usage" in out and "Traceback" not in out + err


WRONG = [
    ["nope"],
    ["slo", "nope"],
    ["keys", "create"],                              # missing --scope
    ["keys", "create", "--scope", "root"],
    ["keys", "revoke"],
    ["trace"],
    ["slo", "status", "--at", "yesterday"],
    ["slo", "status", "--bogus"],
    ["slo", "rules"],                                # missing -o
    ["serve", "--log-format", "xml"],
    ["serve", "--port"],
    ["demo", "--days", "0"],
    ["demo", "--port", "http"],
    ["simulate", "--key", "k", "--fault", "bogus", "--url", "http://127.0.0.1:9"],
    ["simulate", "--key", "k", "--rate", "-1"],
    ["anomaly", "scan", "--limit", "0"],
    ["journeys", "search", "--since", "last week"],
    ["journeys", "search", "--attr", "no-colon"],
    ["slo", "status", "--config", "/nonexistent/revwatch.yaml"],
]


@pytest.mark.parametrize("argv", WRONG, ids=" ".join)
def test_wrong_invocations_exit_2_with_one_line(argv, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2, (code, out, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("revwatch: "), err
    assert "Traceback" not in out + err


def test_no_command_shows_help_and_exits_2(capsys):
    code, out, err = run([], capsys)
    assert code == 2 and "Usage" in out + err and "Traceback" not in out + err


# Arguments that get each command past its own option checks, so that it reads the config.
NEEDS = {("keys", "create"): ["--scope", "read"], ("keys", "revoke"): ["deadbeef"], ("slo", "rules"): ["-o", "x"],
         ("trace",): ["pay_1"], ("simulate",): ["--key", "k"], ("journeys", "search"): ["--journey", "j"],
         ("dashboards", "export"): ["-o", "x"], ("anomaly", "ack"): ["f_1"], ("anomaly", "series"): ["x.csv"],
         ("deadletters", "show"): ["0123"], ("annotate",): ["deploy 1.2"], ("slo", "forecast"): ["s"],
         ("journeys", "funnel"): ["j"]}


def _takes_config(path) -> bool:
    cmd = typer.main.get_command(app)
    for p in path:
        cmd = cmd.commands[p]
    return not _is_group(cmd) and any("--config" in getattr(p, "opts", []) for p in cmd.params)


CONFIG_COMMANDS = [p for p in COMMANDS if p and _takes_config(p)]


def test_every_data_command_takes_a_config():
    names = {" ".join(p) for p in CONFIG_COMMANDS}
    assert {"serve", "simulate", "slo status", "slo rules", "trace", "keys create", "keys list", "keys revoke",
            "anomaly scan", "probes run", "journeys search"} <= names, names


@pytest.mark.parametrize("path", CONFIG_COMMANDS, ids=" ".join)
def test_bad_config_is_one_line_naming_file_slo_and_fix(path, tmp_path, capsys, monkeypatch):
    bad = tmp_path / "mine.yaml"
    bad.write_text("slos:\n  - name: payment-posting-15m\n    objective: 99.5\n"
                   "    sli: {kind: span_ratio, service: odoo, bad_when: {StatusCode: Error}}\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(path + NEEDS.get(tuple(path), []) + ["--config", str(bad)], capsys)
    assert code == 2, (code, out, err)
    assert err.strip() == (f"revwatch: {bad}: slos['payment-posting-15m'].objective: 99.5 looks like a percentage; "
                           f"use a ratio such as 0.995 (between 0 and 1, exclusive)"), err


def test_default_config_is_revwatch_yaml_in_the_current_directory(tmp_path, capsys, monkeypatch):
    (tmp_path / "revwatch.yaml").write_text("server: {prot: 1}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REVWATCH_CONFIG", raising=False)
    code, _, err = run(["slo", "status"], capsys)
    assert code == 2 and err.strip() == "revwatch: revwatch.yaml: server.prot: unknown key", err
    other = tmp_path / "other.yaml"
    other.write_text("server: {port: 0}\n")
    monkeypatch.setenv("REVWATCH_CONFIG", str(other))        # the environment wins over ./revwatch.yaml
    code, _, err = run(["keys", "list"], capsys)
    assert code == 2 and err.startswith(f"revwatch: {other}: server.port: "), err


def test_openslo_problems_are_config_errors(tmp_path, capsys):
    cfg = tmp_path / "rw.yaml"
    cfg.write_text(f"openslo_files: [{tmp_path / 'missing.yaml'}]\n")
    code, _, err = run(["serve", "--config", str(cfg)], capsys)
    assert code == 2 and "missing.yaml: file not found" in err and len(err.strip().splitlines()) == 1


def _rw(*args, env=None, cwd=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "revwatch.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout)


def test_serve_on_a_port_in_use_says_so_before_touching_the_store(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = _rw("serve", env={"REVWATCH_PORT": str(port), "REVWATCH_DATA_DIR": str(tmp_path / "d")}, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip() == (f"revwatch: port {port} on 127.0.0.1 is already in use (another revwatch serve?); "
                                f"stop it or set server.port in the config / REVWATCH_PORT"), r.stderr
    assert "listening" not in r.stdout + r.stderr
    assert not (tmp_path / "d" / "data").exists()          # no migrations ran


def test_unreachable_store_is_one_clean_line(tmp_path):
    with socket.socket() as s:                              # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = _rw("keys", "list", env={"REVWATCH_STORE_DSN": f"http://127.0.0.1:{port}"}, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip() == f"revwatch: cannot reach ClickHouse at 127.0.0.1:{port} (connection refused)", r.stderr


def test_ctrl_c_is_a_one_line_goodbye(tmp_path):
    import signal
    import time
    p = subprocess.Popen([sys.executable, "-m", "revwatch", "demo", "--data-dir", str(tmp_path / "demo"), "--port",
                          str(_free_port())], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 90
        line = ""
        while time.time() < deadline and "incident 2" not in line:
            line = p.stdout.readline()
        assert "incident 2" in line
        time.sleep(1)                       # a real `revwatch demo` process mid-run (past its set-up) gets Ctrl-C
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130
    assert err.strip().splitlines() == ["revwatch: interrupted (Ctrl-C); bye"], err
    assert "Traceback" not in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("probe, message", [
    ("{name: x, type: bogus, url: 'http://x'}", "probe x: unknown type 'bogus' (one of http, odoo, rabbitmq, redis)"),
    ("{name: x, type: http, url: 'http://x', timeot: 5s}", "probe x: timeot: unknown key")])
def test_a_bad_probe_is_a_config_error_of_every_command(tmp_path, capsys, probe, message):
    """Probe settings are checked at the config boundary (no connection made): `serve` never gets to build the
    probes and fail with a traceback."""
    cfg = tmp_path / "rw.yaml"
    cfg.write_text(f"probes:\n  - {probe}\n")
    for command in (["serve"], ["slo", "status"], ["probes", "run", "--once"]):
        code, _, err = run(command + ["--config", str(cfg)], capsys)
        assert code == 2 and err.strip() == f"revwatch: {cfg}: {message}", (command, err)
