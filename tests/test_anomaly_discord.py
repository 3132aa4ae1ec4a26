"""The matrix-profile discord: the incremental left matrix profile equals its definition computed by brute force
(also across the history buffer's compaction and for flat stretches), the window follows the series' cycle, and a
shape anomaly inside the normal range is found by the detector only because of it."""
import gzip
import math

import numpy as np
import pytest

from anomaly.discord import LeftDiscord, estimate_cycle, estimate_noise, estimate_window
from anomaly.metric import DISCORD_PREFIX, DetectorParams, StreamDetector, score_series


def brute(t: np.ndarray, m: int) -> float:
    """Left matrix profile of the last subsequence of t, from the definition (stumpy's flat-subsequence rules)."""
    excl = math.ceil(m / 4)
    last = len(t) - m
    q = t[last:]

    def dist(a, b):
        fa, fb = a.std() < 1e-7 * max(1, abs(b.mean())), b.std() < 1e-7 * max(1, abs(b.mean()))
        if fa and fb:
            return 0.0
        if fa or fb:
            return math.sqrt(m)
        return float(np.linalg.norm((a - a.mean()) / a.std() - (b - b.mean()) / b.std()))
    return min(dist(t[j:j + m], q) for j in range(0, last - excl))


def test_incremental_left_profile_matches_the_definition():
    rng = np.random.default_rng(3)
    x = np.concatenate([np.sin(np.arange(300) / 5) + rng.normal(0, 0.1, 300), np.full(40, 2.0),
                        rng.normal(size=360)])
    d = LeftDiscord(16, history=120)                # small history: the buffer compacts several times
    for i, v in enumerate(x):
        got = d.update(float(v))
        if i % 37 == 0 and i > 60:
            buf = d.t[:d.n]
            assert buf[-1] == v
            assert abs(got - brute(buf, 16)) < 1e-6, i



def brute_corrected(t: np.ndarray, m: int, noise: float) -> float:
    """The noise-corrected left matrix profile of the last subsequence of t, from De Paepe et al.'s definition:
    min over earlier windows of d² − (2m+2)σn²/max(σq, σ)², clipped at 0 (no flat windows here)."""
    excl = math.ceil(m / 4)
    last = len(t) - m
    q = t[last:]
    best = math.inf
    for j in range(0, last - excl):
        a = t[j:j + m]
        d2 = float(np.sum(((a - a.mean()) / a.std() - (q - q.mean()) / q.std()) ** 2))
        best = min(best, d2 - (2 * m + 2) * noise ** 2 / max(a.std(), q.std()) ** 2)
    return math.sqrt(max(0.0, best))


def test_the_noise_correction_removes_what_noise_alone_adds():
    """LeftDiscord(noise=σ) (De Paepe et al.): on a noisy cycle, the newest window's distance to its matching
    earlier window is what the noise put there (≈ 0.8 here, around √(2m)·σ/σq ≈ 1.1 for one pair, less as the
    minimum over ~30 matching cycles) and the correction takes it to 0; on pure noise of known σ the nearest
    neighbour is at ≈ 5.4 of √(2m) = 8 and is all noise, corrected to 0 as well. noise=0 is the old distance
    exactly, and the incremental corrected distance is the definition computed by brute force."""
    m, sigma = 32, 0.1
    rng = np.random.default_rng(0)
    cycle = np.sin(2 * np.pi * np.arange(1500) / m) + rng.normal(0, sigma, 1500)
    plain, zero, corrected = LeftDiscord(m), LeftDiscord(m, noise=0.0), LeftDiscord(m, noise=sigma)
    half = LeftDiscord(m, noise=sigma / 2)                       # half the noise: distances stay above 0
    d = np.array([(plain.update(v), zero.update(v), corrected.update(v), half.update(v)) for v in cycle])[600:]
    assert np.array_equal(d[:, 0], d[:, 1])                                        # noise=0: unchanged
    assert 0.6 < d[:, 0].mean() < 1.1 and d[:, 0].min() > 0.4                      # uncorrected: noise only
    assert d[:, 2].max() < 0.05                                                     # corrected: ≈ 0
    assert corrected.noise_spread == pytest.approx(sigma / cycle[-m:].std())
    assert 0 < d[:, 3].mean() < d[:, 0].mean()
    for i in (700, 1100, 1499):
        assert abs(d[i - 600, 3] - brute_corrected(cycle[:i + 1], m, sigma / 2)) < 1e-6, i
        assert abs(d[i - 600, 0] - brute(cycle[:i + 1], m)) < 1e-6, i
    noise = np.random.default_rng(1).normal(0, 0.5, 1500)
    plain, corrected = LeftDiscord(m), LeftDiscord(m, noise=0.5)
    d = np.array([(plain.update(v), corrected.update(v)) for v in noise])[600:]
    assert 0.6 * math.sqrt(2 * m) < d[:, 0].mean() < 0.8 * math.sqrt(2 * m) and d[:, 1].max() < 0.05


