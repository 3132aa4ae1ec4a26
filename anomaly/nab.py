"""NAB scoring (Numenta Anomaly Benchmark v1.1 rules), implemented from the rules' description.

Per file: the first `min(floor(0.15 n), 750)` rows are probationary and not scored. A row "detects" when its
score reaches the threshold. Inside a window only the earliest detection counts, worth
`tpWeight · σ̃(y) / σ̃(−1)` with `σ̃(y) = 2·sigmoid(−5y) − 1` and y running from −1 at the window's left edge to
about 0 at its right edge; a window without detection costs `−fnWeight`. A detection outside every window is worth
`fpWeight · σ̃(d)` where d is its distance past the previous window's right edge in that window's widths
(σ̃ = −1 beyond 3 widths, and −1 when no window precedes it). One threshold per profile is chosen over the whole
corpus (the one maximising the summed raw score); the normalised score is `100 · (raw − null) / (perfect − null)`
with null = never detecting (`−fnWeight` per window) and perfect = `tpWeight` per window.

The threshold sweep is exact over every distinct score value, like NAB's sweeper (nab/sweeper.py,
calcScoreByThreshold): the corpus' rows sorted by descending score, cumulative sums over them. (An earlier version
swept 4,000 score quantiles only, which missed the best threshold by up to 0.8 points.) A window lying wholly in
the probationary rows costs −fnWeight in both the detector's sum and the null sum here, where NAB leaves it out of
both: the normalised score is the same.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROFILES = {"standard": {"tp": 1.0, "fp": 0.11, "fn": 1.0},
            "reward_low_FP_rate": {"tp": 1.0, "fp": 0.22, "fn": 1.0},
            "reward_low_FN_rate": {"tp": 1.0, "fp": 0.11, "fn": 2.0}}


def scaled_sigmoid(y: float) -> float:
    """NAB's σ̃: 2·sigmoid(−5y) − 1, and −1 far (more than 3 widths) past a window."""
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def probation(n: int) -> int:
    return min(int(math.floor(0.15 * n)), int(0.15 * 5000))


