"""Probes: the real RabbitMQ and Redis on loopback, HTTP checks, scheduler behaviour, credential hygiene and the
probe service (with the Odoo probe against its test double; the Odoo probe itself is in test_odoo_probe.py)."""
import http.server
import json
import shutil
import subprocess
import threading
import time
import uuid

import httpx
import pytest

from probes.base import Probe, ProbeConfigError, ProbeResult, ProbeRunner, Sample, build_probe
from probes.brokers import RabbitMQProbe, RedisProbe
from probes.http import HttpProbe
from probes.service import REGISTRY, ProbeService
from revwatch.config import ProbeConfig
from tests.support import fake_odoo
from tests.support.servers import free_port, live_server, revwatch_cmd


def samples(result):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in result.samples}


# -- brokers (the real ones on loopback) --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rabbit_management():
    """Enable the RabbitMQ management plugin when it is not (it is installed with the Debian package)."""
    def up():
        try:
            return httpx.get("http://127.0.0.1:15672/api/overview", auth=("guest", "guest"), timeout=2).status_code
        except httpx.HTTPError:
            return None
    if up() != 200 and shutil.which("rabbitmq-plugins"):
        subprocess.run(["rabbitmq-plugins", "enable", "rabbitmq_management"], capture_output=True, timeout=120)
        for _ in range(60):
            if up() == 200:
                break
            time.sleep(1)                   # a real RabbitMQ loading its management plugin: polled, 60 s at most
    if up() != 200:
        pytest.fail("RabbitMQ management API not reachable on 127.0.0.1:15672")
    return "http://127.0.0.1:15672"


def test_rabbitmq_depth_consumers_unacked(rabbit_management):
    import pika
    q = f"rw-test-{uuid.uuid4().hex[:8]}"
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
    ch = conn.channel()
    ch.queue_declare(q, auto_delete=False)
    for i in range(25):
        ch.basic_publish("", q, f"m{i}".encode())
    consumer = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
    cch = consumer.channel()
    cch.basic_qos(prefetch_count=5)
    cch.basic_consume(q, lambda *a: None, auto_ack=False)       # holds 5 messages unacked
    consumer.process_data_events(time_limit=1)
    try:
        amqp = RabbitMQProbe("rmq", RabbitMQProbe.Settings(queues=[q, "missing-q"])).run()
        s = samples(amqp)
        assert s[("rabbitmq_queue_messages", (("queue", q), ("vhost", "/")))] == 20       # ready, passive declare
        assert s[("rabbitmq_queue_consumers", (("queue", q), ("vhost", "/")))] == 1
        assert any("missing-q" in n for n in amqp.notes)
        deadline = time.time() + 30                                     # management stats refresh every few s
        while time.time() < deadline:
            mgmt = samples(RabbitMQProbe("rmq", RabbitMQProbe.Settings(queues=[q],
                                                                      management_url=rabbit_management)).run())
            if mgmt.get(("rabbitmq_queue_messages", (("queue", q), ("vhost", "/")))) == 25:
                break
            time.sleep(1)                   # the real broker's statistics refresh on their own schedule: polled
        assert mgmt[("rabbitmq_queue_messages_unacked", (("queue", q), ("vhost", "/")))] == 5
        assert mgmt[("rabbitmq_queue_messages_ready", (("queue", q), ("vhost", "/")))] == 20
    finally:
        consumer.close()
        ch.queue_delete(q)
        conn.close()


def test_redis_lists_streams_groups():
    import redis
    r = redis.Redis(host="127.0.0.1", port=6379, decode_responses=True)
    key, stream = f"rw:list:{uuid.uuid4().hex[:6]}", f"rw:stream:{uuid.uuid4().hex[:6]}"
    try:
        r.rpush(key, *range(7))
        for i in range(10):
            r.xadd(stream, {"n": i})
        r.xgroup_create(stream, "posting", id="0")
        r.xreadgroup("posting", "c1", {stream: ">"}, count=4)            # 4 delivered, not acked; 6 behind
        s = samples(RedisProbe("rd", RedisProbe.Settings(lists=[key], streams=[stream, "rw:nope"])).run())
        assert s[("redis_list_length", (("key", key),))] == 7
        assert s[("redis_stream_length", (("key", stream),))] == 10
        assert s[("redis_stream_group_pending", (("group", "posting"), ("key", stream)))] == 4
        assert s[("redis_stream_group_lag", (("group", "posting"), ("key", stream)))] == 6
    finally:
        r.delete(key, stream)


