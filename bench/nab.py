"""The metric anomaly detector (anomaly.metric) on the Numenta Anomaly Benchmark, scored with NAB's rules
(anomaly.nab, our implementation), all three profiles beside NAB's published scoreboard.

    python bench/nab.py [--data DIR] [--compare | --split] [--jobs 2]

The corpus is looked for in --data, $REVWATCH_NAB_DIR, then ../shared/data/nab from the repository (and from its
parent, for a worktree); without it the benchmark says so and exits 0. `--compare` also scores the variants the
default was chosen against, so the choice can be re-checked. `--split` is an overfitting check: the files are split
in two halves (alternate files in name order, so every category is in both), each variant is scored on each half
(one threshold per half, as NAB does per corpus), and the variant best on one half is reported on the other.
The detector gets each row's timestamp (its seasonal term needs them), as the CLI and the server give it.
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
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anomaly.discord import LeftDiscord  # noqa: E402
from anomaly.metric import DetectorParams, score_series, settled_cycle  # noqa: E402
from anomaly.nab import LabelledFile, load_corpus, score_corpus  # noqa: E402

PUBLISHED = [("ARTime", 74.9, 65.2, 80.4), ("Numenta HTM", 70.5, 62.6, 75.2), ("CAD OSE", 69.9, 67.0, 73.2),
             ("earthgecko Skyline", 58.2, 46.2, 63.9), ("KNN CAD", 58.0, 43.4, 64.8),
             ("Relative Entropy", 54.6, 47.6, 58.8), ("Random Cut Forest", 51.7, 38.4, 59.7),
             ("Twitter ADVec", 47.1, 33.6, 53.5), ("Windowed Gaussian", 39.6, 20.9, 47.4),
             ("Etsy Skyline", 35.7, 27.1, 44.5), ("Bayesian Changepoint", 17.7, 3.2, 32.2),
             ("Random", 11.0, 1.2, 19.5), ("Null", 0.0, 0.0, 0.0)]
DEFAULT = "default (shift + seasonal + spatial + discord)"
NO_DISCORD = "shift + seasonal + spatial, no discord"
DIFF_Z = "baseline: rolling z-score of first differences"
MP = "baseline: plain matrix-profile discord"
NO_CYCLE = "default without the cycle level"
NO_CLIMB = "default without the shape climb"
NO_NOISE = "default without the discord's noise correction"
# what the default is measured against in one run: without the discord, without the cycle level, without the shape
# climb, the two baselines
HEAD_TO_HEAD = (DEFAULT, NO_NOISE, NO_DISCORD, NO_CYCLE, NO_CLIMB, DIFF_Z, MP)
# the ways of combining the discord with the level terms that the default was chosen from, across NAB and UCR
# (bench/anomaly_eval.py --cross --candidates)
COMBINATIONS: tuple[str, ...] = (DEFAULT, NO_DISCORD, "discord z × 1 against the level terms",
                                  "discord z × 2 against the level terms", "discord z × 3 against the level terms")
# one knob taken out each (its mechanism off, or fixed at the value that needs no knob), for
# bench/anomaly_eval.py --cross --knobs: a knob stays only if taking it out costs NAB or UCR
KNOB_CHECKS: dict[str, dict] = {
    "knob out: margin (refractory holds everything)": {"margin": float("inf")},
    "knob out: season_alpha (profile = last season)": {"season_alpha": 1.0},
    "knob out: season_replace (never replace)": {"season_replace": 0.0},
    "knob out: spatial_shift (z gate only)": {"spatial_shift": float("inf")},
    "knob out: spatial_z (shift gate only)": {"spatial_z": float("inf")},
    "knob out: warmup (0)": {"warmup": 0},
    "knob out: refractory (0)": {"refractory": 0},
}
# (name, DetectorParams overrides, timestamps given)
VARIANTS: dict[str, tuple[dict, bool]] = {
    DEFAULT: ({}, True),
    NO_DISCORD: ({"discord": False}, True),
    NO_CYCLE: ({"cycle_level": False}, True),
    NO_CLIMB: ({"shape_climb": False}, True),
    NO_NOISE: ({"discord_noise": False}, True),
    DIFF_Z: ({"baseline": "diff_z"}, False),
    MP: ({"baseline": "mp_discord"}, False),
    "no timestamps (no seasonal term)": ({}, False),
    "no spatial rule": ({"spatial_tolerance": -1}, True),
    "spatial rule ungated (HTM's)": ({"spatial_z": 0}, True),
    "spatial rule gated by value z >= 4 only": ({"spatial_shift": float("inf")}, True),
    "spatial tolerance 0.02": ({"spatial_tolerance": 0.02}, True),
    "no refractory period": ({"refractory": 0}, True),
    "refractory 250": ({"refractory": 250}, True),
    "refractory 600": ({"refractory": 600}, True),
    "margin 0.05": ({"margin": 0.05}, True),
    "short mean alpha 0.1": ({"alpha_short": 0.1}, True),
    "short mean alpha 0.2": ({"alpha_short": 0.2}, True),
    "long alpha 0.0002": ({"alpha": 0.0002}, True),
    "long alpha 0.002": ({"alpha": 0.002}, True),
    "squash 1.75 (alarm 0.8 at shift 7)": ({"squash": 1.75}, True),
    "squash 2.0 (alarm 0.8 at shift 8)": ({"squash": 2.0}, True),
    "squash 3, alarm 0.7 (shift 7)": ({"squash": 3.0, "alarm": 0.7}, True),
    "warmup 50": ({"warmup": 50}, True),
    "discord z × 1 against the level terms": ({"discord_weight": 1.0}, True),
    "discord z × 2 against the level terms": ({"discord_weight": 2.0}, True),
    "discord z × 3 against the level terms": ({"discord_weight": 3.0}, True),
    **{name: (params, True) for name, params in KNOB_CHECKS.items()}}


def find_corpus(explicit: str | None) -> Path | None:
    candidates = [explicit, os.environ.get("REVWATCH_NAB_DIR"), ROOT.parent / "shared" / "data" / "nab",
                  ROOT.parent.parent / "shared" / "data" / "nab"]
    for c in candidates:
        if c and (Path(c) / "labels" / "combined_windows.json").exists():
            return Path(c)
    return None


def diff_z(values, window: int = 100) -> list[float]:
    """Baseline: z-score of each first difference against the previous `window` differences (causal)."""
    x = np.asarray(values, float)
    d = np.diff(x, prepend=x[0])
    out = [0.0] * len(x)
    for i in range(window + 1, len(x)):
        past = d[i - window:i]
        sd = past.std()
        z = abs(d[i] - past.mean()) / sd if sd > 0 else (0.0 if d[i] == past.mean() else 10.0)
        out[i] = z / (z + 3.0)
    return out


def mp_discord(values) -> list[float]:
    """Baseline: the plain left matrix-profile discord (distance to the nearest earlier shape ÷ its maximum 2√m),
    window from the series' prefix as the detector settles on it (anomaly.metric.settled_cycle), no other rule."""
    x = [float(v) for v in values]
    m = settled_cycle(x)[0]
    d = LeftDiscord(m)
    out = []
    for v in x:
        dist = d.update(v)
        out.append(0.0 if not np.isfinite(dist) else min(1.0, dist / (2 * np.sqrt(m))))
    return out