@dataclass
class LabelledFile:
    """One series' scores with its windows as (first row, last row) index pairs."""
    name: str
    scores: np.ndarray
    windows: list[tuple[int, int]]

    def rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The scored (non-probationary) rows: (score, window number or −1, sweep value). The sweep value of a row
        in a window is its true-positive worth σ̃(y)/σ̃(−1) (before tpWeight); outside windows it is σ̃ of its
        distance past the preceding window (before fpWeight), −1 if no window precedes it."""
        s = np.asarray(self.scores, dtype=float)
        n = len(s)
        window = np.full(n, -1)
        value = np.full(n, -1.0)
        prev: tuple[int, int] | None = None              # (right edge, width) of the last window passed
        k = 0
        for left, right in sorted(self.windows):
            width = right - left + 1
            if prev is not None:                         # rows between the previous window and this one
                j = np.arange(prev[0] + 1, left)
                value[j] = [scaled_sigmoid(abs(prev[0] - i) / float(max(prev[1] - 1, 1))) for i in j]
            j = np.arange(left, right + 1)
            window[j] = k
            value[j] = [scaled_sigmoid(-(right - i + 1) / width) / scaled_sigmoid(-1.0) for i in j]
            prev, k = (right, width), k + 1
        if prev is not None:
            j = np.arange(prev[0] + 1, n)
            value[j] = [scaled_sigmoid(abs(prev[0] - i) / float(max(prev[1] - 1, 1))) for i in j]
        start = probation(n)
        return s[start:], window[start:], value[start:]


def score_corpus(files: list[LabelledFile], thresholds: dict[str, float] | None = None) -> dict[str, dict]:
    """Normalised NAB score per profile with its best threshold, and the counts at that threshold. With
    `thresholds` (profile → threshold, e.g. the ones another set of files chose) those profiles are scored at the
    given threshold instead of their best: a held-out score, where NAB's own is the best over the scored files.

    Exact sweep over every distinct score, as NAB's sweeper does: rows of the whole corpus sorted by descending
    score; lowering the threshold past a row adds its fpWeight·σ̃ when it is outside every window, or raises its
    window's worth to max(worth so far, row's worth) (the earliest detection in a window is the most valuable one,
    so this is "the first detection counts"); a window with no row at or above the threshold costs −fnWeight. The
    threshold reported is the lowest score still detecting (rows with score >= threshold detect)."""
    scores, windows, values = [], [], []
    n_windows = 0
    for f in files:
        s, w, v = f.rows()
        scores.append(s)
        windows.append(np.where(w >= 0, w + n_windows, -1))
        values.append(v)
        n_windows += len(f.windows)
    s = np.concatenate(scores) if scores else np.zeros(0)
    w = np.concatenate(windows) if windows else np.zeros(0, dtype=int)
    v = np.concatenate(values) if values else np.zeros(0)
    order = np.argsort(-s, kind="stable")
    s, w, v = s[order], w[order], v[order]
    outside = w < 0
    fp_sum = np.cumsum(np.where(outside, v, 0.0))
    fp_count = np.cumsum(outside)
    gain = np.zeros(len(s))                      # rise of the rows' windows' worth when the row starts detecting
    first = np.zeros(len(s))                     # 1 where a window gets its first detecting row
    best: dict[int, float] = {}
    for i in np.nonzero(~outside)[0]:
        k, x = int(w[i]), float(v[i])
        b = best.get(k)
        if b is None:
            best[k], gain[i], first[i] = x, x, 1.0
        elif x > b:
            best[k], gain[i] = x, x - b
    tp_sum, tp_count = np.cumsum(gain), np.cumsum(first)
    last = np.nonzero(np.r_[s[1:] != s[:-1], True])[0] if len(s) else np.zeros(0, dtype=int)
    out = {}
    for name, wt in PROFILES.items():
        raw = wt["tp"] * tp_sum[last] + wt["fp"] * fp_sum[last] - wt["fn"] * (n_windows - tp_count[last])
        raw = np.r_[-wt["fn"] * n_windows, raw]      # first entry: a threshold above every score
        if thresholds and name in thresholds:         # distinct scores at or above it are detecting
            b = int(np.count_nonzero(s[last] >= thresholds[name])) if len(s) else 0
        else:
            b = int(np.argmax(raw))
        null, perfect = -wt["fn"] * n_windows, wt["tp"] * n_windows
        tp = int(tp_count[last[b - 1]]) if b else 0
        out[name] = {"score": round(100 * (float(raw[b]) - null) / (perfect - null), 2) if perfect > null else 0.0,
                     "threshold": float(s[last[b - 1]]) if b else math.inf, "tp": tp,
                     "fp": int(fp_count[last[b - 1]]) if b else 0, "fn": n_windows - tp}
    return out


def read_series(path: Path) -> tuple[list[str], np.ndarray]:
    """A `timestamp,value` CSV: (timestamps as written, values)."""
    ts, vals = [], []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            ts.append(row["timestamp"])
            vals.append(float(row["value"]))
    return ts, np.array(vals)


def _parse(t: str) -> dt.datetime:
    return dt.datetime.fromisoformat(t.strip().replace("T", " "))


def window_rows(timestamps: list[str], windows: list[list[str]]) -> list[tuple[int, int]]:
    """Label windows (timestamp pairs) as inclusive row-index pairs."""
    times = [_parse(t) for t in timestamps]
    out = []
    for a, b in windows:
        lo, hi = _parse(a), _parse(b)
        idx = [i for i, t in enumerate(times) if lo <= t <= hi]
        if idx:
            out.append((idx[0], idx[-1]))
    return out


def load_corpus(root: Path) -> list[tuple[str, list[str], np.ndarray, list[tuple[int, int]]]]:
    """Every NAB series under `root` with its windows: [(relative name, timestamps, values, windows)]."""
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    out = []
    for name in sorted(windows):
        path = root / "data" / name
        if not path.exists():
            continue
        ts, values = read_series(path)
        out.append((name, ts, values, window_rows(ts, windows[name])))
    return out
