"""The causal metric detector, NAB scoring (hand-computed cases and a real NAB series), and
`revwatch anomaly series` offline."""
import csv
import datetime as dt
import gzip
import json
import math

import numpy as np
import pytest

from anomaly.discord import estimate_window
from anomaly.metric import DISCORD_PREFIX, DetectorParams, StreamDetector, score_series, to_seconds
from anomaly.nab import LabelledFile, probation, read_series, score_corpus, window_rows
from tests.support.servers import FIXTURES, revwatch_cmd

NAB = FIXTURES / "nab"
SERIES = NAB / "ec2_request_latency_system_failure.csv"
ALARM = 0.8                                          # the online watcher's default alarm level


def one_file(scores, windows):
    return [LabelledFile("f", np.array(scores, dtype=float), windows)]


def test_nab_scoring_reproduces_nabs_published_results():
    """NAB's own scorer on a published detector's result files: contextOSE's anomaly scores for the 58 files
    (numenta/NAB results/contextOSE, fixture nab/official) scored here give NAB's results/final_results.json for all
    three profiles — the scorer is NAB's, not only its description. (Checked the same way on numenta, ARTime, knncad,
    windowedGaussian, relativeEntropy and randomCutForest: equal to 0.01, except where NAB's threshold optimiser, a
    local search, stops short of the best threshold — the exact sweep here then scores a little higher, never
    lower.)"""
    meta = json.loads((NAB / "official" / "contextOSE.json").read_text())
    with gzip.open(NAB / "official" / "contextOSE_scores.txt.gz", "rt") as fh:
        scores = np.array([float(line) for line in fh])
    files, start = [], 0
    for f in meta["files"]:
        files.append(LabelledFile(f["name"], scores[start:start + f["rows"]], [tuple(w) for w in f["windows"]]))
        start += f["rows"]
    assert start == len(scores) and len(files) == 58 and sum(len(f.windows) for f in files) == 116
    ours = score_corpus(files)
    for profile, published in meta["expected"].items():
        assert ours[profile]["score"] == pytest.approx(published, abs=0.01), profile


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


def test_nab_score_at_a_given_threshold_is_the_held_out_score():
    """A threshold chosen elsewhere (the other half of the corpus) is applied as given, not re-chosen: the split-half
    held-out scores of bench/anomaly_eval.py --cross."""
    n, window = 1000, (500, 599)
    s = np.zeros(n)
    s[300], s[500] = 0.5, 0.9      # a false alarm at 0.5 before the window, the window detected at 0.9
    best = score_corpus(one_file(s, [window]))["standard"]
    assert best["score"] == 100 and best["threshold"] == 0.9
    low = score_corpus(one_file(s, [window]), {"standard": 0.5})["standard"]
    assert (low["tp"], low["fp"], low["threshold"]) == (1, 1, 0.5)
    assert low["score"] == pytest.approx(100 * (1 - 0.11 + 1) / 2, abs=0.01)
    high = score_corpus(one_file(s, [window]), {"standard": 0.95})["standard"]
    assert (high["score"], high["tp"], high["fn"]) == (0, 0, 1)
    assert score_corpus(one_file(s, [window]), {"standard": 0.5})["reward_low_FP_rate"]["score"] == 100


def test_nab_threshold_sweep_is_exact():
    """Regression: the sweep once tried 4,000 score quantiles only and could miss the best threshold (0.8 points
    on NAB); NAB's sweeper tries every distinct score."""
    rng = np.random.default_rng(7)
    n, window = 12000, (11000, 11099)
    scores = rng.uniform(0, 0.9, n)                  # ~11,000 distinct scores below the window's detection
    scores[window[0]:] = 0
    scores[window[0]] = 0.9001                       # detected at the window's first row: worth exactly tpWeight
    scores[[1000, 2000, 3000]] = [0.95, 0.96, 0.99]  # three false positives before the window: −fpWeight each
    res = score_corpus(one_file(scores, [window]))["standard"]
    assert res["threshold"] == 0.9001 and (res["tp"], res["fp"], res["fn"]) == (1, 3, 0)
    assert res["score"] == pytest.approx(100 * (1 - 3 * 0.11 + 1) / 2, abs=1e-9)


def test_nab_one_threshold_over_the_corpus():
    """The threshold is chosen once for all files: here detecting file b's window (score 0.6) would also fire file
    a's four false positives at 0.7, which costs less than the window is worth: both windows are found."""
    n = 1000
    a = np.zeros(n)
    a[500] = 0.9                                     # window (500, 599) at its first row
    a[[200, 250, 300, 350]] = 0.7                    # before any window: −0.11 each
    b = np.zeros(n)
    b[550] = 0.6                                     # window (500, 599), y = −0.5: 0.848283 / 0.986614 = 0.859793
    files = [LabelledFile("a", a, [(500, 599)]), LabelledFile("b", b, [(500, 599)])]
    res = score_corpus(files)["standard"]
    assert res["threshold"] == 0.6 and (res["tp"], res["fp"], res["fn"]) == (2, 4, 0)
    assert res["score"] == pytest.approx(100 * (1 + 0.859793 - 0.44 + 2) / 4, abs=0.01)


