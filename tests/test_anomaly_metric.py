"""The causal metric detector, NAB scoring (hand-computed cases and a real NAB series), and
`revwatch anomaly series` offline."""
import csv
import json

import numpy as np
import pytest

from anomaly.metric import StreamDetector, score_series
from anomaly.nab import LabelledFile, probation, read_series, score_corpus, window_rows
from tests.support.servers import FIXTURES, revwatch_cmd

NAB = FIXTURES / "nab"
SERIES = NAB / "ec2_request_latency_system_failure.csv"


def one_file(scores, windows):
    return [LabelledFile("f", np.array(scores, dtype=float), windows)]


def test_nab_scoring_by_hand():
    n, window = 1000, (500, 599)
    assert probation(n) == 150 and probation(100_000) == 750
    zeros = np.zeros(n)
    assert score_corpus(one_file(zeros, [window]))["standard"]["score"] == 0            # null detector
    early = zeros.copy()
    early[500] = 1
    assert score_corpus(one_file(early, [window]))["standard"]["score"] == 100          # first row of the window
    late = zeros.copy()
    late[599] = 1                  # last row: y = -1/100; 2·sigmoid(0.05) - 1 = 0.024995, / 0.986614 = 0.025334
    assert score_corpus(one_file(late, [window]))["standard"]["score"] == pytest.approx(100 * 1.025334 / 2, abs=0.01)
    fp_first = early.copy()
    fp_first[300] = 1              # before any window: -1 · fpWeight
    res = score_corpus(one_file(fp_first, [window]))
    assert res["standard"]["score"] == pytest.approx(100 * (1 - 0.11 + 1) / 2, abs=0.01)
    assert res["reward_low_FP_rate"]["score"] == pytest.approx(100 * (1 - 0.22 + 1) / 2, abs=0.01)
    assert (res["standard"]["tp"], res["standard"]["fp"], res["standard"]["fn"]) == (1, 1, 0)
    just_after = early.copy()
    just_after[600] = 1            # right after the window: distance 1/99 width, 2·sigmoid(-5/99) - 1 = -0.025245
    assert score_corpus(one_file(just_after, [window]))["standard"]["score"] == \
        pytest.approx(100 * (1 - 0.11 * 0.025245 + 1) / 2, abs=0.01)
    in_probation = zeros.copy()
    in_probation[100] = 1          # probationary rows are never scored
    assert score_corpus(one_file(in_probation, [window]))["reward_low_FN_rate"]["score"] == 0
    two_in_window = early.copy()
    two_in_window[550] = 1         # only the first detection in a window counts
    assert score_corpus(one_file(two_in_window, [window]))["standard"]["score"] == 100


def test_detector_is_causal_bounded_and_finds_a_spike():
    rng = np.random.default_rng(3)
    x = 100 + rng.normal(0, 1, 3000)
    x[2000] += 25
    full = score_series(x)
    assert score_series(x[:2100]) == full[:2100]             # a point's score never depends on later points
    assert all(0 <= s <= 1 for s in full)
    assert int(np.argmax(full)) == 2000 and full[2000] > 0.8
    assert max(full[100:1990]) < full[2000] * 0.8
    assert max(score_series(np.full(500, 7.0))) == 0        # a flat line is never anomalous
    d = StreamDetector()
    assert d.update(float("nan")) == 0 and d.update(1.0) == 0   # a bad value is skipped, not fatal


def test_detector_on_a_real_nab_series():
    windows = json.loads((NAB / "windows.json").read_text())
    ts, values = read_series(SERIES)
    rows = window_rows(ts, next(iter(windows.values())))
    assert len(rows) == 3 and all(a < b for a, b in rows)
    res = score_corpus([LabelledFile("ec2", np.array(score_series(values)), rows)])
    assert res["standard"]["tp"] >= 2 and res["standard"]["score"] > 50, res


def test_cli_series_offline(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00,oops\n")
    flat = tmp_path / "flat.csv"
    flat.write_text("timestamp,value\n" + "".join(f"2024-01-01 00:{i:02d}:00,5\n" for i in range(60)))
    out = tmp_path / "out"
    r = revwatch_cmd("anomaly", "series", str(SERIES), str(flat), "-o", str(out), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert [p["rows"] for p in report] == [4032, 60]
    with open(out / "ec2_request_latency_system_failure.csv") as fh:
        rows = list(csv.DictReader(fh))
    ts, values = read_series(SERIES)
    assert [r["timestamp"] for r in rows] == ts and [float(r["value"]) for r in rows] == values.tolist()
    assert [float(r["anomaly_score"]) for r in rows] == pytest.approx(score_series(values), abs=1e-6)
    assert all(0 <= float(r["anomaly_score"]) <= 1 for r in rows)
    r = revwatch_cmd("anomaly", "series", str(bad), "-o", str(out))
    assert r.returncode == 2 and "bad.csv:3" in r.stderr and "Traceback" not in r.stderr
    r = revwatch_cmd("anomaly", "series", str(tmp_path / "missing.csv"), "-o", str(out))
    assert r.returncode == 2 and "missing.csv" in r.stderr


def test_online_watch_of_a_configured_series_survives_restart(store, make_config):
    import datetime as dt
    from anomaly.findings import list_findings
    from anomaly.online import MetricWatcher, WatchedSeries
    cfg = make_config({"anomaly": {"metric_interval": "30s", "metric_series": [
        {"name": "orders-queue", "sample": "rabbitmq_queue_messages", "labels": {"queue": "orders"}}]}})
    series = [WatchedSeries(m.name, m.sample, dict(m.labels), m.alarm) for m in cfg.anomaly.metric_series]
    rng = np.random.default_rng(5)
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    values = 40 + rng.normal(0, 2, 1200)
    values[1000] = 400                                          # a backlog

    def put(lo, hi, queue="orders"):
        store.insert("samples", [("rabbitmq_queue_messages", {"queue": queue}, float(values[i]),
                                  t0 + dt.timedelta(minutes=i), "rmq") for i in range(lo, hi)],
                     ["Name", "Labels", "Value", "Timestamp", "Probe"])
    put(0, 600)
    put(0, 600, queue="billing")                                # not watched
    w = MetricWatcher(store, series)
    assert w.run_once() == {"fed": 600, "findings": 0} and w.run_once()["fed"] == 0
    put(600, 1200)
    restarted = MetricWatcher(store, series)                    # picks up where the first one stopped
    res = restarted.run_once()
    assert res["fed"] == 600 and res["findings"] >= 1
    items, _ = list_findings(store, kind="metric")
    hit = [i for i in items if i["details"]["at"].startswith((t0 + dt.timedelta(minutes=1000)).isoformat()[:16])]
    assert hit and hit[0]["details"]["value"] == "400" and "queue=orders" in hit[0]["reasons"][0]
    assert len(items) <= 3                                      # noise does not alarm
    expected = score_series(values)                             # online scores = offline scores
    assert hit[0]["score"] == pytest.approx(expected[1000], abs=1e-4)