BASELINES = {"diff_z": diff_z, "mp_discord": mp_discord}


def _score(args):
    values, timestamps, params = args
    if "baseline" in params:
        return BASELINES[params["baseline"]](values)
    return score_series(values, DetectorParams(**params), timestamps)


def run(corpus, params: dict, with_time: bool, jobs: int) -> tuple[list[LabelledFile], float]:
    """Scored files of the corpus and the seconds it took."""
    t0 = time.perf_counter()
    with ProcessPoolExecutor(jobs) as ex:
        scores = list(ex.map(_score, [(v, t if with_time else None, params) for _, t, v, _ in corpus]))
    seconds = time.perf_counter() - t0
    return [LabelledFile(n, np.array(s), w) for (n, _, _, w), s in zip(corpus, scores)], seconds


def split_check(scored: dict[str, list[LabelledFile]]) -> dict:
    """Standard-profile score of every variant on each half, and the best-on-one-half variant's other-half score."""
    halves = {"A": slice(0, None, 2), "B": slice(1, None, 2)}
    table = {name: {h: score_corpus(files[sl])["standard"]["score"] for h, sl in halves.items()}
             for name, files in scored.items()}
    chosen = {}
    for tune, held in (("A", "B"), ("B", "A")):
        best = max(table, key=lambda n: table[n][tune])
        chosen[f"chosen on {tune}"] = {"variant": best, tune: table[best][tune], f"held-out {held}": table[best][held]}
    return {"halves": table, "chosen": chosen}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--compare", action="store_true")
    ap.add_argument("--split", action="store_true", help="split-half overfitting check over the variants")
    ap.add_argument("--baselines", action="store_true", help="the default beside no discord and the two baselines")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    root = find_corpus(a.data)
    if root is None:
        print("NAB corpus not found (looked in --data, $REVWATCH_NAB_DIR, ../shared/data/nab); nothing to score")
        return
    corpus = load_corpus(root)
    rows = sum(len(v) for _, _, v, _ in corpus)
    variants = VARIANTS if a.compare or a.split else \
        {n: VARIANTS[n] for n in (HEAD_TO_HEAD if a.baselines else (DEFAULT,))}
    results: dict[str, dict[str, Any]] = {}
    scored: dict[str, list[LabelledFile]] = {}
    for name, (params, with_time) in variants.items():
        files, seconds = run(corpus, params, with_time, a.jobs)
        scored[name] = files
        results[name] = {"profiles": score_corpus(files), "seconds": round(seconds, 2),
                         "us_per_point": round(seconds / rows * 1e6, 2)}
    split = split_check(scored) if a.split else None
    if a.json:
        print(json.dumps({"files": len(corpus), "rows": rows, "results": results, "split": split,
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
    if split:
        print("split-half check (standard profile; A = files 1, 3, 5, … in name order, B = files 2, 4, 6, …):")
        for n, h in split["halves"].items():
            print(f"  {n:42} A {h['A']:6.1f}  B {h['B']:6.1f}")
        for k, c in split["chosen"].items():
            print(f"  {k}: {c['variant']} → " + ", ".join(f"{h} {v:.1f}" for h, v in c.items() if h != "variant"))


if __name__ == "__main__":
    main()