def noise(seed: int, n: int = 5000) -> np.ndarray:
    return 100 + np.random.default_rng(seed).normal(0, 1, n)


def minutes(n: int, step: int = 5) -> list[dt.datetime]:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    return [t0 + dt.timedelta(minutes=step * i) for i in range(n)]


def test_detector_finds_a_spike_and_a_level_shift_at_once():
    x = noise(3, 3000)
    x[2000] += 25
    s = score_series(x)
    assert all(0 <= v <= 1 for v in s) and s[2000] > 0.999          # beyond the range seen so far
    assert max(s[:2000]) < ALARM and max(s[2001:2400]) < ALARM     # one point, one alarm
    y = noise(4, 3000)
    y[2000:] += 4                                                   # a lasting shift of 4 standard deviations
    s = score_series(y)
    first = next(i for i, v in enumerate(s) if v >= ALARM)
    assert 2000 <= first <= 2010 and max(s[:2000]) < ALARM


def test_noise_alarms_only_on_far_out_values():
    """On Gaussian noise the shift never alarms; a new extreme alarms only when it is itself ≥ 4 standard deviations
    out (about one in 16,000 points), not for the ~3σ records noise keeps setting early on."""
    alarms = 0
    for seed in range(10):
        x = noise(seed)
        for v, s in zip(x, score_series(x)):
            if s >= ALARM:
                assert abs(v - 100) >= 4
                alarms += 1
    assert alarms <= 5                               # 50,000 points


def test_new_extremes_rank_by_their_size_and_still_reach_any_alarm_level():
    """Two new extremes of plain noise: both alarm, and the later, larger one scores higher (at exactly 1 each, the
    first would be the highest score of the series, which is what UCR's protocol and a ranked findings list read);
    with an alarm level of 1 a new extreme still reaches it."""
    x = np.random.default_rng(5).normal(size=3000)
    x[2000], x[2600] = 6.0, 12.0
    s = score_series(x)
    assert 0.999 < s[2000] < s[2600] < 1.0 and int(np.argmax(s)) == 2600
    assert max(s[:2000]) < 0.8
    at_one = score_series(x, DetectorParams(alarm=1.0))
    assert at_one[2000] == at_one[2600] == 1.0


def test_a_broken_daily_pattern_needs_the_timestamps_or_the_discord():
    n = 288 * 14                                     # two weeks of 5-minute points with a daily cycle
    ts = minutes(n)
    x = 50 + 20 * np.sin(2 * np.pi * np.arange(n) / 288) + np.random.default_rng(5).normal(0, 1, n)
    flat = x.copy()
    flat[288 * 10:288 * 11] = 50 + np.random.default_rng(6).normal(0, 1, 288)    # day 10: no cycle
    normal = score_series(x, timestamps=ts)
    assert max(normal[288 * 2:]) < ALARM            # after the first days, the cycle itself is not anomalous
    broken = score_series(flat, timestamps=ts)
    assert max(broken[288 * 10:288 * 11]) >= ALARM and max(broken[288 * 2:288 * 10]) < ALARM
    # without timestamps the level terms cannot see it (at the mean level: invisible without yesterday) …
    assert max(score_series(flat, DetectorParams(discord=False))[288 * 10:288 * 11]) < ALARM
    # … the discord can: its window is the day (288 points, read from the first DISCORD_PREFIX values)
    assert estimate_window(x[:DISCORD_PREFIX]) == 288 and max(score_series(flat)[288 * 10:288 * 11]) >= ALARM


def test_detector_is_causal():
    x = noise(8, 4000)
    x[1500:1600] += 6
    x[3000] -= 30
    ts = minutes(len(x))
    full = score_series(x, timestamps=ts)
    for k in (1, 151, 1550, 3001):                   # a point's score never depends on later points
        assert score_series(x[:k], timestamps=ts[:k]) == full[:k]
    d = StreamDetector()
    assert [d.update(float(v), t) for v, t in zip(x, ts)] == full        # online = offline


