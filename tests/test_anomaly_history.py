"""The outcome index (anomaly/history.py) answers "how many of key k's payments were decided before t (within w),
and how many failed" exactly as counting them one by one does."""
import random

import numpy as np

from anomaly.history import DecidedIndex


def brute(points, key, t, window):
    hits = [f for k, d, f in points if k == key and d < t and (window is None or d >= t - window)]
    return sum(hits), len(hits)


def test_counts_equal_a_count_one_by_one_with_and_without_a_window():
    rng = random.Random(7)
    keys = ["C-1", "C-2", "C-3", ""]
    points = [(rng.choice(keys), 1_700_000_000_000 + rng.randrange(0, 10 ** 9, 1000), int(rng.random() < 0.3))
              for _ in range(600)]
    index = DecidedIndex([k for k, _, _ in points], np.array([d for _, d, _ in points]),
                         np.array([f for _, _, f in points]))
    # questions at, just before and just after decision instants, before all and after all, and an unknown key
    moments = [d + rng.choice((-1, 0, 1)) for _, d, _ in rng.sample(points, 200)] + [0, 1_800_000_000_000]
    asked = [rng.choice(keys + ["never-seen"]) for _ in moments]
    for window in (None, 86_400_000, 1):
        f, n = index.counts(asked, np.array(moments), window)
        for i, (k, t) in enumerate(zip(asked, moments)):
            assert (f[i], n[i]) == brute(points, k, t, window), (k, t, window)


def test_an_outcome_decided_at_the_moment_asked_is_not_yet_known():
    index = DecidedIndex(["a", "a"], np.array([1000, 2000]), np.array([1, 0]))
    f, n = index.counts(["a", "a", "a"], np.array([1000, 1001, 2001]))
    assert n.tolist() == [0, 1, 2] and f.tolist() == [0, 1, 1]


def test_an_empty_history_counts_nothing():
    f, n = DecidedIndex([], np.array([], dtype=np.int64), np.array([], dtype=np.int64)).counts(["a"], np.array([5]))
    assert f.tolist() == [0] and n.tolist() == [0]
