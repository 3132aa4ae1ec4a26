"""Probes inside revwatch: build them from config, schedule them (APScheduler: interval, jitter, no overlapping
runs, per-probe timeout), and store what they see — gauges in `samples`, derived business events through the
collector's intake (durable, deduplicated by their deterministic ids) — and on /metrics."""
from __future__ import annotations

import logging
import threading

from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily

from probes.base import Probe, ProbeResult, ProbeRunner, build_probe, probe_settings, sample_rows
from probes.brokers import RabbitMQProbe, RedisProbe
from probes.http import HttpProbe
from probes.odoo import OdooProbe
from revwatch.ingest import EventSink

log = logging.getLogger("revwatch.probes")
REGISTRY: dict[str, type[Probe]] = {p.type: p for p in (OdooProbe, RabbitMQProbe, RedisProbe, HttpProbe)}


def check_probe_configs(configs) -> None:
    """Validate every configured probe's type and settings without connecting (the config boundary: a bad probe
    is a config error of every command, never a traceback when the server builds its services)."""
    for c in configs:
        probe_settings(c, REGISTRY)


class ProbeService:
    """All configured probes of one server."""

    def __init__(self, configs, store, intake: EventSink | None = None, metrics=None):
        self.store, self.intake = store, intake
        self.configs = {c.name: c for c in configs}
        self.latest: dict[tuple[str, str, tuple], float] = {}
        self.last_results: dict[str, dict] = {}
        self._lock = threading.Lock()
        self.http_latency = None
        if metrics is not None:
            self.http_latency = Histogram("revwatch_probe_http_latency_seconds", "HTTP synthetic check latency",
                                          ["probe"], registry=metrics.registry,
                                          buckets=(.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
            metrics.register(self)
        self.runners = {}
        for c in configs:
            probe = build_probe(c, REGISTRY, state=store)
            self.runners[c.name] = ProbeRunner(probe, c.timeout.total_seconds(), self.record)

    def record(self, probe: Probe, result: ProbeResult, up: bool, seconds: float) -> None:
        """Store a run's samples and events; remember them for /metrics and `probes run`."""
        rows = sample_rows(probe, result, up, seconds)
        try:
            self.store.insert("samples", rows, ["Name", "Labels", "Value", "Timestamp", "Probe"])
        except Exception as e:          # the store being down must not kill the probe loop
            log.warning("cannot store samples of probe %s: %s", probe.name, e)
        accepted = duplicates = 0
        if result.events and self.intake is not None:
            try:
                submitted = self.intake.submit_events(result.events)
                accepted, duplicates = submitted.accepted, submitted.duplicates
                for _, error, _ in submitted.rejected:
                    log.warning("probe %s produced an invalid event (%s)", probe.name, error)
            except Exception as e:       # spool full / disk error: keep the probe's cursor, read again next run
                log.warning("cannot spool the events of probe %s (%s); they will be read again", probe.name, e)
                result.on_stored.clear()
        if self.intake is not None or not result.events:
            result.commit()
        if self.http_latency is not None and probe.type == "http":
            for s in result.samples:
                if s.name == "http_check_latency_seconds":
                    self.http_latency.labels(probe.name).observe(s.value)
        with self._lock:
            for name, labels, value, _, _ in rows:
                self.latest[(name, probe.name, tuple(sorted(labels.items())))] = value
            self.last_results[probe.name] = {
                "probe": probe.name, "type": probe.type, "up": up, "seconds": round(seconds, 3),
                "samples": [{"name": n, "labels": lbl, "value": v} for n, lbl, v, _, _ in rows],
                "events": len(result.events), "events_accepted": accepted, "events_duplicates": duplicates,
                "notes": result.notes}

    def schedule(self, scheduler) -> None:
        """Add one job per probe, on its interval or cron expression (max_instances=1: never overlapped)."""
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger
        for name, runner in self.runners.items():
            c = self.configs[name]
            jitter = int(c.jitter.total_seconds()) or None
            trigger = (CronTrigger.from_crontab(c.cron, timezone="UTC") if c.cron else
                       IntervalTrigger(seconds=c.interval.total_seconds(), jitter=jitter, timezone="UTC"))
            if c.cron and jitter:
                trigger.jitter = jitter
            scheduler.add_job(runner, trigger, id=f"probe-{name}", max_instances=1, coalesce=True,
                              misfire_grace_time=max(1, int(c.interval.total_seconds())))

    def run_once(self) -> list[dict]:
        """Run every probe once, now (concurrently), and return what each saw."""
        threads = [threading.Thread(target=r) for r in self.runners.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return [self.last_results[n] for n in self.runners if n in self.last_results]

    # prometheus_client collector: latest sample of every probe series
    def describe(self):
        return []

    def collect(self):
        with self._lock:
            items = list(self.latest.items())
        families: dict[str, GaugeMetricFamily] = {}
        for (name, _probe, labels), value in items:
            keys = tuple(k for k, _ in labels)
            fam = families.get((name, keys))
            if fam is None:
                metric = f"revwatch_probe_{name.removeprefix('probe_')}"   # probe_up → revwatch_probe_up
                fam = GaugeMetricFamily(metric, f"probe sample {name}", labels=list(keys))
                families[(name, keys)] = fam
            fam.add_metric([v for _, v in labels], value)
        yield from families.values()
