"""`revwatch simulate` as a user runs it (issue #26): a second run on the same store adds new data (ids unique per
run), repeating a run on purpose (`--seed` and `--end`) is recognised as duplicates, ids reused for other content
are refused and reported in one line with exit 1, nothing is written unless asked, and a server that is not there
is named as such."""
from __future__ import annotations

import re

from typer.testing import CliRunner

from revwatch.cli.app import app as cli
from tests.support.servers import free_port, live_server

SMALL = ["--days", "0.05", "--rate", "240", "--customers", "20"]


def _sim(base: str, key: str, *args: str):
    return CliRunner().invoke(cli, ["simulate", "--url", base, "--key", key, *SMALL, *args])


def _sent(text: str) -> tuple[int, int]:
    m = re.search(r"sent ([\d,]+) new events \(([\d,]+) duplicates recognised\)", text)
    assert m, text
    return int(m[1].replace(",", "")), int(m[2].replace(",", ""))


def test_runs_repeat_and_conflicts(api_factory, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    api = api_factory()
    key = api.keys["ingest"]
    with live_server(api.client.app) as base:
        first = _sim(base, key)
        assert first.exit_code == 0, first.output
        new1, dup1 = _sent(first.stdout)
        assert new1 > 50 and dup1 == 0
        m = re.search(r"--seed (\d+) --end (\S+) repeats this run", first.stderr)
        assert m, first.stderr
        seed, end = m[1], m[2].rstrip(")")

        second = _sim(base, key)                       # another run on the same store: new ids, all taken
        assert second.exit_code == 0, second.output
        new2, dup2 = _sent(second.stdout)
        assert new2 > 50 and dup2 == 0

        again = _sim(base, key, "--seed", seed, "--end", end)     # the first run repeated on purpose
        assert again.exit_code == 0, again.output
        assert _sent(again.stdout) == (0, new1)

        other = CliRunner().invoke(cli, ["simulate", "--url", base, "--key", key, "--days", "0.05", "--rate", "90",
                                         "--customers", "20", "--seed", seed, "--end", end])
        assert other.exit_code == 1, other.output                 # same ids, other content: refused, said once
        lines = [ln for ln in other.stderr.splitlines() if ln.startswith("revwatch:")]
        assert len(lines) == 1 and re.search(r"refused [\d,]+ conflicts", lines[0]), other.stderr
        assert "Traceback" not in other.output and "{" not in lines[0]
    assert list(cwd.iterdir()) == []                              # no truth file, no data dir unless asked


def test_truth_only_when_asked_and_a_missing_server_is_named(api_factory, tmp_path):
    api = api_factory()
    with live_server(api.client.app) as base:
        r = _sim(base, api.keys["ingest"], "--truth", str(tmp_path / "t.jsonl"), "--fault",
                 "posting_delay@day1+0h/1h")
        assert r.exit_code == 0, r.output
    assert (tmp_path / "t.jsonl").read_text().count("\n") >= 1 and "faulted items in" in r.stdout
    down = CliRunner().invoke(cli, ["simulate", "--url", f"http://127.0.0.1:{free_port()}", "--key", "rw_x_y", *SMALL])
    assert down.exit_code == 1
    assert down.stderr.strip().count("\n") == 0 and "is `revwatch serve` running" in down.stderr, down.stderr
