"""Message-broker probes: RabbitMQ (management HTTP API, or AMQP passive declare when there is none) and Redis
(list length, stream length, consumer-group pending and lag)."""
from __future__ import annotations

from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict

from probes.base import Probe, ProbeResult, Sample


class RabbitMQProbe(Probe["RabbitMQProbe.Settings"]):
    """Queue depth, consumers and unacked messages per queue."""
    type = "rabbitmq"

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        queues: list[str]
        vhost: str = "/"
        management_url: str | None = None     # http://host:15672 → messages, unacked, consumers
        amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
        username: str = "guest"
        password: str = "guest"

    def run(self) -> ProbeResult:
        s = self.settings
        if s.management_url:
            return self._management()
        return self._amqp()

    def _management(self) -> ProbeResult:
        s = self.settings
        assert s.management_url, "run() calls this only with a management URL"
        out = ProbeResult()
        with httpx.Client(base_url=s.management_url, auth=(s.username, s.password), timeout=10) as c:
            for q in s.queues:
                r = c.get(f"/api/queues/{quote(s.vhost, safe='')}/{quote(q, safe='')}")
                if r.status_code == 404:
                    out.notes.append(f"queue {q!r} does not exist in vhost {s.vhost!r}")
                    continue
                r.raise_for_status()
                d = r.json()
                labels = {"queue": q, "vhost": s.vhost}
                out.samples += [Sample("rabbitmq_queue_messages", d.get("messages", 0), labels),
                                Sample("rabbitmq_queue_messages_ready", d.get("messages_ready", 0), labels),
                                Sample("rabbitmq_queue_messages_unacked", d.get("messages_unacknowledged", 0), labels),
                                Sample("rabbitmq_queue_consumers", d.get("consumers", 0), labels)]
        return out

    def _amqp(self) -> ProbeResult:
        import pika
        s = self.settings
        out = ProbeResult(notes=["AMQP passive declare: unacked messages need management_url"])
        conn = pika.BlockingConnection(pika.URLParameters(s.amqp_url))
        try:
            for q in s.queues:
                ch = conn.channel()
                try:
                    ok = ch.queue_declare(queue=q, passive=True).method
                except pika.exceptions.ChannelClosedByBroker as e:
                    out.notes.append(f"queue {q!r}: {e.reply_text}")
                    continue
                labels = {"queue": q, "vhost": s.vhost}
                out.samples += [Sample("rabbitmq_queue_messages", ok.message_count, labels),
                                Sample("rabbitmq_queue_consumers", ok.consumer_count, labels)]
                if ch.is_open:
                    ch.close()
        finally:
            conn.close()
        return out


class RedisProbe(Probe["RedisProbe.Settings"]):
    """Lists (LLEN), streams (XLEN) and stream consumer groups (pending, lag)."""
    type = "redis"

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        url: str = "redis://127.0.0.1:6379/0"
        lists: list[str] = []
        streams: list[str] = []

    def run(self) -> ProbeResult:
        import redis
        s = self.settings
        out = ProbeResult()
        client = redis.Redis.from_url(s.url, socket_timeout=10, decode_responses=True)
        try:
            for key in s.lists:
                out.samples.append(Sample("redis_list_length", client.llen(key), {"key": key}))  # type: ignore[arg-type]  # redis-py: sync|async
            for key in s.streams:
                if not client.exists(key):
                    out.notes.append(f"stream {key!r} does not exist")
                    continue
                out.samples.append(Sample("redis_stream_length", client.xlen(key), {"key": key}))  # type: ignore[arg-type]
                for g in client.xinfo_groups(key):  # type: ignore[union-attr]  # redis-py annotates sync|async
                    labels = {"key": key, "group": g["name"]}
                    out.samples.append(Sample("redis_stream_group_pending", g["pending"], labels))
                    if g.get("lag") is not None:          # Redis ≥ 7: entries not yet delivered to the group
                        out.samples.append(Sample("redis_stream_group_lag", g["lag"], labels))
        finally:
            client.close()
        return out