# -- HTTP ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def target():
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code = 503 if self.path == "/down" else 200
            body = b'{"status":"ok"}' if code == 200 else b"maintenance"
            self.send_response(code)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_http_check(target):
    ok = samples(HttpProbe("h", HttpProbe.Settings(url=target + "/health", body_regex='"status":"ok"')).run())
    assert ok[("http_check_success", (("url", target + "/health"),))] == 1
    assert ok[("http_check_status_code", (("url", target + "/health"),))] == 200
    assert 0 < ok[("http_check_latency_seconds", (("url", target + "/health"),))] < 5
    down = HttpProbe("h", HttpProbe.Settings(url=target + "/down")).run()
    assert samples(down)[("http_check_success", (("url", target + "/down"),))] == 0 and "status 503" in down.notes[0]
    nomatch = HttpProbe("h", HttpProbe.Settings(url=target + "/x", body_regex="nope")).run()
    assert samples(nomatch)[("http_check_success", (("url", target + "/x"),))] == 0
    closed = f"http://127.0.0.1:{free_port()}/"
    assert samples(HttpProbe("h", HttpProbe.Settings(url=closed)).run())[("http_check_up", (("url", closed),))] == 0


# -- scheduling ---------------------------------------------------------------------------------------------------
class Hang:
    """A probe run that blocks until released — a hung target, without sleeping "long enough"; `entered` is set
    once the run has begun."""

    def __init__(self):
        self.entered, self.release = threading.Event(), threading.Event()


class Scripted(Probe):
    type = "scripted"

    def __init__(self, plan):
        super().__init__("scripted", Probe.Settings())
        self.plan, self.calls = list(plan), 0

    def run(self):
        self.calls += 1
        step = self.plan.pop(0) if self.plan else "ok"
        if step == "fail":
            raise ConnectionError("connect to amqp://user:hunter2@host failed")
        if isinstance(step, Hang):
            step.entered.set()
            step.release.wait(30)
        return ProbeResult(samples=[Sample("x", 1)])


def test_timeout_overlap_backoff_and_recovery():
    seen = []
    hung = Hang()
    probe = Scripted(["fail", "fail", hung, "ok", "ok"])
    runner = ProbeRunner(probe, timeout=0.5, sink=lambda p, r, up, s: seen.append(up))
    runner()
    assert seen == [False] and "hunter2" not in runner.last_error and "user:***@" in runner.last_error
    runner()                                            # backing off (1 s): skipped
    assert probe.calls == 1 and runner.skipped == 1
    runner.skip_until = 0
    runner()                                            # second failure: backoff doubles
    assert runner.failures == 2 and runner.skip_until - time.monotonic() > 1.5
    runner.skip_until = 0
    runner()                                            # a run that hangs past the (real, 0.5 s) timeout
    assert seen[-1] is False and "timed out" in runner.last_error
    hung.release.set()
    runner.skip_until = 0
    running = Hang()
    slow = ProbeRunner(Scripted([running]), timeout=5, sink=lambda *a: None)
    t = threading.Thread(target=slow)
    t.start()
    assert running.entered.wait(10)
    slow()                                              # a second tick while the first still runs: no overlap
    running.release.set()
    t.join()
    assert slow.runs == 1 and slow.skipped == 1
    runner()                                            # recovers by itself
    assert seen[-1] is True and runner.failures == 0


def test_probe_config_errors_name_probe_and_field():
    with pytest.raises(ProbeConfigError, match="probe q: unknown type 'kafka'"):
        build_probe(ProbeConfig(name="q", type="kafka"), REGISTRY)
    with pytest.raises(ProbeConfigError, match="probe o: url: Field required"):
        build_probe(ProbeConfig(name="o", type="odoo", db="x"), REGISTRY)
    with pytest.raises(ProbeConfigError, match="probe r: colour: unknown key"):
        build_probe(ProbeConfig(name="r", type="redis", colour="red"), REGISTRY)