def test_the_noise_is_estimated_from_second_differences():
    """estimate_noise: σ of the noise on a sine, within 10 %, from its second differences (the sine leaks in as
    (2π/50)² of its amplitude, ~1.6 %)."""
    t = np.arange(1000)
    for seed in range(3):
        for sigma in (0.05, 0.1, 0.2):
            x = np.sin(2 * np.pi * t / 50) + np.random.default_rng(seed).normal(0, sigma, len(t))
            assert estimate_noise(x) == pytest.approx(sigma, rel=0.1), (seed, sigma)
    assert estimate_noise(np.sin(2 * np.pi * t / 50)) < 0.01
    assert estimate_noise(np.array([1.0, 2.0])) == 0.0


def heartbeat(seed: int, n: int = 8000, period: int = 180, bad: int = 5400) -> np.ndarray:
    """A pulse train like an ECG sampled at 250 Hz (a sharp spike and a wide wave each beat, a little noise); the
    beat starting at `bad` has no spike, only a wide bump, every value inside the normal range."""
    rng = np.random.default_rng(seed)
    phase = np.arange(n) % period
    x = 2.0 * np.exp(-0.5 * ((phase - 40) / 3.0) ** 2) + 0.4 * np.exp(-0.5 * ((phase - 110) / 15.0) ** 2)
    x += rng.normal(0, 0.03, n)
    x[bad:bad + period] = 0.4 * np.exp(-0.5 * ((np.arange(period) - 40) / 15.0) ** 2) + rng.normal(0, 0.03, period)
    return x


def test_window_follows_the_cycle():
    t = np.arange(1000)
    assert abs(estimate_window(np.sin(2 * np.pi * t[:400] / 40)) - 40) <= 1
    assert estimate_window(heartbeat(0)[:DISCORD_PREFIX]) == 180          # a beat longer than the old cap of 96
    assert estimate_window(np.sin(2 * np.pi * t / 400)) == 32             # shows only 2.5 times in the prefix
    assert estimate_window(np.random.default_rng(0).normal(size=400)) == 32      # no cycle: the default
    assert estimate_window(np.full(400, 5.0)) == 32


def test_a_cycle_is_told_from_a_wandering_level():
    """estimate_cycle: a cycle's autocorrelation turns negative before its peak; a random walk with a small ripple
    has an autocorrelation bump above 0.3 (the discord still takes it as its window) but is no cycle, so its level
    rule stays the one NAB's metrics are scored with."""
    t = np.arange(DISCORD_PREFIX)
    assert estimate_cycle(heartbeat(0)[:DISCORD_PREFIX]) == (180, True)
    assert estimate_cycle(np.sin(2 * np.pi * t / 40) + np.random.default_rng(0).normal(0, 0.3, len(t))) == (40, True)
    for seed in range(3):
        walk = np.cumsum(np.random.default_rng(seed).normal(size=len(t))) + 3 * np.sin(2 * np.pi * t / 12)
        window, periodic = estimate_cycle(walk)
        assert window in (11, 12, 13) and not periodic
    assert estimate_cycle(np.random.default_rng(0).normal(size=len(t))) == (32, False)
    assert estimate_cycle(np.full(len(t), 5.0)) == (32, False)


def test_the_cycle_level_keeps_a_clean_pulse_train_quiet():
    """Without timestamps, a 20-40-point short mean swings with every beat and, judged by the iid spread, alarmed
    about once per refractory period on a clean pulse train (the UCR test parts: 2,233 of 2,479 false alarms);
    the whole-beat mean against the spread of beat means does not."""
    for seed in range(2):
        x = heartbeat(seed, bad=7820)                                 # the malformed beat only at the very end
        level_only = np.array(score_series(x, DetectorParams(discord=False)))
        short_mean = np.array(score_series(x, DetectorParams(discord=False, cycle_level=False)))
        assert (level_only[DISCORD_PREFIX:7800] >= 0.8).sum() == 0
        assert (short_mean[DISCORD_PREFIX:7800] >= 0.8).sum() >= 10


def test_a_malformed_beat_is_the_highest_score_of_a_long_cycle():
    """UCR's protocol on a constructed heartbeat: the discord's window is the whole beat (180 points, from the first
    DISCORD_PREFIX values), so the beat without its spike scores highest after a 3000-point training prefix — with
    the window capped at 96 (half a beat) or with neither the discord nor the cycle level, the short mean's swing
    with the spikes wins. The cycle level alone finds it too: that beat's mean is low (its spike is missing)."""
    from bench.anomaly_eval import ucr_found
    for seed in range(2):
        x = heartbeat(seed)
        assert ucr_found(score_series(x), 3000, 5401, 5580)
        assert ucr_found(score_series(x, DetectorParams(discord=False)), 3000, 5401, 5580)
        assert not ucr_found(score_series(x, DetectorParams(discord=False, cycle_level=False)), 3000, 5401, 5580)


