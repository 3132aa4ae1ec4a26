"""Anomaly detection measured on simulator seeds not used while developing (defaults 101-103) and on NAB.

    python bench/anomaly_eval.py [--seeds 101,102,103] [--days 2] [--skip-nab] [--dir /tmp/rw-anomaly-eval]
                                 [--business-seeds 201,202,203] [--skip-sim] [--skip-businesses]

Prints, per held-out seed: billing-variance precision / recall / F1 by cause (a finding counts when it names the
right transaction *and* the right cause), the detection delay of incremental scans (simulated clock, a scan every
30 minutes), reconciliation-risk ROC-AUC of the open payments beside the Bayes-optimal AUC (the simulator's true
failure probabilities), precision@50, the model chosen and its calibration; then the aggregate methods compared on
seasonal synthetic series, and the NAB scores (bench/nab.py).

Then three independent businesses written apart from the simulator and from each other (bench/businesses:
`agents`, a metered SaaS simulated account by account; `tables`, a box marketplace drawn from rate tables and a
collection Markov chain; `carrier`, a B2B IoT-connectivity carrier run as a discrete-event simulation with a
logistic failure law), 60 days each, on held-out seeds: billing-variance precision / recall / F1 by transaction
(their cause names are their own; how our causes map onto them is printed), and the reconciliation-risk ROC-AUC of
the payments still open at the end (outcomes arrive days later) divided by the Bayes-optimal AUC: that of the
generator's P(failure | everything a scorer can observe at the end). Where nothing is hidden and outcomes arrive
whenever they end, that is its true failure probability (agents, tables); the carrier hides a per-enterprise effect
and reports failures later than matches, so its reference integrates the effect over its posterior from the
enterprise's history and counts each payment's wait (`Carrier.observable_bayes`). The `latent` column is the AUC
of the true probabilities themselves, a ceiling no scorer can reach where an effect is hidden.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gzip
import os
import shutil
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anomaly import risk  # noqa: E402
from anomaly.aggregate import score as aggregate_score  # noqa: E402
from anomaly.billing import scan_billing  # noqa: E402
from anomaly.findings import list_findings  # noqa: E402
from collector.events import EVENT_COLUMNS, validate_event  # noqa: E402
from collector.rowcodec import event_rows_for_insert  # noqa: E402
from revwatch.sim.faults import VARIANCE_CAUSES, parse_fault  # noqa: E402
from revwatch.sim.model import Business  # noqa: E402
from revwatch.store import open_store  # noqa: E402

RECON = ["recon_missing_ref", "recon_partial", "recon_fx_fee", "recon_duplicate", "recon_malformed_ref",
         "recon_fee_netting", "recon_unknown_partner"]
END = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)


def load(store, events) -> None:
    rows = [validate_event(e)[0] for e in events]
    for i in range(0, len(rows), 50_000):
        store.insert("events", event_rows_for_insert(rows[i:i + 50_000]), EVENT_COLUMNS)


def variance_eval(store, seed: int, days: float) -> dict:
    start = END - dt.timedelta(days=days)
    faults = [parse_fault(f"{n}@day1+0h/{int(days * 24)}h:rate=0.03", start, END) for n in VARIANCE_CAUSES]
    b = Business(seed, start, 300, 150.0, faults)
    step, t, delays, first_seen = dt.timedelta(minutes=30), start, [], {}
    scans = 0
    t0 = time.perf_counter()
    while t < END + dt.timedelta(hours=2):                   # incremental scans on the simulated clock
        t += step
        events, _ = b.advance(t)
        load(store, events)
        scan_billing(store)
        scans += 1
        for (cid,) in store.query(f"SELECT DISTINCT CorrelationId FROM {store.table('anomalies')} "
                                  "WHERE Kind = 'billing_variance'").rows:
            first_seen.setdefault(cid, t)
    seconds = time.perf_counter() - t0
    found = {f["correlation_id"]: f for f in list_findings(store, kind="billing_variance", limit=10**6)[0]}
    truth = {t_["correlation_id"]: t_ for t_ in b.truth if "cause" in t_}
    by = {c: Counter() for c in VARIANCE_CAUSES.values()}
    for cid, tr in truth.items():
        f = found.get(cid)
        if f and f["cause"] == tr["cause"]:
            by[tr["cause"]]["tp"] += 1
            delays.append((first_seen[cid] - dt.datetime.fromisoformat(tr["at"].replace("Z", "+00:00")))
                          .total_seconds() / 60)
        else:
            by[tr["cause"]]["fn"] += 1
            if f:
                by.setdefault(f["cause"], Counter())["fp"] += 1
    for cid, f in found.items():
        if cid not in truth:
            by.setdefault(f["cause"], Counter())["fp"] += 1
    return {"by_cause": by, "delays_min": delays, "scans": scans, "scan_seconds": seconds}


def prf(c: Counter) -> tuple[float, float, float]:
    p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
    r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def risk_eval(store, seed: int, days: float = 4) -> dict:
    start = END - dt.timedelta(days=days)
    b = Business(seed, start, 300, 120.0, [parse_fault(f"{n}@day1+0h/{int(days * 24)}h:rate=0.02", start, END)
                                           for n in RECON])
    events, _ = b.advance(END)
    cut = (END - dt.timedelta(hours=12)).isoformat()[:19]
    load(store, [e for e in events if not (e["type"].startswith("payment.reconcil") and e["occurred_at"] >= cut)])
    t0 = time.perf_counter()
    scored, summary = risk.score_open(store, now=END)
    seconds = time.perf_counter() - t0
    truth = {p["correlation_id"]: p for p in b.payments}
    hidden = {e["correlation_id"] for e in events if e["type"].startswith("payment.reconcil")}
    rows = [(prob, int(truth[p.correlation_id]["failed"]), truth[p.correlation_id]["failure_probability"])
            for p, prob, *_ in scored if truth[p.correlation_id]["failed"] is not None and p.correlation_id in hidden]
    probs, y, bayes = (np.array(c) for c in zip(*rows))
    order = np.argsort(-probs)[:50]
    return {"n": len(y), "failures": int(y.sum()), "auc": roc_auc_score(y, probs), "bayes": roc_auc_score(y, bayes),
            "p_at_50": float(y[order].mean()), "bayes_p_at_50": float(y[np.argsort(-bayes)[:50]].mean()),
            "summary": summary, "seconds": seconds, "brier_open": float(np.mean((probs - y) ** 2))}


def business_eval(store, generate, seed: int, days: int = 60) -> dict:
    """One independent business (bench/businesses): billing-variance precision/recall/F1 by transaction and
    cause agreement, and reconciliation risk of the payments still open at the end (their outcomes arrive later)
    against the Bayes-optimal ranking: the generator's P(failure | what a scorer can observe at the end)
    (`Generated.observable_bayes`; its true probabilities where nothing is hidden), and, beside it, the AUC of
    its true probabilities themselves (`latent`: a ceiling no scorer reaches where an effect is hidden)."""
    start = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
    end = start + dt.timedelta(days=days)
    g = generate(seed, start, days)
    cut = end.isoformat()[:19]
    load(store, [e for e in g.events if e["occurred_at"] < cut])
    scan_billing(store, full=True)
    found = {f["correlation_id"]: f for f in list_findings(store, kind="billing_variance", limit=10**6)[0]}
    truth = set(g.billing_errors) & g.transactions
    tp = len(truth & set(found))
    c = Counter(tp=tp, fp=len(set(found) - truth), fn=len(truth - set(found)))
    causes = Counter(f"{g.billing_errors[cid]}→{found[cid]['cause']}" for cid in truth & set(found))
    scored, summary = risk.score_open(store, now=end)
    pays = {p["correlation_id"]: p for p in g.payments}
    observable = g.observable_bayes(end) if g.observable_bayes else {}
    rows = [(prob, int(pays[p.correlation_id]["failed"]), pays[p.correlation_id]["failure_probability"],
             observable.get(p.correlation_id, pays[p.correlation_id]["failure_probability"]))
            for p, prob, *_ in scored if p.correlation_id in pays]
    probs, y, latent, bayes = (np.array(v) for v in zip(*rows))
    return {"variance": c, "causes": causes, "n": len(y), "failures": int(y.sum()),
            "auc": roc_auc_score(y, probs), "bayes": roc_auc_score(y, bayes), "latent": roc_auc_score(y, latent),
            "summary": summary}


def aggregate_eval(trials: int = 300, seed: int = 7) -> dict:
    """Both aggregate methods on seasonal Poisson day series with injected drops / spikes (z threshold 4)."""
    rng = np.random.default_rng(seed)
    res = {"weekday_median": Counter(), "seasonal_level": Counter()}
    for _ in range(trials):
        n = 70
        days = [dt.date(2026, 1, 5) + dt.timedelta(days=k) for k in range(n)]
        prof = np.array([1, 1.1, 1, 1.05, 0.9, 0.35, 0.25])
        lam = rng.uniform(5, 200) * prof[[d.weekday() for d in days]] * np.linspace(1, rng.uniform(0.8, 1.3), n)
        counts = rng.poisson(lam).astype(float)
        truth = np.zeros(n, bool)
        for _ in range(2):
            i = int(rng.integers(30, n))
            counts[i], truth[i] = rng.poisson(lam[i] * rng.choice([0.0, 0.5, 1.6])), True
        for m in res:
            flag = np.abs(np.nan_to_num(aggregate_score(counts, days, True, m))) >= 4
            flag[:30] = False
            res[m].update(tp=int((flag & truth).sum()), fp=int((flag & ~truth).sum()), fn=int((~flag & truth).sum()))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="101,102,103")
    ap.add_argument("--days", type=float, default=2.0)
    ap.add_argument("--dir", default="/tmp/rw-anomaly-eval")
    ap.add_argument("--skip-nab", action="store_true")
    ap.add_argument("--skip-variance", action="store_true")
    ap.add_argument("--skip-aggregate", action="store_true")
    ap.add_argument("--skip-businesses", action="store_true")
    ap.add_argument("--skip-sim", action="store_true", help="skip the simulator seeds (variance and risk)")
    ap.add_argument("--business-seeds", default="201,202,203")
    ap.add_argument("--ucr", help="directory of UCR anomaly archive series (UCR_Anomaly_FullData *.txt)")
    ap.add_argument("--jobs", type=int, default=2, help="processes for the cross-benchmark")
    ap.add_argument("--candidates", action="store_true",
                    help="cross-benchmark: also the discord combinations the default was chosen from")
    ap.add_argument("--knobs", action="store_true", help="cross-benchmark: also the default with each knob taken out")
    ap.add_argument("--cross", action="store_true", help="only the cross-benchmark (NAB and UCR)")
    a = ap.parse_args()
    if a.cross:
        cross_benchmark(a.ucr, a.jobs, a.candidates, a.knobs)
        return
    shutil.rmtree(a.dir, ignore_errors=True)
    dsn = f"chdb://{a.dir}/data"
    seeds = [int(s) for s in a.seeds.split(",")]
    total = Counter()
    for seed in ([] if a.skip_sim else seeds):
        if not a.skip_variance:
            v = variance_eval(open_store(dsn, f"var_{seed}"), seed, a.days)
            print(f"\n== seed {seed}: billing variance ({a.days:g} days, 7 causes at 3 %, {v['scans']} incremental "
                  f"scans in {v['scan_seconds']:.1f} s)")
            print(f"   {'cause':20} {'TP':>5} {'FP':>4} {'FN':>4} {'precision':>9} {'recall':>7} {'F1':>6}")
            overall = Counter()
            for cause, c in sorted(v["by_cause"].items()):
                overall.update(c)
                p, r, f = prf(c)
                print(f"   {cause:20} {c['tp']:5} {c['fp']:4} {c['fn']:4} {p:9.3f} {r:7.3f} {f:6.3f}")
            p, r, f = prf(overall)
            total.update(overall)
            print(f"   {'all':20} {overall['tp']:5} {overall['fp']:4} {overall['fn']:4} {p:9.3f} {r:7.3f} {f:6.3f}")
            d = sorted(v["delays_min"])
            if d:
                print(f"   detection delay (scan every 30 simulated min): median {statistics.median(d):.0f} min, "
                      f"p95 {d[int(0.95 * (len(d) - 1))]:.0f} min, max {d[-1]:.0f} min")
        rk = risk_eval(open_store(dsn, f"risk_{seed}"), seed + 1000)
        s = rk["summary"]
        print(f"== seed {seed + 1000}: reconciliation risk (4 days, 7 causes at 2 %, outcomes of the last 12 h hidden)")
        print(f"   open payments scored {rk['n']} ({rk['failures']} will fail) in {rk['seconds']:.1f} s; model "
              f"{s['model']} v{s['version']}, chosen over the other on held-out Brier "
              f"(two time-ordered folds: {s['metrics']['choice']['brier']}); newest quarter {s['metrics']['compared']}")
        print(f"   ROC-AUC {rk['auc']:.4f} vs Bayes-optimal {rk['bayes']:.4f} = {rk['auc'] / rk['bayes']:.3f} of the "
              f"best possible; precision@50 {rk['p_at_50']:.2f} (Bayes {rk['bayes_p_at_50']:.2f}); Brier on the open "
              f"payments {rk['brier_open']:.4f}")
        print(f"   baselines on the model's held-out quarter: {s['metrics']['baselines']}")
        print("   reliability (held-out): " + ", ".join(f"{b['bin']}: {b['predicted']:.2f}→{b['observed']:.2f} "
                                                        f"(n={b['n']})" for b in s["metrics"]["reliability"]))
    if not a.skip_variance and not a.skip_sim:
        p, r, f = prf(total)
        print(f"\nbilling variance over all seeds: precision {p:.4f} recall {r:.4f} F1 {f:.4f}")
    if not a.skip_businesses:
        from bench.businesses import agents, carrier, tables  # noqa: E402
        print("\nindependent businesses (bench/businesses; held-out seeds "
              f"{a.business_seeds}; targets: F1 ≥ 0.95, ROC-AUC ≥ 0.95 × Bayes)")
        print(f"   {'business':14} {'seed':>5} {'TP':>5} {'FP':>5} {'FN':>4} {'F1':>6}  {'open':>5} {'fail':>5} "
              f"{'AUC':>6} {'Bayes':>6} {'ratio':>6} {'latent':>6}  model / top inputs")
        for name, gen in (("agents", agents.generate), ("tables", tables.generate), ("carrier", carrier.generate)):
            for seed in (int(x) for x in a.business_seeds.split(",")):
                r = business_eval(open_store(dsn, f"{name}_{seed}"), gen, seed)
                v, s = r["variance"], r["summary"]
                top = ", ".join(d["input"] for d in s["metrics"]["importance"][:4])
                print(f"   {name:14} {seed:5} {v['tp']:5} {v['fp']:5} {v['fn']:4} {prf(v)[2]:6.3f}  {r['n']:5} "
                      f"{r['failures']:5} {r['auc']:6.3f} {r['bayes']:6.3f} {r['auc'] / r['bayes']:6.3f} "
                      f"{r['latent']:6.3f}  "
                      f"{s['model']} / {top}")
                print(f"   {'':14} its causes found as ours: {dict(r['causes'].most_common(8))}")
    if not a.skip_aggregate:
        print("\naggregate (plan × currency × day) methods on 300 seasonal synthetic series, z ≥ 4:")
        for m, c in aggregate_eval().items():
            p, r, f = prf(c)
            print(f"   {m:16} TP {c['tp']} FP {c['fp']} FN {c['fn']}  precision {p:.3f} recall {r:.3f} F1 {f:.3f}")
    if not a.skip_nab:
        cross_benchmark(a.ucr, a.jobs, a.candidates, a.knobs)


def ucr_series(root: Path) -> list[tuple[str, np.ndarray, int, int, int]]:
    """UCR anomaly archive files `NNN_UCR_Anomaly_NAME_TRAIN_BEGIN_END.txt` (or `.txt.gz`; one value per line or
    whitespace separated): (name, values, training prefix length, anomaly begin, anomaly end), in name order."""
    out = []
    for f in ucr_series_files(root):
        stem = f.name.removesuffix(".gz").removesuffix(".txt")
        try:
            train, begin, end = (int(p) for p in stem.split("_")[-3:])
        except ValueError:
            continue
        opener = gzip.open if f.name.endswith(".gz") else open
        with opener(f, "rb") as fh:
            out.append((stem, np.array(fh.read().split(), dtype=float), train, begin, end))
    return out


def find_ucr(explicit: str | None) -> Path:
    """The UCR series: --ucr, $REVWATCH_UCR_DIR, ../shared/data/ucr from the repository (and from its parent, for
    a worktree), else bench/data/ucr (which holds no series: see its README for why)."""
    for c in (explicit, os.environ.get("REVWATCH_UCR_DIR"), ROOT.parent / "shared" / "data" / "ucr",
              ROOT.parent.parent / "shared" / "data" / "ucr"):
        if c and Path(c).is_dir() and ucr_series_files(Path(c)):
            return Path(c)
    return ROOT / "bench" / "data" / "ucr"


def ucr_series_files(root: Path) -> list[Path]:
    return sorted([*root.glob("*_UCR_Anomaly_*.txt"), *root.glob("*_UCR_Anomaly_*.txt.gz")], key=lambda f: f.name)


def ucr_found(scores, train: int, begin: int, end: int) -> bool:
    """Wu & Keogh's protocol: found when the highest score after the training prefix lies in [begin−100, end+100]
    (1-based positions in the file name, as the archive numbers them)."""
    s = np.asarray(scores, float)[train:]
    at = train + int(np.argmax(s)) + 1
    return begin - 100 <= at <= end + 100


def stumpy_check(corpus, files: int = 3, points: int = 3000) -> None:
    """Our incremental left matrix profile (anomaly.discord) against stumpy's on the first NAB series: stumpy's
    left nearest-neighbour index gives the distance; the largest difference is printed (numba compiles first)."""
    try:
        import stumpy
    except ImportError:
        print("   stumpy not installed: the left matrix profile is not cross-checked")
        return
    from anomaly.discord import LeftDiscord, estimate_window
    from anomaly.metric import DISCORD_PREFIX
    worst = 0.0
    for _, _, values, _ in corpus[:files]:
        t = np.asarray(values[:points], float)
        m = estimate_window(t[:DISCORD_PREFIX])
        left = stumpy.stump(t, m)[:, 2].astype(int)
        d = LeftDiscord(m, history=len(t))
        ours = np.array([d.update(v) for v in t])[m - 1:]
        for i in range(len(left)):
            if left[i] < 0 or not np.isfinite(ours[i]):
                continue
            a, b = t[i:i + m], t[left[i]:left[i] + m]
            if a.std() < 1e-7 or b.std() < 1e-7:
                continue
            ref = float(np.linalg.norm((a - a.mean()) / a.std() - (b - b.mean()) / b.std()))
            worst = max(worst, abs(ref - ours[i]) if ours[i] <= ref + 1e-9 else ours[i] - ref)
    print(f"   left matrix profile vs stumpy.stump on {files} NAB series: largest difference {worst:.2e}")


HALVES = {"A": slice(0, None, 2), "B": slice(1, None, 2)}     # alternate files in name order: every kind in both


def cross_rows(ucr_dir: str | None, names, jobs: int = 2) -> tuple[dict[str, dict], int, int]:
    """Each detector variant (bench/nab.py VARIANTS) on NAB and on the UCR series, scored once: NAB standard by NAB's
    rule over all files (its best threshold) and per half, also at the threshold the *other* half chose (held out);
    UCR accuracy over all series and per half. Returns the rows and the NAB file and UCR series counts."""
    from anomaly.nab import load_corpus, score_corpus
    from bench.nab import VARIANTS, find_corpus, run
    root = find_corpus(None)
    corpus = load_corpus(root) if root is not None else []
    ucr_root = find_ucr(ucr_dir)
    series = ucr_series(ucr_root)
    ucr_corpus = [(n, None, v, []) for n, v, *_ in series]
    rows: dict[str, dict] = {}
    ucr_done: dict[tuple, list[bool]] = {}
    for name in names:
        params, with_time = VARIANTS[name]
        r: dict = {}
        if corpus:
            files, _ = run(corpus, params, with_time, jobs)
            r["nab"] = score_corpus(files)["standard"]["score"]
            own = {h: score_corpus(files[sl])["standard"] for h, sl in HALVES.items()}
            for h, other in (("A", "B"), ("B", "A")):
                r[f"nab_{h}"] = own[h]["score"]
                r[f"nab_{h}_held"] = score_corpus(files[HALVES[h]], {"standard": own[other]["threshold"]})[
                    "standard"]["score"]
        # the UCR series have no timestamps, so the seasonal knobs cannot change their scores: scored once
        key = tuple(sorted((k, v) for k, v in params.items() if not k.startswith("season")))
        if series and key in ucr_done:
            found = ucr_done[key]
        elif series:
            files, _ = run(ucr_corpus, params, False, jobs)
            found = ucr_done[key] = [ucr_found(f.scores, tr, b, e) for f, (_, _, tr, b, e) in zip(files, series)]
        if series:
            r["found"] = found
            r["ucr"] = float(np.mean(found))
            for h, sl in HALVES.items():
                r[f"ucr_{h}"] = float(np.mean(found[sl]))
        rows[name] = r
    return rows, len(corpus), len(series)


def choose_across(rows: dict[str, dict], names) -> dict[str, dict]:
    """The variant with the best mean of NAB standard ÷ 100 and UCR accuracy on one half of *both* benchmarks,
    reported on the other half (never chosen on the numbers it is reported with)."""
    out = {}
    for tune, held in (("A", "B"), ("B", "A")):
        best = max(names, key=lambda n: rows[n][f"nab_{tune}"] / 100 + rows[n][f"ucr_{tune}"])
        r = rows[best]
        out[tune] = {"variant": best, "tune": (r[f"nab_{tune}"], r[f"ucr_{tune}"]),
                     "held": (r[f"nab_{held}"], r[f"nab_{held}_held"], r[f"ucr_{held}"]), "held_half": held}
    return out


def cross_benchmark(ucr_dir: str | None, jobs: int = 2, candidates: bool = False, knobs: bool = False) -> None:
    """The cross-benchmark table in one run: NAB standard (NAB's scoring rules) and UCR accuracy (Wu & Keogh's
    protocol) for the default detector, the detector without its discord and the two baselines on the same series;
    with `candidates`, also the ways of combining the discord that the default was chosen from (bench/nab.py
    COMBINATIONS) and the choice made on one half of both benchmarks, reported on the other; with `knobs`, the
    default with each knob taken out (bench/nab.py KNOB_CHECKS)."""
    from bench.nab import COMBINATIONS, HEAD_TO_HEAD, KNOB_CHECKS
    extra = [*(COMBINATIONS if candidates else ()), *(KNOB_CHECKS if knobs else ())]
    names = list(HEAD_TO_HEAD) + [c for c in dict.fromkeys(extra) if c not in HEAD_TO_HEAD]
    rows, n_nab, n_ucr = cross_rows(ucr_dir, names, jobs)
    print(f"\ncross-benchmark, one run: NAB v1.1 ({n_nab} files, standard profile, our implementation of NAB's "
          f"scoring) and {n_ucr} UCR anomaly archive series (Wu & Keogh's protocol); targets: NAB standard ≥ 72, "
          "UCR accuracy ≥ the matrix-profile baseline")
    print("   halves: A = files 1, 3, 5, … in name order, B = 2, 4, 6, …; 'held out' = NAB scored at the threshold "
          "the other half chose")
    print(f"   {'detector':55} {'NAB std':>7} {'held A / B':>13} {'UCR':>6} {'A / B':>11} {'found':>7}")
    for name in names:
        r = rows[name]
        nab = f"{r['nab']:7.1f} {r['nab_A_held']:6.1f} / {r['nab_B_held']:4.1f}" if "nab" in r else f"{'-':>7} {'':13}"
        ucr = (f"{r['ucr']:6.2f} {r['ucr_A']:4.2f} / {r['ucr_B']:4.2f} {sum(r['found']):3d}/{len(r['found']):<3d}"
               if "ucr" in r else f"{'-':>6}")
        print(f"   {name:55} {nab} {ucr}")
    if candidates and all("nab" in rows[n] and "ucr" in rows[n] for n in names):
        pool = [n for n in COMBINATIONS if n in rows]
        for tune, c in choose_across(rows, pool).items():
            print(f"   chosen on half {tune} (NAB {c['tune'][0]:.1f}, UCR {c['tune'][1]:.2f}): {c['variant']} → "
                  f"held-out half {c['held_half']}: NAB {c['held'][0]:.1f} (its own threshold), "
                  f"{c['held'][1]:.1f} (half {tune}'s threshold), UCR {c['held'][2]:.2f}")
    if n_nab:
        from anomaly.nab import load_corpus
        from bench.nab import find_corpus
        stumpy_check(load_corpus(find_corpus(None)))
    if n_ucr == 0:
        print("   UCR: no series found (--ucr DIR or $REVWATCH_UCR_DIR: *_UCR_Anomaly_*.txt[.gz]); not measured")


if __name__ == "__main__":
    main()