def test_service_stores_samples_events_and_metrics(api_factory):
    fake = fake_odoo.FakeOdoo(18)
    with live_server(fake.app) as base:
        api = api_factory({"probes": [{"name": "erp", "type": "odoo", "url": base, "db": fake_odoo.DB,
                                       "login": fake_odoo.LOGIN, "password": fake_odoo.PASSWORD, "interval": "1h"}]})
        svc: ProbeService = api.ctx.probes
        (first,) = svc.run_once()
        assert first["up"] and first["events_accepted"] == first["events"] > 0
        svc.configs["erp"]                                          # the same probe again: cursor, no new events
        (second,) = svc.run_once()
        assert second["events"] == 0
    api.drain()
    store = api.ctx.store
    assert store.query(f"SELECT count() FROM {store.table('events')} WHERE Source = 'odoo'").scalar() == \
        first["events"]
    up = store.query(f"SELECT Value FROM {store.table('samples')} WHERE Name = 'probe_up' ORDER BY Timestamp").rows
    assert [v for (v,) in up] == [1.0, 1.0]
    text = api.get("/metrics").text
    assert 'revwatch_probe_odoo_unreconciled_lines{company="Revwatch SA",currency="EUR",probe="erp"} 3.0' in text
    assert 'revwatch_probe_section_up{probe="erp",section="invoices"} 1.0' in text
    assert 'revwatch_probe_up{probe="erp",type="odoo"} 1.0' in text
    assert fake_odoo.PASSWORD not in text


def test_cli_probes_run_once_json(tmp_path, target):
    cfg = tmp_path / "rw.yaml"
    cfg.write_text(f"store: {{dsn: 'chdb://{tmp_path}/data'}}\nspool: {{dir: '{tmp_path}/spool'}}\n"
                   f"probes:\n  - {{name: web, type: http, url: '{target}/health', "
                   f"headers: {{Authorization: 'Bearer topsecret-999'}}}}\n")
    r = revwatch_cmd("probes", "run", "--once", "--json", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    (res,) = json.loads(r.stdout)
    assert res["up"] and {s["name"] for s in res["samples"]} >= {"http_check_success", "probe_up"}
    assert "topsecret-999" not in r.stdout + r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"store: {{dsn: 'chdb://{tmp_path}/data2'}}\nprobes:\n  - {{name: x, type: http}}\n")
    r = revwatch_cmd("probes", "run", "--once", "--config", str(bad))
    assert r.returncode == 2 and "probe x: url: Field required" in r.stderr


def test_https_tls_days_left_with_a_real_certificate(tmp_path):
    import ssl
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "30", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{srv.server_address[1]}/"
    try:
        res = samples(HttpProbe("tls", HttpProbe.Settings(url=url, verify_tls=False)).run())
        assert 29 < res[("http_check_tls_days_left", (("url", url),))] <= 30
        assert res[("http_check_success", (("url", url),))] == 1
        strict = HttpProbe("tls", HttpProbe.Settings(url=url)).run()      # self-signed: verification fails
        assert samples(strict)[("http_check_up", (("url", url),))] == 0
        assert "CERTIFICATE_VERIFY_FAILED" in strict.notes[0]
    finally:
        srv.shutdown()


def test_interval_and_cron_triggers():
    from apscheduler.schedulers.background import BackgroundScheduler
    from revwatch.config import ProbeConfig as PC
    svc = ProbeService([PC(name="a", type="http", url="http://127.0.0.1:9/", interval="30s", jitter="5s"),
                        PC(name="b", type="http", url="http://127.0.0.1:9/", cron="*/5 * * * *")], store=None)
    sched = BackgroundScheduler(timezone="UTC")
    svc.schedule(sched)
    jobs = {j.id: j for j in sched.get_jobs()}
    assert type(jobs["probe-a"].trigger).__name__ == "IntervalTrigger" and jobs["probe-a"].trigger.jitter == 5
    assert type(jobs["probe-b"].trigger).__name__ == "CronTrigger" and "*/5" in str(jobs["probe-b"].trigger)
    assert jobs["probe-a"].max_instances == 1
    with pytest.raises(ValueError):
        PC(name="c", type="http", cron="every five minutes")
