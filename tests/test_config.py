"""Config validation: errors name the file, the key path and the problem; the CLI turns them into exit 2."""
import datetime as dt

import pytest

from revwatch.config import ConfigError, load_config
from tests.support.servers import revwatch_cmd


def write(tmp_path, text):
    p = tmp_path / "rw.yaml"
    p.write_text(text)
    return p


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_names_the_line(tmp_path):
    p = write(tmp_path, "server:\n  port: [1,\n")
    with pytest.raises(ConfigError, match=r"rw\.yaml: line \d+: not valid YAML"):
        load_config(p)


@pytest.mark.parametrize("text, where, what", [
    ("server: {port: 99999}", "server.port", "less than or equal to 65535"),
    ("server: {prot: 1}", "server.prot", "unknown key"),
    ("slos:\n - {name: a, objective: 1.5, sli: {kind: span_ratio, bad_when: {StatusCode: Error}}}",
     "slos['a'].objective", "1.5 is not a ratio; use a ratio such as 0.995"),
    ("slos:\n - {name: a, objective: 0.9, sli: {kind: journey_latency}}", "slos['a'].sli", "needs 'threshold'"),
    ("slos:\n - {name: a, objective: 0.9, journey: nope, sli: {kind: journey_latency, threshold: 5m}}",
     "slos['a'].journey", "unknown journey 'nope'"),
    ("slos:\n - {name: a, objective: 0.9, window: 5x, sli: {kind: span_ratio, bad_when: {StatusCode: Error}}}",
     "slos['a'].window", "invalid duration"),
    ("spool: {max_bytes: lots}", "spool.max_bytes", "invalid size"),
    ("store: {dsn: 'mysql://x'}", "store.dsn", "must start with chdb://"),
])
def test_errors_name_file_keypath_and_problem(tmp_path, text, where, what):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert msg.startswith(str(p)), msg
    assert where in msg and what in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize("objective, words", [
    (99.5, "99.5 looks like a percentage; use a ratio such as 0.995"),
    (100, "100 leaves no error budget; use a ratio below 1 such as 0.999"),
    (0, "0 is not a ratio; use a ratio such as 0.995"),
])
def test_objective_errors_name_the_slo_and_the_fix(tmp_path, objective, words):
    p = write(tmp_path, "slos:\n - {name: ok, objective: 0.9, sli: {kind: span_ratio, bad_when: {StatusCode: Error}}}\n"
                        f" - {{name: pay, objective: {objective}, "
                        "sli: {kind: span_ratio, bad_when: {StatusCode: Error}}}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(e.value).startswith(f"{p}: slos['pay'].objective: {words}"), str(e.value)


def test_cross_checks_name_the_slo(tmp_path):
    p = write(tmp_path, "slos:\n - {name: pay, objective: 0.9, sli: {kind: journey_latency, threshold: 5m}}\n")
    with pytest.raises(ConfigError, match=r"slos\['pay'\]\.journey: required for sli kind journey_latency"):
        load_config(p)


def test_values_parse_and_env_overrides(tmp_path, monkeypatch):
    p = write(tmp_path, """
journeys: {p2p: {start: payment.settled, end: payment.posted}}
slos:
  - {name: pp, journey: p2p, objective: 0.995, window: 28d, sli: {kind: journey_latency, threshold: 15m}}
spool: {max_bytes: 2GiB}
""")
    monkeypatch.setenv("REVWATCH_STORE_DSN", "http://u:secret@db:8123")
    monkeypatch.setenv("REVWATCH_PORT", "9999")
    cfg = load_config(p)
    assert cfg.slos[0].sli.threshold == dt.timedelta(minutes=15)
    assert cfg.spool.max_bytes == 2 * 1024**3
    assert cfg.store_dsn == "http://u:secret@db:8123"
    assert cfg.server.port == 9999
    assert cfg.slos[0].alerting.page is None    # tiers from the period's alert-window catalogue (slo/windows.py)


def test_example_config_is_valid(tmp_path):
    from pathlib import Path
    import revwatch
    cfg = load_config(Path(revwatch.__file__).with_name("example-config.yaml"))
    assert {s.name for s in cfg.slos} >= {"payment-posting-15m", "odoo-api-errors"}


def test_cli_bad_config_is_one_line_exit_2(tmp_path):
    r = revwatch_cmd("serve", "--config", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "config file not found" in r.stderr
    p = write(tmp_path, "server: {port: nope}")
    r = revwatch_cmd("slo", "status", "--config", str(p))
    assert r.returncode == 2 and "server.port" in r.stderr and "Traceback" not in r.stderr


def test_cli_bad_usage_exit_2():
    r = revwatch_cmd("keys", "create", "--scope", "superuser")
    assert r.returncode == 2 and "scope must be one of" in r.stderr


def test_init_writes_a_loadable_config(tmp_path):
    target = tmp_path / "new.yaml"
    r = revwatch_cmd("init", str(target))
    assert r.returncode == 0, r.stderr
    assert load_config(target).journeys
    assert revwatch_cmd("init", str(target)).returncode == 2          # no silent overwrite


@pytest.mark.parametrize("args", [("slo", "status"), ("serve",), ("keys", "list"), ("trace", "x"),
                                  ("journeys", "search"), ("slo", "rules", "-o", "rules"), ("simulate",)])
def test_without_a_config_commands_exit_2_naming_what_was_looked_for(tmp_path, args):
    env = {"REVWATCH_CONFIG": "", "REVWATCH_DATA_DIR": "", "REVWATCH_STORE_DSN": "", "REVWATCH_INGEST_KEY": "k"}
    r = revwatch_cmd(*args, env=env, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and "no config" in line and "revwatch.yaml" in line and " init`" in line
    assert list(tmp_path.iterdir()) == []                          # no stray ./.revwatch, nothing written
