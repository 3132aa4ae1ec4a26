"""Shape anomalies inside the normal range: the left matrix-profile discord, one point at a time.

For the subsequence of the last `m` values, the z-normalised Euclidean distance to its nearest neighbour among the
earlier subsequences of the last `history` points (outside an exclusion zone of m/4, so a subsequence is not its own
neighbour) — the *left matrix profile* of Yeh et al. (Matrix Profile I, 2016), the quantity `stumpy.stumpi`
maintains incrementally. A heartbeat with one malformed beat, a daily curve with the wrong shape, a sensor that
starts oscillating: every value is in range (level and spike rules see nothing), but that stretch resembles nothing
seen before, so its distance to its nearest neighbour is large.

Why not stumpy at run time: its kernels are numba-compiled on first use in every process, which takes minutes on a
busy small machine — the online watcher would stall. This is the same quantity with numpy only, O(history · m) per
point (about 30–80 µs for the defaults); bench/anomaly_eval.py checks it against `stumpy.stump`'s left matrix
profile, and tests against a brute-force definition.

The window `m` is not a knob: it is estimated from the series' own prefix (the first autocorrelation peak above 0.3,
i.e. the cycle length, at least 8 and short enough to show three times in the prefix — a heartbeat sampled at
250 Hz has a cycle of ~200 points, which a cap of 96 cut to half a beat); a series without a cycle gets 32.
"""
from __future__ import annotations

import math

import numpy as np

M_DEFAULT = 32
M_MIN = 8                 # shortest window: a shape needs a few points
MAX_ABS = 1e100           # larger values would overflow the dot products: not fed (the level rules score them)
HISTORY = 2000            # points of the past a subsequence is compared with (memory and time per point)


def estimate_window(prefix: np.ndarray) -> int:
    """The cycle length of a series prefix: the lag of the first autocorrelation peak above 0.3 among the lags from
    M_MIN to a third of the prefix (a cycle that shows at least three times), else M_DEFAULT."""
    return estimate_cycle(prefix)[0]


def estimate_cycle(prefix: np.ndarray) -> tuple[int, bool]:
    """(window, periodic): the window as `estimate_window`, and whether the prefix is a cycle rather than a
    wandering level — the autocorrelation falls below 0 before rising to that peak (a cycle is anti-correlated
    with itself half a period on; a random walk or a slow drift stays positively correlated, and its first small
    bump above 0.3 is no cycle). No threshold is tuned here: 0 is the sign change, 0.3 the window's own rule."""
    x = np.asarray(prefix, float)
    x = x[np.isfinite(x) & (np.abs(x) < MAX_ABS)]
    if len(x) < 4 * M_MIN or np.std(x) == 0:
        return M_DEFAULT, False
    x = x - x.mean()
    n = len(x)
    f = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(f * np.conj(f))[:n]
    acf = acf / acf[0]
    for lag in range(M_MIN, n // 3):
        if acf[lag] > 0.3 and acf[lag] >= acf[lag - 1] and acf[lag] >= acf[lag + 1]:
            return lag, bool(acf[:lag].min() < 0)
    return M_DEFAULT, False


def estimate_noise(prefix: np.ndarray) -> float:
    """The noise standard deviation of a series prefix: the median absolute deviation of its second differences
    ÷ 0.6745 ÷ √6 (0.6745 is a normal's MAD, √6 the spread of x[t+1] − 2x[t] + x[t−1] for independent noise; second
    differences leak less of a smooth cycle than first ones: (2π/m)² against 2π/m of its amplitude)."""
    x = np.asarray(prefix, float)
    x = x[np.isfinite(x) & (np.abs(x) < MAX_ABS)]
    if len(x) < 3:
        return 0.0
    h = np.diff(x, 2) / math.sqrt(6)
    return float(np.median(np.abs(h - np.median(h))) / 0.6745)


class LeftDiscord:
    """Feed values with `update`; each returns the left matrix-profile distance of the subsequence ending there
    (nan until there are enough earlier subsequences). Constant subsequences follow stumpy's convention: two flat
    ones are at distance 0, a flat and a varying one at √m.

    `noise` (the series' noise standard deviation σn, e.g. from `estimate_noise`; 0 = off) removes what noise alone
    adds to each distance, after De Paepe et al., Eliminating Noise in the Matrix Profile (ICPRAM 2019): two windows
    of the same shape, each with independent noise σn, are at squared z-normalised distance ≈ (2m+2)σn²/max(σq,σ)²
    (σq, σ the two windows' standard deviations), so that is subtracted from every squared distance before the
    minimum; on a noisy cycle the nearest neighbour of a normal window is then near 0 instead of ≈ √(2m)·σn/σq, and
    only a real change of shape stands out. `noise_spread` (σn/σq of the newest window) is how much noise alone
    spreads a pair of matching windows' distance: d² is a sum of m terms (e − e')²/σq² of variance 8σn⁴/σq⁴ each,
    so d ≈ √(2m)·σn/σq with standard deviation √(8m)σn²/σq² ÷ 2d = σn/σq. A z-score of the corrected distance
    divides by at least that (StreamDetector): on a clean cycle the corrected distances clip to 0 and their own
    spread collapses, and without the floor any small distance would score ~1."""

    def __init__(self, m: int, history: int = HISTORY, noise: float = 0.0):
        self.m, self.history = m, max(history, 4 * m)
        self.noise = noise
        self.excl = int(math.ceil(m / 4))
        cap = 2 * self.history
        self.t = np.zeros(cap)                        # values; window j = t[j:j+m], its mean/sd in mu[j], sd[j]
        self.mu, self.sd = np.zeros(cap), np.zeros(cap)
        self.qt = np.zeros(cap)                       # dot products of the newest window with every window j
        self.n = 0
        self.noise_spread = 0.0                       # σn/σq: the spread noise alone gives the newest distance

    def update(self, x: float) -> float:
        m = self.m
        if self.n == len(self.t):                     # keep the newest `history` values (amortised O(1))
            drop = self.n - self.history
            for a in (self.t, self.mu, self.sd, self.qt):
                a[:len(a) - drop] = a[drop:].copy()
            self.n -= drop
        t = self.t
        t[self.n] = x
        self.n += 1
        n = self.n
        if n < m:
            return math.nan
        last = n - m                                  # start of the newest subsequence
        q = t[last:n]
        qmu, qsd = float(q.mean()), float(q.std())
        self.mu[last], self.sd[last] = qmu, qsd
        qt = self.qt
        if last == 0:
            qt[0] = float(q @ q)
        else:
            # STOMP's update (Zhu et al. 2016): each dot product from the previous one in O(1)
            qt[1:last + 1] = qt[:last] - t[:last] * t[last - 1] + t[m:last + m] * x
            qt[0] = float(t[:m] @ q)
        k = last - self.excl                          # earlier subsequences start at 0 … k-1
        if k < 1:
            return math.nan
        mu, sd = self.mu[:k], self.sd[:k]
        tol = 1e-7 * max(1.0, abs(qmu))
        flat = sd < tol
        if qsd < tol:
            d2 = np.where(flat, 0.0, m)
        else:
            corr = (qt[:k] - m * mu * qmu) / (m * np.where(flat, 1.0, sd) * qsd)
            d2 = np.where(flat, m, 2 * m * (1 - np.clip(corr, -1.0, 1.0)))
            if self.noise > 0:
                self.noise_spread = self.noise / qsd
                d2 = d2 - np.where(flat, 0.0, (2 * m + 2) * self.noise * self.noise / np.maximum(sd, qsd) ** 2)
        return float(math.sqrt(max(0.0, float(d2.min()))))
