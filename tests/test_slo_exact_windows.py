"""Exact burn-rate windows (slo/edges.py): a window of length L at instant `at` holds exactly the decisions in
(at − L, at], at every second of a minute — against hand counts, against Prometheus' own `rate()` over the same
samples (real Prometheus 2.42 from Debian, data backfilled with promtool), and as a never-flapping state under a
constant error stream. On the whole-minute windows these tests replace, a "1m" window held 0–60 s of data."""
from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import subprocess
import time

import httpx
import pytest

from slo.edges import edge_bounds, epoch_ms
from slo.engine import SloEngine
from tests.support.servers import free_port
from tests.support.slo_data import add_span_list, journey, odoo_error_ratio_config

S = dt.timedelta(seconds=1)
PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
need_prom = pytest.mark.skipif(not (PROMETHEUS and PROMTOOL) and not os.environ.get("CI"),
                               reason="prometheus not installed")
CFG = odoo_error_ratio_config(page_burn=5)
WINDOWS = {"1m": dt.timedelta(minutes=1), "5m": dt.timedelta(minutes=5)}


def start_of_data() -> dt.datetime:
    """A whole-minute instant 40 minutes ago (recent enough for Prometheus' retention and head)."""
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=40)).replace(second=0, microsecond=0)


def irregular_stream(t0: dt.datetime, seconds: int) -> list[tuple[int, bool]]:
    """One span per second at hh:mm:ss.5, failures bursty and irregular (a window that is off by some seconds
    has a visibly different ratio)."""
    rnd = random.Random(22)
    out = []
    for i in range(seconds):
        p = 0.05 if (i // 37) % 3 else 0.6
        out.append((epoch_ms(t0 + i * S) * 1_000_000 + 500_000_000, rnd.random() < p))
    return out


def hand_count(spans: list[tuple[int, bool]], at: dt.datetime, length: dt.timedelta) -> tuple[int, int]:
    """(good, total) of spans with at − length < start ≤ at, by hand."""
    lo, hi = epoch_ms(at - length) * 1_000_000, epoch_ms(at) * 1_000_000
    inside = [bad for ns, bad in spans if lo < ns <= hi]
    return len(inside) - sum(inside), len(inside)


@pytest.fixture
def irregular(store, make_config):
    t0 = start_of_data()
    spans = irregular_stream(t0, 20 * 60)
    add_span_list(store, spans)
    engine = SloEngine(store, make_config(CFG))
    engine.evaluate(refresh=True)                 # rollups built once; as-of reads lay the pending minutes over
    return t0, spans, engine


def test_every_second_of_a_minute_counts_exactly_its_window(irregular):
    t0, spans, engine = irregular
    minute = t0 + dt.timedelta(minutes=12)
    for sec in range(60):
        at = minute + sec * S
        (r,) = engine.evaluate(at)
        for name in ("1m", "5m", "30m", "1h", "slo"):
            length = WINDOWS.get(name) or {"30m": dt.timedelta(minutes=30), "1h": dt.timedelta(hours=1),
                                           "slo": dt.timedelta(days=1)}[name]
            good, total = hand_count(spans, at, length)
            w = r.windows[name]
            assert (w.good, w.total) == (good, total), (at, name)
        assert r.windows["1m"].total == 60 and r.windows["5m"].total == 300


def test_sub_second_instants_and_a_journey_decided_at_its_threshold(store, make_config):
    """Journeys count at their decision time (docs/slo-policy.md): the edge of a window cuts between decisions a few
    hundred milliseconds apart, including one decided bad at start + threshold."""
    t0 = start_of_data()
    ms = dt.timedelta(milliseconds=1)
    journey(store, "good", t0, t0 + dt.timedelta(minutes=2, seconds=10, milliseconds=300))    # decided 2:10.300
    journey(store, "late", t0 + dt.timedelta(seconds=10, milliseconds=700))                   # decided 5:10.700
    cfg = make_config("""
journeys: {p2p: {start: payment.settled, end: payment.posted}}
slos: [{name: pp, journey: p2p, objective: 0.99, window: 1d, sli: {kind: journey_latency, threshold: 5m}}]
""")
    engine = SloEngine(store, cfg)
    engine.evaluate(refresh=True)

    def five(at):
        w = engine.evaluate(at)[0].windows["5m"]
        return w.good, w.total
    assert five(t0 + dt.timedelta(minutes=7, seconds=10, milliseconds=299)) == (1, 2)
    assert five(t0 + dt.timedelta(minutes=7, seconds=10, milliseconds=300)) == (0, 1)   # good left the window
    assert five(t0 + dt.timedelta(minutes=5, seconds=10, milliseconds=699)) == (1, 1)   # late not decided yet
    assert five(t0 + dt.timedelta(minutes=5, seconds=10, milliseconds=700)) == (1, 2)
    assert five(t0 + dt.timedelta(minutes=10, seconds=10, milliseconds=700)) == (0, 0)
    assert five(t0 + dt.timedelta(minutes=10, seconds=10, milliseconds=699)) == (0, 1)
    assert edge_bounds(t0 + 30 * S + 250 * ms, dt.timedelta(minutes=5)) == (
        epoch_ms(t0 - dt.timedelta(minutes=5) + 30 * S + 250 * ms) + 1, epoch_ms(t0 - dt.timedelta(minutes=4)))


def test_a_constant_error_stream_burns_constantly_and_never_flaps(store, make_config):
    """10 spans a second, every tenth failing: 10 % errors is a burn of exactly 10 in every window at every
    instant, so the page (5m & 1m ≥ 5) holds without a gap from the first full 5 minutes on."""
    t0 = start_of_data()
    spans = [(epoch_ms(t0) * 1_000_000 + 50_000_000 + k * 100_000_000, k % 10 == 0) for k in range(12 * 600)]
    add_span_list(store, spans)
    engine = SloEngine(store, make_config(CFG))
    engine.evaluate(refresh=True)
    states, burns = set(), set()
    for k in range(58):                                       # every 7.13 s for 7 minutes after the first 5
        at = t0 + dt.timedelta(minutes=5, milliseconds=7130 * k + 50)
        (r,) = engine.evaluate(at)
        states.add(r.state)
        burns.update(round(r.windows[w].burn_rate, 9) for w in ("1m", "5m"))
        assert r.windows["1m"].total == 600 and r.windows["5m"].total == 3000, at
    assert states == {"page"} and burns == {10.0}


@need_prom
def test_windows_equal_prometheus_rate_over_the_same_samples(irregular, tmp_path):
    """The same spans as two counters sampled every second (exactly what a scrape of revwatch-instrumented code
    would record), backfilled into a real Prometheus: its `rate()` ratio over [at − L, at] is the error ratio of
    the spans in (at − L, at] (a sample at every second and boundaries on samples: no extrapolation), and
    revwatch's exact window must equal it at hh:mm:01, :29 and :59."""
    t0, spans, engine = irregular
    lines = ["# HELP rw_spans Spans by outcome.", "# TYPE rw_spans counter"]
    total = errors = 0
    by_second: dict[int, list[bool]] = {}
    for ns, bad in spans:
        by_second.setdefault(ns // 1_000_000_000, []).append(bad)
    first = epoch_ms(t0) // 1000
    for sec in range(first, first + 20 * 60 + 1):
        lines.append(f'rw_spans_total{{outcome="error"}} {errors} {sec}')
        lines.append(f'rw_spans_total{{outcome="ok"}} {total - errors} {sec}')
        for bad in by_second.get(sec, []):            # spans at sec + 0.5 s appear in the next sample
            total, errors = total + 1, errors + bad
    lines.append("# EOF")
    (tmp_path / "data.om").write_text("\n".join(lines) + "\n")
    tsdb = tmp_path / "tsdb"
    subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(tmp_path / "data.om"), str(tsdb)],
                   check=True, capture_output=True)
    port = free_port()
    (tmp_path / "prom.yml").write_text("global: {scrape_interval: 1m}\n")
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prom.yml'}", f"--storage.tsdb.path={tsdb}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if http.get("/-/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        checked = 0
        for minute in (8, 13, 17):
            for sec in (1, 29, 59):
                at = t0 + dt.timedelta(minutes=minute, seconds=sec)
                (r,) = engine.evaluate(at)
                for name, length in WINDOWS.items():
                    rng = f"{int(length.total_seconds())}s"
                    q = (f'sum(rate(rw_spans_total{{outcome="error"}}[{rng}])) / sum(rate(rw_spans_total[{rng}]))')
                    res = http.get("/api/v1/query", params={"query": q, "time": at.timestamp()}).json()
                    assert res["status"] == "success", res
                    prom_ratio = float(res["data"]["result"][0]["value"][1])
                    good, n = hand_count(spans, at, length)
                    assert prom_ratio == pytest.approx((n - good) / n, abs=1e-12), (at, name)
                    assert r.windows[name].error_ratio == pytest.approx(prom_ratio, abs=1e-12), (at, name)
                    checked += 1
        assert checked == 18
    finally:
        prom.terminate()
        prom.wait(20)
