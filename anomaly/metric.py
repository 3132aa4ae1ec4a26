"""A causal anomaly detector for one numeric series (probe gauges, journey lag p95, queue depth, invoice counts).

Causal: the score of a point uses only that point and the points before it, so it runs online (the server feeds
configured series a sample at a time) and offline (`revwatch anomaly series`) with the same numbers. O(1) time and
memory per point: every statistic is an exponentially weighted one.

Method (chosen by measurement on NAB, see bench/nab.py and the README):
1. *Surprise* of a value: its z-score against the exponentially weighted mean and spread of the values before it,
   and the same for its step from the previous value (catches a jump in a noisy level and a change of slope); the
   larger of the two, squashed to [0, 1) as z / (z + 3). This is the score by default.
2. Optional *likelihood* of the surprise (the HTM "anomaly likelihood" idea): the short-term average of surprises
   against their long-run mean and spread, its Gaussian tail mapped to [0, 1] on a log scale. Measured on NAB it
   scored lower than the surprise itself (bench/nab.py --compare), so it is off by default.
3. *Refractory period*: after an alarm the detector stays quiet for a while: one incident, one alarm (NAB counts
   only the first detection in a window and charges every other one).
"""
from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class DetectorParams:
    alpha: float = 0.0005         # weight of the newest value in the level's mean and spread
    alpha_long: float = 0.002     # … in the surprises' long-run mean and spread
    alpha_short: float = 0.3      # … in the surprises' short-term average
    warmup: int = 50              # values before any non-zero score
    refractory: int = 400         # points kept quiet after an alarm
    alarm: float = 0.55           # score that starts a refractory period
    tail_floor: float = 1e-12
    use_step: bool = True         # also score the step from the previous value
    rank: int = 0                 # >0: weigh the surprise by its rank among the last `rank` surprises
    likelihood: bool = False      # True: score the likelihood of the surprise level (measured worse on NAB)


class _Ew:
    """Exponentially weighted mean and variance (West's incremental form)."""
    __slots__ = ("a", "mean", "var", "n")

    def __init__(self, a: float):
        self.a, self.mean, self.var, self.n = a, 0.0, 0.0, 0

    def add(self, x: float) -> None:
        self.n += 1
        if self.n == 1:
            self.mean = x
            return
        a = max(self.a, 1.0 / self.n)                 # plain mean/variance until the weights take over
        d = x - self.mean
        self.mean += a * d
        self.var = (1 - a) * (self.var + a * d * d)

    def z(self, x: float, floor: float) -> float:
        return abs(x - self.mean) / max(math.sqrt(self.var), floor)


class StreamDetector:
    """Feed values in time order with `update`; each call returns that value's score in [0, 1]."""

    def __init__(self, params: DetectorParams | None = None):
        self.p = p = params or DetectorParams()
        self.level, self.step = _Ew(p.alpha), _Ew(p.alpha)
        self.s_long = _Ew(p.alpha_long)
        self.s_short: float | None = None
        self.prev: float | None = None
        self.past: deque[float] = deque()
        self.sorted_past: list[float] = []
        self.quiet = 0
        self.last_alarm = 0.0
        self.n = 0

    def update(self, value: float) -> float:
        p = self.p
        if not math.isfinite(value):
            return 0.0
        self.n += 1
        floor = 1e-9 + abs(self.level.mean) * 1e-6
        if self.prev is None:
            self.level.add(value)
            self.prev = value
            return 0.0
        step = value - self.prev
        z = self.level.z(value, floor)
        if p.use_step:
            z = max(z, self.step.z(step, floor))
        self.level.add(value)
        self.step.add(step)
        self.prev = value
        surprise = z / (z + 3.0)
        s_short = surprise if self.s_short is None else self.s_short + p.alpha_short * (surprise - self.s_short)
        self.s_short = s_short
        long_mean, long_sd = self.s_long.mean, max(math.sqrt(self.s_long.var), 1e-3)
        self.s_long.add(surprise)
        if self.n <= p.warmup:
            return 0.0
        if p.rank:
            k = len(self.sorted_past)
            above = k - bisect.bisect_left(self.sorted_past, surprise)
            tail = (above + 1) / (k + 1)
            rank_score = math.log(tail) / math.log(1.0 / (p.rank + 1))
            bisect.insort(self.sorted_past, surprise)
            self.past.append(surprise)
            if len(self.past) > p.rank:
                old = self.past.popleft()
                del self.sorted_past[bisect.bisect_left(self.sorted_past, old)]
            if self.n <= p.warmup:
                return 0.0
            return self._refract(math.sqrt(surprise * rank_score))
        if not p.likelihood:
            return self._refract(surprise)
        zz = (s_short - long_mean) / long_sd
        tail = 0.5 * math.erfc(zz / math.sqrt(2))
        return self._refract(min(1.0, math.log(max(tail, p.tail_floor)) / math.log(p.tail_floor)))

    def _refract(self, score: float) -> float:
        """Quiet after an alarm, unless something clearly bigger than that alarm comes (a real incident right after
        a noise alarm must not be hidden)."""
        p = self.p
        if self.quiet > 0:
            self.quiet -= 1
            if score < self.last_alarm + 0.1:
                return score * 0.1
        if score >= p.alarm:
            self.quiet, self.last_alarm = p.refractory, score
        return score


def score_series(values, params: DetectorParams | None = None) -> list[float]:
    """Scores for a whole series, computed causally (as if fed one value at a time)."""
    d = StreamDetector(params)
    return [d.update(float(v)) for v in values]
