"""NAB scoring (Numenta Anomaly Benchmark v1.1 rules), implemented from the rules' description.

Per file: the first `min(floor(0.15 n), 750)` rows are probationary and not scored. A row "detects" when its
score reaches the threshold. Inside a window only the earliest detection counts, worth
`tpWeight · σ̃(y) / σ̃(−1)` with `σ̃(y) = 2·sigmoid(−5y) − 1` and y running from −1 at the window's left edge to
about 0 at its right edge; a window without detection costs `−fnWeight`. A detection outside every window is worth
`fpWeight · σ̃(d)` where d is its distance past the previous window's right edge in that window's widths
(σ̃ = −1 beyond 3 widths, and −1 when no window precedes it). One threshold per profile is chosen over the whole
corpus (the one maximising the summed raw score); the normalised score is `100 · (raw − null) / (perfect − null)`
with null = never detecting (`−fnWeight` per window) and perfect = `tpWeight` per window.

The threshold sweep is exact over every distinct score value and vectorised: per window the first detecting row
for a threshold is a binary search in the window's running maximum; false positives are a cumulative sum over
rows sorted by score.
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

    def prepared(self) -> "_Prepared":
        return _Prepared(self)


class _Prepared:
    """Per-file arrays that make the sweep over thresholds cheap."""

    def __init__(self, f: LabelledFile):
        n = len(f.scores)
        start = probation(n)
        s = np.asarray(f.scores, dtype=float)
        in_window = np.zeros(n, dtype=bool)
        fp_value = np.full(n, -1.0)               # σ̃ per row outside windows (before the fpWeight)
        self.windows = []
        prev_right: int | None = None
        prev_width = 0
        w_iter = iter(sorted(f.windows))
        nxt = next(w_iter, None)
        i = 0
        while i < n:
            if nxt is not None and i == nxt[0]:
                left, right = nxt
                width = right - left + 1
                idx = np.arange(left, right + 1)
                keep = idx >= start
                idx = idx[keep]
                tp = np.array([scaled_sigmoid(-(right - j + 1) / width) for j in idx]) / scaled_sigmoid(-1.0)
                ws = s[idx] if len(idx) else np.zeros(0)
                self.windows.append((np.maximum.accumulate(ws) if len(ws) else ws, tp))
                in_window[left:right + 1] = True
                prev_right, prev_width = right, width
                i = right + 1
                nxt = next(w_iter, None)
                continue
            if prev_right is not None:
                fp_value[i] = scaled_sigmoid(abs(prev_right - i) / float(max(prev_width - 1, 1)))
            i += 1
        out = ~in_window
        out[:start] = False
        order = np.argsort(-s[out], kind="stable")
        self.fp_scores = s[out][order]
        self.fp_cum = np.concatenate([[0.0], np.cumsum(fp_value[out][order])])

    def raw(self, thresholds: np.ndarray, tp_w: float, fp_w: float, fn_w: float) -> tuple[np.ndarray, ...]:
        """(raw score, TP, FP, FN) for each threshold (descending or any order)."""
        # false positives: rows with score >= th among the descending-sorted outside rows
        k = np.searchsorted(-self.fp_scores, -thresholds, side="right")
        fp_sum = self.fp_cum[k]
        total = fp_w * fp_sum
        tps = np.zeros(len(thresholds))
        fns = np.zeros(len(thresholds))
        for runmax, tp in self.windows:
            if len(runmax) == 0:
                fns += 1
                total = total - fn_w
                continue
            j = np.searchsorted(runmax, thresholds, side="left")       # first row whose running max >= th
            hit = j < len(runmax)
            total = total + np.where(hit, tp_w * tp[np.minimum(j, len(tp) - 1)], -fn_w)
            tps += hit
            fns += ~hit
        return total, tps, k.astype(float), fns


def score_corpus(files: list[LabelledFile], thresholds: np.ndarray | None = None) -> dict[str, dict]:
    """Normalised NAB score per profile with its best threshold, and the counts at that threshold."""
    prepared = [f.prepared() for f in files]
    if thresholds is None:
        allscores = np.unique(np.concatenate([np.asarray(f.scores, float) for f in files]))
        if len(allscores) > 4000:                      # exact enough: every quantile step of 1/4000
            allscores = np.unique(np.quantile(allscores, np.linspace(0, 1, 4001)))
        thresholds = np.concatenate([allscores, [np.inf]])
    n_windows = sum(len(f.windows) for f in files)
    out = {}
    for name, w in PROFILES.items():
        total = np.zeros(len(thresholds))
        tp = np.zeros(len(thresholds))
        fp = np.zeros(len(thresholds))
        fn = np.zeros(len(thresholds))
        for p in prepared:
            r, a, b, c = p.raw(thresholds, w["tp"], w["fp"], w["fn"])
            total += r
            tp += a
            fp += b
            fn += c
        best = int(np.argmax(total))
        null, perfect = -w["fn"] * n_windows, w["tp"] * n_windows
        out[name] = {"score": round(100 * (total[best] - null) / (perfect - null), 2),
                     "threshold": float(thresholds[best]), "tp": int(tp[best]), "fp": int(fp[best]),
                     "fn": int(fn[best])}
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