def test_a_cycle_too_long_for_the_first_look_is_found_by_the_second(monkeypatch):
    """A 400-point beat cannot show three times in the first DISCORD_PREFIX values (the default window of 32 then
    cuts it into pieces, and no cycle level); the second look at 3 × DISCORD_PREFIX values finds it, the discord
    and the cycle level start again with it, and the malformed beat is the highest score after a 4000-point
    training prefix — with one look it is not. The plain-discord baseline settles on the same window."""
    import anomaly.metric as metric
    from bench.anomaly_eval import ucr_found
    for seed in range(2):
        x = heartbeat(seed, n=9000, period=400, bad=7000)
        assert estimate_cycle(x[:DISCORD_PREFIX]) == (32, False) and metric.settled_cycle(x) == (400, True)
        d = StreamDetector()
        scores = []
        for i, v in enumerate(x):
            scores.append(d.update(float(v)))
            if i == 2 * DISCORD_PREFIX:
                assert d.discord is not None and d.discord.m == 32 and d.cycle is None
        assert d.discord is not None and d.discord.m == 400 and d.cycle is not None
        assert ucr_found(scores, 4000, 7001, 7400)
    monkeypatch.setattr(metric, "CYCLE_LOOKS", (DISCORD_PREFIX,))
    assert not ucr_found(score_series(heartbeat(0, n=9000, period=400, bad=7000)), 4000, 7001, 7400)


def test_a_shape_anomaly_inside_the_normal_range_is_found_by_the_discord():
    rng = np.random.default_rng(7)
    n, period = 3000, 50
    x = np.sin(2 * np.pi * np.arange(n) / period) + rng.normal(0, 0.05, n)
    x[2200:2250] = np.sin(2 * np.pi * np.arange(50) / 25)[::-1] * 0.9      # twice as fast, within the range
    with_discord = np.array(score_series(x))
    without = np.array(score_series(x, DetectorParams(discord=False)))
    inside = slice(2200, 2300)
    assert with_discord[inside].max() >= 0.8 and without[inside].max() < 0.8
    assert with_discord[:2150].max() < 0.8 and with_discord[2350:].max() < 0.8         # nothing else alarms


def shape_anomaly(seed: int = 7, n: int = 3000, period: int = 50, at: int = 2200) -> np.ndarray:
    """A clean noisy sine; at `at` one period runs twice as fast and backwards, every value inside the range."""
    rng = np.random.default_rng(seed)
    x = np.sin(2 * np.pi * np.arange(n) / period) + rng.normal(0, 0.05, n)
    x[at:at + period] = np.sin(2 * np.pi * np.arange(period) / (period / 2))[::-1] * 0.9
    return x


def test_a_shape_anomaly_climbs_through_the_quiet_period_and_a_level_shift_does_not():
    """After its alarm a shape anomaly's distance keeps rising while the discord's window slides into it: those
    higher scores of the same excursion show (where the highest score counts, the first crossing of the alarm level
    would otherwise stand for the whole anomaly); a level shift's rising z stays quiet after its alarm (NAB charges
    every extra detection: one incident, one alarm)."""
    for seed in (7, 8):
        d = StreamDetector()
        scores, climbed = [], []
        for v in shape_anomaly(seed):
            scores.append(d.update(float(v)))
            climbed.append(d.climbed)
        s = np.array(scores)
        first = 2150 + int(np.nonzero(s[2150:2350] >= 0.8)[0][0])
        peak = 2150 + int(np.argmax(s[2150:2350]))
        assert peak > first and s[peak] > s[first] and climbed[peak] and not climbed[first]
        margin = DetectorParams().margin                  # not the margin rule: a climb below the alarm + margin
        assert any(c and s[first] < x < s[first] + margin for c, x in zip(climbed[first:peak + 1], s[first:peak + 1]))
        assert s[:2150].max() < 0.8 and s[2350:].max() < 0.8                     # nothing else alarms
        hidden = np.array(score_series(shape_anomaly(seed), DetectorParams(shape_climb=False)))
        assert hidden[2150:2350].max() == pytest.approx(s[first])                 # without it: the first crossing
    rng = np.random.default_rng(1)
    y = rng.normal(0, 1, 3000)
    y[2000:] += 3.0                                       # the short mean climbs for ~30 points past z 6
    d = StreamDetector(DetectorParams(spatial_tolerance=-1))
    s, climbed = [], []
    for v in y:
        s.append(d.update(float(v)))
        climbed.append(d.climbed)
    first = 2000 + int(np.nonzero(np.array(s[2000:]) >= 0.8)[0][0])
    after = s[first + 1:first + 400]                      # its quiet period: hidden unless the margin rule lets through
    assert not any(climbed) and all(x < 0.1 or x >= s[first] + DetectorParams().margin for x in after)
    assert sum(x < 0.1 for x in after) > 300