def test_detector_on_odd_input():
    assert score_series([]) == [] and score_series([5.0]) == [0.0]
    assert max(score_series(np.full(2000, 7.0))) == 0                        # a flat line is never anomalous
    step = np.r_[np.full(1000, 7.0), np.full(100, 9.0)]
    assert score_series(step)[1000] > 0.99                                 # … until it moves
    x = noise(9, 1000)
    with_gaps = np.insert(x, [300, 600, 600], [np.nan, np.inf, -np.inf])
    kept = [s for v, s in zip(with_gaps, score_series(with_gaps)) if np.isfinite(v)]
    assert kept == score_series(x)                   # a non-finite value is skipped: score 0, state unchanged
    huge = np.r_[noise(10, 500), [1e300, -1e300, 1e308, -1e308], noise(11, 2000)]
    huge[1504:] += 6                                 # the detector still works after absurd values
    s = score_series(huge)
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in s) and s[500] == 1.0
    assert max(s[804:1504]) < ALARM and max(s[1504:1520]) >= ALARM
    absurd_first = score_series(np.r_[[1e308], noise(12, 1000)])
    assert max(absurd_first[300:]) < ALARM         # it starts again rather than stay stuck on the first value
    d = StreamDetector()
    assert d.update(1.0, "2026-01-02T00:00:00Z") == 0 and d.update(2.0, "2026-01-01T00:00:00Z") == 0  # back in time
    with pytest.raises(ValueError, match="2 timestamps for 3 values"):
        score_series([1, 2, 3], timestamps=minutes(2))
    with pytest.raises(ValueError):
        to_seconds("yesterday")
    with pytest.raises(ValueError, match="alpha_short"):
        DetectorParams(alpha_short=0)


def test_detector_on_a_real_nab_series():
    windows = json.loads((NAB / "windows.json").read_text())
    ts, values = read_series(SERIES)
    rows = window_rows(ts, next(iter(windows.values())))
    assert len(rows) == 3 and all(a < b for a, b in rows)
    res = score_corpus([LabelledFile("ec2", np.array(score_series(values, timestamps=ts)), rows)])
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
    assert [p["rows"] for p in report] == [4032, 60] and [p["seasonal"] for p in report] == [True, True]
    with open(out / "ec2_request_latency_system_failure.csv") as fh:
        rows = list(csv.DictReader(fh))
    ts, values = read_series(SERIES)
    assert [r["timestamp"] for r in rows] == ts and [float(r["value"]) for r in rows] == values.tolist()
    assert [float(r["anomaly_score"]) for r in rows] == pytest.approx(score_series(values, timestamps=ts), abs=1e-6)
    assert all(0 <= float(r["anomaly_score"]) <= 1 for r in rows)
    r = revwatch_cmd("anomaly", "series", str(bad), "-o", str(out))
    assert r.returncode == 2 and "bad.csv:3" in r.stderr and "Traceback" not in r.stderr
    r = revwatch_cmd("anomaly", "series", str(tmp_path / "missing.csv"), "-o", str(out))
    assert r.returncode == 2 and "missing.csv" in r.stderr


def test_online_watch_of_a_configured_series_survives_restart(store, make_config):
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
    expected = score_series(values, timestamps=[t0 + dt.timedelta(minutes=i) for i in range(1200)])  # online = offline
    assert hit[0]["score"] == pytest.approx(expected[1000], abs=1e-4)


def test_online_a_shape_anomaly_is_one_finding_raised_by_its_climb_also_across_a_restart(store):
    """The watcher's finding for a shape anomaly is the incident opened by its alarm: the higher scores of its climb
    (StreamDetector.climbed) raise that finding's score instead of adding findings, in the same run and after a
    restart in the middle of the climb (the warm-up replays the alarm)."""
    from anomaly.findings import list_findings
    from anomaly.online import MetricWatcher, WatchedSeries
    from tests.test_anomaly_discord import shape_anomaly
    x = shape_anomaly()
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    ts = [t0 + dt.timedelta(seconds=i) for i in range(len(x))]           # within a day: no seasonal term
    d = StreamDetector()
    offline = [(d.update(float(v), t), d.climbed) for v, t in zip(x, ts)]
    alarms = [i for i, (s, _) in enumerate(offline) if s >= ALARM]
    first, climbs = alarms[0], [i for i in alarms if offline[i][1]]
    assert climbs and min(climbs) > first and all(2150 < i < 2350 for i in alarms)

    def put(lo, hi):
        store.insert("samples", [("pump_pressure", {}, float(x[i]), ts[i], "plc") for i in range(lo, hi)],
                     ["Name", "Labels", "Value", "Timestamp", "Probe"])
    series = [WatchedSeries("pump", "pump_pressure")]
    put(0, first + 1)                                   # the alarm, then the watcher stops
    assert MetricWatcher(store, series).run_once()["findings"] == 1
    put(first + 1, len(x))
    res = MetricWatcher(store, series).run_once()      # restarted in the middle of the climb
    items, _ = list_findings(store, kind="metric")
    assert res["findings"] == 0 and len(items) == 1
    peak = max(alarms, key=lambda i: offline[i][0])
    assert items[0]["score"] == pytest.approx(offline[peak][0], abs=1e-4) and offline[peak][0] > offline[first][0]
    assert items[0]["details"]["at"][:19] == ts[max(climbs)].isoformat()[:19]          # the latest climb's time
