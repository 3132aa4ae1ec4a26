"""The metric anomaly detector (anomaly.metric) on the Numenta Anomaly Benchmark, scored with NAB's rules
(anomaly.nab, our implementation), all three profiles beside NAB's published scoreboard.

    python bench/nab.py [--data DIR] [--compare] [--jobs 2]

The corpus is looked for in --data, $REVWATCH_NAB_DIR, then ../shared/data/nab from the repository (and from its
parent, for a worktree); without it the benchmark says so and exits 0. `--compare` also scores the variants the
default was chosen against, so the choice can be re-checked.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anomaly.metric import DetectorParams, score_series  # noqa: E402
from anomaly.nab import LabelledFile, load_corpus, score_corpus  # noqa: E402

PUBLISHED = [("ARTime", 74.9, None, None), ("Numenta HTM", 70.5, 62.6, 75.2), ("CAD OSE", 69.9, 67.0, 73.2),
             ("earthgecko Skyline", 58.2, 46.2, 63.9), ("KNN CAD", 58.0, 43.4, 64.8),
             ("Relative Entropy", 54.6, 47.6, 58.8), ("Random Cut Forest", 51.7, 38.4, 59.7),
             ("Twitter ADVec", 47.1, 33.6, 53.5), ("Windowed Gaussian", 39.6, 20.9, 47.4),
             ("Etsy Skyline", 35.7, 27.1, 44.5), ("Bayesian Changepoint", 17.7, 3.2, 32.2),
             ("Random", 11.0, 1.2, 19.5), ("Null", 0.0, 0.0, 0.0)]
VARIANTS = {"default (surprise, refractory 400)": {},
            "with likelihood": {"likelihood": True},
            "surprise weighted by its rank": {"rank": 1000},
            "no step z-score": {"use_step": False},
            "no refractory period": {"refractory": 0},
            "refractory 250": {"refractory": 250},
            "level alpha 0.002": {"alpha": 0.002},
            "level alpha 0.0002": {"alpha": 0.0002}}


def find_corpus(explicit: str | None) -> Path | None:
    candidates = [explicit, os.environ.get("REVWATCH_NAB_DIR"), ROOT.parent / "shared" / "data" / "nab",
                  ROOT.parent.parent / "shared" / "data" / "nab"]
    for c in candidates:
        if c and (Path(c) / "labels" / "combined_windows.json").exists():
            return Path(c)
    return None


def _score(args):
    values, params = args
    return score_series(values, DetectorParams(**params))


def run(corpus, params: dict, jobs: int) -> tuple[dict, float]:
    t0 = time.perf_counter()
    with ProcessPoolExecutor(jobs) as ex:
        scores = list(ex.map(_score, [(v, params) for _, _, v, _ in corpus]))
    seconds = time.perf_counter() - t0
    files = [LabelledFile(n, np.array(s), w) for (n, _, _, w), s in zip(corpus, scores)]
    return score_corpus(files), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--compare", action="store_true")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    root = find_corpus(a.data)
    if root is None:
        print("NAB corpus not found (looked in --data, $REVWATCH_NAB_DIR, ../shared/data/nab); nothing to score")
        return
    corpus = load_corpus(root)
    rows = sum(len(v) for _, _, v, _ in corpus)
    variants = VARIANTS if a.compare else {"default (surprise, refractory 400)": {}}
    results = {}
    for name, params in variants.items():
        res, seconds = run(corpus, params, a.jobs)
        results[name] = {"profiles": res, "seconds": round(seconds, 2), "us_per_point": round(seconds / rows * 1e6, 2)}
    if a.json:
        print(json.dumps({"files": len(corpus), "rows": rows, "results": results,
                          "params": dataclasses.asdict(DetectorParams())}, default=float))
        return
    print(f"NAB v1.1: {len(corpus)} series, {rows} points, {sum(len(w) for *_, w in corpus)} windows ({root})")
    print(f"{'detector':42} {'standard':>9} {'low FP':>8} {'low FN':>8}")
    rows_out = [(f"revwatch: {n}", r["profiles"]["standard"]["score"], r["profiles"]["reward_low_FP_rate"]["score"],
                 r["profiles"]["reward_low_FN_rate"]["score"]) for n, r in results.items()]
    rows_out += [(n, s, lf, lfn) for n, s, lf, lfn in PUBLISHED]
    for n, s, lf, lfn in sorted(rows_out, key=lambda r: -r[1]):
        fmt = lambda x: f"{x:8.1f}" if x is not None else "       -"  # noqa: E731
        print(f"{n:42} {s:9.1f} {fmt(lf)} {fmt(lfn)}")
    for n, r in results.items():
        std = r["profiles"]["standard"]
        print(f"{n}: threshold {std['threshold']:.4f}, TP {std['tp']}, FP {std['fp']}, FN {std['fn']} (standard); "
              f"{r['us_per_point']} µs per point with {a.jobs} processes")


if __name__ == "__main__":
    main()