def fading_cycle(seed: int, n: int = 7000, period: int = 50, at: int = 5800) -> np.ndarray:
    """A noisy sine (σ 0.1) whose amplitude fades smoothly to a quarter over 3500–4000, stays there to 5000 and
    comes back by 5500 — the same shape throughout, only the noise weighs 4× more once z-normalised; at `at` one
    period is a sine cubed (a true shape anomaly, inside the range)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    ramp = 0.25 + 0.75 * (1 + np.cos(np.linspace(0, np.pi, 500))) / 2
    amp = np.ones(n)
    amp[3500:4000], amp[4000:5000], amp[5000:5500] = ramp, 0.25, ramp[::-1]
    x = amp * np.sin(2 * np.pi * t / period)
    x[at:at + period] = np.sin(2 * np.pi * np.arange(period) / period) ** 3
    return x + rng.normal(0, 0.1, n)


def test_the_noise_correction_lets_a_shape_anomaly_outrank_a_fading_cycle():
    """As a cycle fades, the uncorrected distance of each window to the earlier (larger) ones grows with σn/σq —
    noise, not shape — and the highest score after a 3000-point training prefix falls in the fade, not on the
    malformed period; with the noise subtracted (DetectorParams.discord_noise, the default) the malformed period
    is the highest score (UCR's protocol)."""
    from bench.anomaly_eval import ucr_found
    for seed in range(3):
        x = fading_cycle(seed)
        corrected = np.array(score_series(x))
        plain = np.array(score_series(x, DetectorParams(discord_noise=False)))
        assert ucr_found(corrected, 3000, 5801, 5850), seed
        assert not ucr_found(plain, 3000, 5801, 5850), seed
        assert 3500 <= 3000 + int(np.argmax(plain[3000:])) < 5500, seed               # … in the fade


def test_ucr_protocol_on_a_file_named_as_the_archive_names_them(tmp_path):
    from bench.anomaly_eval import ucr_found, ucr_series
    rng = np.random.default_rng(11)
    x = np.sin(2 * np.pi * np.arange(3000) / 50) + rng.normal(0, 0.05, 3000)
    x[2200:2250] = np.sin(2 * np.pi * np.arange(50) / 25)[::-1] * 0.9
    np.savetxt(tmp_path / "900_UCR_Anomaly_constructed_1000_2201_2250.txt", x)
    (name, values, train, begin, end), = ucr_series(tmp_path)
    assert (train, begin, end) == (1000, 2201, 2250) and len(values) == 3000
    assert ucr_found(score_series(values), train, begin, end)
    gz = tmp_path / "gz"
    gz.mkdir()
    with gzip.open(gz / "900_UCR_Anomaly_constructed_1000_2201_2250.txt.gz", "wt") as f:
        f.write(" ".join(map(str, x.tolist())))          # one line, space separated, as some copies of the archive are
    (name_gz, values_gz, *labels), = ucr_series(gz)
    assert name_gz == name and labels == [1000, 2201, 2250] and np.array_equal(values_gz, values)
    peak_elsewhere = np.zeros(3000)
    peak_elsewhere[1500] = 1.0
    assert not ucr_found(peak_elsewhere, train, begin, end)


def test_the_combination_is_chosen_on_one_half_of_both_benchmarks_and_reported_on_the_other():
    from bench.anomaly_eval import choose_across
    rows = {"nab-only": {"nab_A": 80.0, "ucr_A": 0.1, "nab_B": 75.0, "nab_B_held": 74.0, "ucr_B": 0.1,
                         "nab_A_held": 79.0},
            "both": {"nab_A": 70.0, "ucr_A": 0.5, "nab_B": 60.0, "nab_B_held": 58.0, "ucr_B": 0.2,
                     "nab_A_held": 69.0}}
    got = choose_across(rows, ["nab-only", "both"])
    assert got["A"]["variant"] == "both"                        # 0.70 + 0.5 beats 0.80 + 0.1 on half A
    assert got["A"]["held"] == (60.0, 58.0, 0.2) and got["A"]["held_half"] == "B"   # reported on B, as measured
    assert got["B"]["variant"] == "nab-only" and got["B"]["held"] == (80.0, 79.0, 0.1)
