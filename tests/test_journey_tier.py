"""Journey lookups from memory (revwatch/journeys/tier.py, issue #27): the document the tier gives is the document
the store gives — compared on generated journeys with duplicates, shared link values (more than the 20 a document
lists), ties in time, amounts with and without text, spans, trace ids, events the store refused and a restart —
and the tier is off, not partial, when it does not hold everything."""
import datetime as dt
import json
import random
import subprocess
import sys
import textwrap
import time
from decimal import Decimal

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from collector.pipeline import _event_rows
from collector.rowcodec import EVENT_WIRE_COLUMNS, event_line, event_lines
from collector.rows import SpanRow
from revwatch.journeys import JourneyService, NotFound
from revwatch.journeys.tier import JourneyTier, amount_text
from revwatch.server import _served_from_memory, create_app
from revwatch.store import StoreError
from tests.support.servers import free_port, revwatch_cmd, start_serve
from tests.support.slo_data import add_events
from tests.support.waits import until
from tests.test_intake_processes import CONFIG as INTAKES_CONFIG
from tests.test_intake_processes import answers, intake_pids

CFG = """
journeys:
  p2p: {start: payment.settled, end: payment.posted, milestones: [payment.received_by_odoo]}
  r2i: {start: subscription.renewed, end: invoice.posted}
"""
TYPES = ["payment.settled", "payment.received_by_odoo", "payment.posted", "subscription.renewed", "invoice.posted",
         "webhook.failed"]
T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)


def cfg_with(**server) -> dict:
    return {**yaml.safe_load(CFG), "server": server}


def _iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def generated_events(seed: int, ids: int = 70) -> list[dict]:
    """Events of `ids` journeys: shared customers (up to ~30 IDs per value), invoices shared by pairs, amounts as
    text, as integers or absent, equal timestamps, re-sent copies."""
    rnd = random.Random(seed)
    out = []
    for i in range(ids):
        cid = f"pay_{seed}_{i}" if i % 9 else f"{rnd.getrandbits(128):032x}"[:31] + "g"    # one not-hex, 32 long
        start = T0 + dt.timedelta(minutes=rnd.randrange(0, 3 * 24 * 60))
        for k in range(rnd.randrange(1, 6)):
            at = start + dt.timedelta(seconds=rnd.choice([0, 0, 30, 600, 5400]) * k)
            attrs = {"customer_id": f"C-{rnd.randrange(3)}", "note": rnd.choice(["", "first", "ünïcode \"q\""])}
            if rnd.random() < 0.6:
                attrs["invoice_ref"] = f"INV/{seed}/{i // 2}"
            if rnd.random() < 0.2:
                attrs["payment_ref"] = cid          # a link to itself: never listed as related
            item = {"event_id": f"e{seed}-{i}-{k}", "type": rnd.choice(TYPES), "correlation_id": cid,
                    "occurred_at": _iso(at), "source": rnd.choice(["stripe", "odoo", "crm"]),
                    "attributes": {a: v for a, v in attrs.items() if v}}
            amount = rnd.choice([None, "129.00", "5", "0.10", "1000000.123456789"])
            if amount is not None:
                item.update(amount=amount, currency="EUR")
            out.append(item)
    rnd.shuffle(out)
    return out + rnd.sample(out, 15)             # re-deliveries


def _span(cid: str, trace: str, span_id: str, at: dt.datetime) -> list:
    return list(SpanRow(Timestamp=int(at.timestamp() * 1e9), TraceId=trace, SpanId=span_id, SpanName="POST /charge",
                        SpanKind="Server", ServiceName="stripe", Duration=5_000_000, CorrelationId=cid))


def _ready(tier: JourneyTier, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while tier.state == "loading" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert tier.state == "ready", tier.reason


def _doc(svc: JourneyService, cid: str, now: dt.datetime):
    try:
        return svc.lookup(cid, now=now)
    except NotFound:
        return None


def assert_same_documents(ctx, cids, now) -> int:
    """Every ID's document from the tier equals the one from the store; returns how many the tier answered."""
    store_only = JourneyService(ctx.store, ctx.journeys.journeys, ctx.journeys.policy)
    answered = 0
    for cid in cids:
        answered += ctx.journey_tier.covers(cid)
        assert _doc(ctx.journeys, cid, now) == _doc(store_only, cid, now), cid
    return answered


@pytest.mark.parametrize("seed", [1, 2])
def test_lookups_from_memory_equal_lookups_from_the_store(api_factory, seed):
    api = api_factory(CFG)
    ctx = api.ctx
    _ready(ctx.journey_tier)
    items = generated_events(seed)
    for k in range(0, len(items), 40):                     # through the collector, as senders send them
        r = api.post("/api/v1/events", json=items[k:k + 40])
        assert r.status_code in (200, 202, 207), r.text
    with_spans = sorted({i["correlation_id"] for i in items})[::7]
    ctx.intake.accept_spans([_span(c, f"{n:032x}", f"{n:016x}", T0) for n, c in enumerate(with_spans, 1)])
    ctx.intake.accept_spans([_span(f"{99:032x}", f"{99:032x}", "ab" * 8, T0)])    # a span under its trace id
    assert ctx.writer.wait_drained(60)
    cids = sorted({i["correlation_id"] for i in items}) + ["nobody", f"{99:032x}", f"{12345:032x}"]
    answered = assert_same_documents(ctx, cids, T0 + dt.timedelta(days=4))
    assert answered == len(cids) - len(with_spans) - 2        # all but the IDs with spans and the trace ids
    assert not any(ctx.journey_tier.covers(c) for c in with_spans)
    busy = max((d for d in (_doc(ctx.journeys, c, T0) for c in cids) if d), key=lambda d: len(d["related"]))
    assert max(len(r["correlation_ids"]) for r in busy["related"]) == 20     # a shared customer: capped, same 20


def test_a_restarted_server_loads_what_was_stored_and_what_the_spool_still_held(make_config, api_factory):
    cfg = make_config(CFG)
    first = create_app(cfg)
    ctx = first.state.ctx
    items = generated_events(3, ids=30)
    out = ctx.intake.submit_events(items[:100])
    assert out.accepted
    ctx.ingest.drain_now()
    ctx.intake.submit_events(items[100:])                  # acknowledged, still in the spool at "restart"
    ctx.spool.close()
    api = api_factory(CFG)                                 # same data dir: loads the store and the spool
    _ready(api.ctx.journey_tier)
    now = T0 + dt.timedelta(days=4)
    cids = sorted({i["correlation_id"] for i in items})
    before_drain = {c: _doc(api.ctx.journeys, c, now) for c in cids}
    assert api.ctx.writer.wait_drained(60)
    assert assert_same_documents(api.ctx, cids, now) == len(cids)
    assert before_drain == {c: _doc(api.ctx.journeys, c, now) for c in cids}     # the spool's part was there


def test_rows_inserted_directly_and_refused_lines_are_followed(api_factory):
    api = api_factory(CFG)
    ctx = api.ctx
    _ready(ctx.journey_tier)
    add_events(ctx.store, [("payment.settled", "pay_x", T0, {"invoice_ref": "INV/x"}),
                           ("payment.posted", "pay_x", T0 + dt.timedelta(minutes=3), {})])
    assert ctx.journey_tier.covers("pay_x")
    assert assert_same_documents(ctx, ["pay_x"], T0) == 1
    item = {"event_id": "refused-1", "type": "payment.settled", "correlation_id": "pay_y", "occurred_at": _iso(T0),
            "source": "stripe"}
    ctx.intake.submit_events([item])
    assert [e["event_id"] for e in ctx.journeys.lookup("pay_y")["timeline"]] == ["refused-1"]   # ahead of the store
    ctx.journey_tier.index_pending()
    line = ctx.journey_tier._events["pay_y"]                 # its one line
    ctx.journey_tier.forget_event_line(line)                # what the writer does when it quarantines the row
    with pytest.raises(NotFound):
        ctx.journeys.lookup("pay_y")


def test_over_its_budget_the_tier_turns_off_and_lookups_read_the_store(api_factory):
    api = api_factory(cfg_with(journey_memory_mb=1))
    ctx = api.ctx
    _ready(ctx.journey_tier)
    big = [{"event_id": f"big-{i}", "type": "payment.settled", "correlation_id": f"pay_big_{i}",
            "occurred_at": _iso(T0), "source": "stripe", "attributes": {"note": "x" * 400}} for i in range(3000)]
    for k in range(0, len(big), 500):
        ctx.intake.submit_events(big[k:k + 500])
    assert ctx.journey_tier.state == "off" and "budget" in ctx.journey_tier.reason
    assert not ctx.journey_tier.covers("pay_big_1") and ctx.journey_tier.bytes_held == 0
    assert ctx.writer.wait_drained(60)
    assert ctx.journeys.lookup("pay_big_2999")["counts"]["events"] == 1
    metrics = api.get("/metrics").text
    assert "revwatch_journey_memory_ready 0.0" in metrics


def test_the_tier_is_only_built_where_it_sees_every_event(make_config):
    assert create_app(make_config(cfg_with(journey_memory_mb=0))).state.ctx.journey_tier is None
    assert create_app(make_config(cfg_with(role="evaluator"))).state.ctx.journey_tier is None
    assert create_app(make_config(CFG)).state.ctx.journey_tier is not None


@pytest.mark.parametrize("text", ["129.00", "129.5", "0", "-0.000000001", "1000", "0.10", "12345678901.123456789",
                                  "0.0000000015", "-2.5000000015", "0.0000000019"])   # the store truncates
def test_amounts_without_text_render_as_the_store_renders_them(api_factory, text):
    api = api_factory()
    got = api.ctx.store.query("SELECT toString(toDecimal128({a:String}, 9))", {"a": text}).scalar()
    assert amount_text(Decimal(text)) == got


def test_rows_and_lines_encode_alike():
    """A row inserted by a tool reaches the tier as the line the collector would have spooled for it."""
    row = ["e1", "payment.settled", "pay_1", 1764579600123, "stripe", "", "129.00", "EUR", {"b": "2", "a": "1"}]
    cids, attrs, lines = _event_rows(["EventId", "Type", "CorrelationId", "OccurredAt", "Source", "Journey",
                                      "AmountText", "Currency", "Attributes"], [row])
    assert lines == [event_line(row)] and cids == ["pay_1"] and attrs == [{"a": "1", "b": "2"}]
    tier = JourneyTier(2**20, EVENT_WIRE_COLUMNS, event_line)
    tier._aside, tier.state = None, "ready"
    tier.add_event_lines(lines)
    (e,) = tier.events_of("pay_1")
    assert e["OccurredAt"] == dt.datetime(2025, 12, 1, 9, 0, 0, 123000) and e["Amount"] == "129.00"


def test_the_memory_estimate_is_within_twice_the_real_cost():
    """The budget is kept by an estimate of what CPython holds; measured here on 20,000 events."""
    import tracemalloc
    rows = [[f"evt_{i:08d}", "payment.settled", f"pay_{i // 3}", 1764579600000 + i, "stripe", "", "129.00", "EUR",
             {"invoice_ref": f"INV/{i // 3}", "customer_id": f"C-{i % 500}"}] for i in range(20_000)]
    tier = JourneyTier(2**30, EVENT_WIRE_COLUMNS, event_line)
    tier._aside, tier.state = None, "ready"
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    lines = [event_line(r) for r in rows]              # the lines are what the tier keeps alive
    tier.add_events([r[2] for r in rows], [r[8] for r in rows], lines)
    tier.index_pending()
    del lines
    real = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert real / 2 <= tier.bytes_held <= real * 2, (real, tier.bytes_held)


def _event(eid: str, cid: str, at: dt.datetime = T0, **fields) -> dict:
    return {"event_id": eid, "type": "payment.settled", "correlation_id": cid, "occurred_at": _iso(at),
            "source": "stripe", **fields}


def test_an_event_the_store_refuses_takes_back_the_links_only_it_carried(api_factory, monkeypatch):
    """The writer quarantines a row the store refuses: `attribute_links` never held its links, so no other ID's
    document may list its ID as related (the tier kept them: pay_ok listed pay_bad, the store did not)."""
    api = api_factory(CFG)
    ctx = api.ctx
    _ready(ctx.journey_tier)
    insert_lines = ctx.store.insert_lines

    def refusing(table, columns, payloads, dedup_token=None):
        if table == "events" and any(b'"bad-' in p for p in payloads):
            raise StoreError("Cannot parse input: refused for the test")
        return insert_lines(table, columns, payloads, dedup_token)
    monkeypatch.setattr(ctx.store, "insert_lines", refusing)
    ctx.intake.submit_events([
        _event("ok-1", "pay_ok", attributes={"invoice_ref": "INV/Q"}),
        _event("bad-1", "pay_bad", attributes={"invoice_ref": "INV/Q", "order_ref": "O-1"}),
        _event("bad-2", "pay_mixed", attributes={"invoice_ref": "INV/Q", "order_ref": "O-1"}),
        _event("ok-2", "pay_mixed", attributes={"invoice_ref": "INV/Q"})])    # keeps INV/Q, not O-1
    assert ctx.writer.wait_drained(60) and ctx.writer.quarantined == 2
    assert assert_same_documents(ctx, ["pay_ok", "pay_bad", "pay_mixed"], T0) == 3


def test_an_id_whose_only_event_was_refused_takes_new_events(api_factory):
    """Its entry emptied by the refusal, the ID's next event was appended after an empty line: every lookup of it
    then failed (orjson.JSONDecodeError, a 500)."""
    api = api_factory(CFG)
    ctx = api.ctx
    _ready(ctx.journey_tier)
    ctx.intake.submit_events([_event("refused-1", "pay_y")])
    ctx.journey_tier.index_pending()
    ctx.journey_tier.forget_event_line(ctx.journey_tier._events["pay_y"])     # what the writer does on quarantine
    ctx.intake.submit_events([_event("fixed-1", "pay_y")])                      # the sender's corrected copy
    assert [e["event_id"] for e in ctx.journeys.lookup("pay_y")["timeline"]] == ["fixed-1"]
    assert api.get("/api/v1/journeys/pay_y").status_code == 200


def _resend_past_the_dedup_memory(ctx, first: dict, second: dict) -> None:
    """`first` stored, then forgotten by the intake's dedup memory (spool.dedup_max_keys 4), then `second` — the
    same event ID with other content — accepted and stored too."""
    assert ctx.intake.submit_events([first]).accepted == 1
    ctx.ingest.drain_now()
    for i in range(6):
        ctx.intake.submit_events([_event(f"filler-{first['event_id']}-{i}", f"pay_filler_{i}")])
    assert ctx.intake.submit_events([second]).accepted == 1


def test_an_event_id_stored_twice_with_other_content_reads_as_the_store_keeps_it(api_factory):
    """A re-send with other content after the dedup memory forgot the ID (or to another intake process) is stored
    again; the store's ReplacingMergeTree keeps the copy stored last. The tier kept the first: 10.00 and INV/A
    from memory, 99.00 and INV/B from the store, before and after the merge."""
    api = api_factory(cfg_with() | {"spool": {"dedup_max_keys": 4}})
    ctx = api.ctx
    _ready(ctx.journey_tier)
    _resend_past_the_dedup_memory(
        ctx, _event("e1", "pay_c", amount="10.00", currency="EUR", attributes={"invoice_ref": "INV/A"}),
        _event("e1", "pay_c", amount="99.00", currency="EUR", attributes={"invoice_ref": "INV/B"}))
    assert ctx.writer.wait_drained(60)
    assert assert_same_documents(ctx, ["pay_c"], T0) == 1
    ctx.store.command(f"OPTIMIZE TABLE {ctx.store.table('events')} FINAL")
    assert assert_same_documents(ctx, ["pay_c"], T0) == 1
    assert ctx.journeys.lookup("pay_c", now=T0)["timeline"][0]["amount"] == "99.00"


def test_a_restart_loads_an_event_id_stored_twice_as_the_store_keeps_it(make_config, api_factory):
    """Both copies in the store (unmerged), or the second still in the spool at restart: the tier loaded the spool
    first and the store's rows in no particular order, so it kept whichever came first."""
    cfg = make_config(cfg_with() | {"spool": {"dedup_max_keys": 4}})
    first = create_app(cfg)
    ctx = first.state.ctx
    _resend_past_the_dedup_memory(ctx, _event("e1", "pay_c", amount="10.00", currency="EUR"),
                                  _event("e1", "pay_c", amount="99.00", currency="EUR"))
    ctx.ingest.drain_now()
    _resend_past_the_dedup_memory(ctx, _event("e2", "pay_d", amount="1.00", currency="EUR"),
                                  _event("e2", "pay_d", amount="2.00", currency="EUR"))   # in the spool
    ctx.spool.close()
    api = api_factory(cfg_with() | {"spool": {"dedup_max_keys": 4}})
    _ready(api.ctx.journey_tier)
    assert [x["amount"] for c in ("pay_c", "pay_d") for x in api.ctx.journeys.lookup(c, now=T0)["timeline"]] == \
        ["99.00", "2.00"]
    assert api.ctx.writer.wait_drained(60)
    assert assert_same_documents(api.ctx, ["pay_c", "pay_d"], T0) == 2


@pytest.mark.parametrize("method", ["lookup", "lookup_in_memory"])
@pytest.mark.parametrize("after", ["covers", "events_of"])
def test_a_lookup_that_the_tier_stops_covering_midway_reads_the_store(api_factory, monkeypatch, after, method):
    """The tier turns off (a feed on another thread takes it over its budget) in the middle of a lookup: after
    `covers`, the emptied tier gave no events and the lookup answered 404 for a recorded journey; after the
    events, it gave no related IDs."""
    api = api_factory(CFG)
    ctx = api.ctx
    tier = ctx.journey_tier
    _ready(tier)
    ctx.intake.submit_events([_event("r-1", "pay_r", attributes={"invoice_ref": "INV/R"}),
                              _event("r-2", "pay_s", attributes={"invoice_ref": "INV/R"})])
    assert ctx.writer.wait_drained(60)
    step = getattr(tier, after)

    def then_off(cid, **kw):
        answer = step(cid, **kw)
        with tier._lock:
            tier._turn_off("over its memory budget (the test)")
        return answer
    monkeypatch.setattr(tier, after, then_off)
    if method == "lookup_in_memory":                           # the route's on-loop path gives up: no store there
        assert ctx.journeys.lookup_in_memory("pay_r") is None
        return
    doc = ctx.journeys.lookup("pay_r")
    assert [x["event_id"] for x in doc["timeline"]] == ["r-1"] and doc["related"][0]["correlation_ids"] == ["pay_s"]


def _threaded_lookups(monkeypatch) -> list:
    """The arguments of every lookup the journey route sends to a worker thread (not the event loop)."""
    import collector.journey_routes as routes
    threaded: list = []
    real = routes.run_in_threadpool

    async def spy(fn, *a):
        threaded.append(a)
        return await real(fn, *a)
    monkeypatch.setattr(routes, "run_in_threadpool", spy)
    return threaded


def test_the_route_answers_a_covered_lookup_without_a_worker_thread(api_factory, monkeypatch):
    """A lookup from memory runs on the event loop (a worker thread waits for the interpreter lock behind ingest:
    one reader's p99 72 ms there, 25 ms on the loop); anything else goes to a worker thread, never the loop."""
    api = api_factory(CFG)
    ctx = api.ctx
    _ready(ctx.journey_tier)
    ctx.intake.submit_events([_event("t-1", "pay_t", attributes={"invoice_ref": "INV/T"})])
    threaded = _threaded_lookups(monkeypatch)
    assert api.get("/api/v1/journeys/pay_t").json()["counts"]["events"] == 1
    assert api.get("/api/v1/journeys/nobody-at-all").status_code == 404
    assert threaded == []
    api.drain()
    ctx.intake.accept_spans([_span("pay_t", "f" * 32, "e" * 16, T0)])      # now it has spans: the store
    assert api.get("/api/v1/journeys/pay_t").status_code == 200 and threaded == [("pay_t",)]


def test_a_spool_that_cannot_be_read_at_start_turns_the_tier_off(make_config):
    """The load thread reads the spool's unstored records while the writer drains it (and removes its segments);
    an error there killed the thread outside `load`'s guard: the tier stayed "loading" for ever, keeping every
    later feed aside."""
    app = create_app(make_config(CFG))
    ctx = app.state.ctx

    def unreadable():
        raise FileNotFoundError("seg-000000000001.wal (the writer removed it)")
    ctx.spool.pending_records = unreadable
    with TestClient(app):
        deadline = time.monotonic() + 10
        while ctx.journey_tier.state == "loading" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ctx.journey_tier.state == "off" and "spool" in ctx.journey_tier.reason


def test_what_is_kept_aside_while_loading_counts_against_the_budget():
    """Feeds that arrive while the tier loads were kept as handed over — orjson's lines with their 4 KiB buffers
    — and never counted: 20,000 events took ~80 MB aside a 1 MiB tier, off only once the load ended."""
    import tracemalloc
    tier = JourneyTier(2**20, EVENT_WIRE_COLUMNS, event_line)         # still loading
    rows = [[f"e{i}", "payment.settled", f"pay_{i}", 1764579600000 + i, "stripe", "", "1.00", "EUR", {}]
            for i in range(20_000)]
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for k in range(0, len(rows), 1000):
        part = rows[k:k + 1000]
        tier.add_events([r[2] for r in part], [r[8] for r in part], event_lines(part))
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert tier.state == "off" and "loading" in tier.reason and held < 2 * 2**20, held


def test_a_large_journey_takes_a_store_read_turn_though_answered_from_memory(api_factory):
    """Memory-read turns (150/s, eight at once) assume a fraction of a millisecond per read; a lookup from memory
    costs ~46 µs per event, so a 5,000-event journey (~0.24 s) took one too: readers of it could take every core
    from ingest."""
    api = api_factory(CFG)
    ctx = api.ctx
    _ready(ctx.journey_tier)
    ctx.intake.submit_events([_event(f"b{i}", "pay_big", T0 + dt.timedelta(seconds=i),
                                     attributes={"invoice_ref": f"INV/{i}"}) for i in range(5000)])
    ctx.intake.submit_events([_event("s1", "pay_small"), _event("s2", "pay/small ü")])
    ctx.journey_tier.index_pending()        # (what the writer does once caught up: many pending is not cheap)
    from_memory = _served_from_memory(ctx)
    assert from_memory({"path": "/api/v1/journeys/pay_small", "query_string": b""})
    assert from_memory({"path": "/api/v1/journeys/pay/small ü", "query_string": b""})     # the decoded path
    assert api.get("/api/v1/journeys/pay%2Fsmall%20%C3%BC").json()["timeline"][0]["event_id"] == "s2"
    assert ctx.journey_tier.covers("pay_big")                         # answered from memory,
    assert not from_memory({"path": "/api/v1/journeys/pay_big", "query_string": b""})   # at a store read's pace


def test_with_intake_processes_a_conflicting_resend_reads_as_the_store_keeps_it(tmp_path):
    """Each intake process remembers only the IDs it accepted: an event ID re-sent with other content to the other
    one is stored again, no dedup horizon needed. The owner's tier kept the first copy stored, the store's read
    the last (5 of 40 journeys differed in one run). Documents from the running owner (the tier) are compared
    with a store-only lookup of the same store afterwards."""
    port, intake = free_port(), free_port()
    cfg = tmp_path / "rw.yaml"
    cfg.write_text(INTAKES_CONFIG.format(tmp=tmp_path, port=port, intake=intake) + CFG)
    key = revwatch_cmd("keys", "create", "--scope", "ingest", "--config", str(cfg)).stdout.strip().split()[-1]
    read = revwatch_cmd("keys", "create", "--scope", "read", "--config", str(cfg)).stdout.strip().split()[-1]
    base, ingest = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{intake}"
    hdr, rd = {"Authorization": f"Bearer {key}"}, {"Authorization": f"Bearer {read}"}
    items = generated_events(5, ids=40)
    cids = sorted({i["correlation_id"] for i in items})
    parts = ("timeline", "related", "counts", "systems", "errors")     # "journeys" depends on now
    owner = start_serve(cfg, base, 60)

    def documents() -> dict:
        return {c: {k: v for k, v in httpx.get(f"{base}/api/v1/journeys/{c}", headers=rd).json().items() if k in parts}
                for c in cids}
    try:
        until(lambda: len(intake_pids(owner.pid)) == 2 and answers(ingest + "/readyz"), 90, "two intake processes")
        until(lambda: "revwatch_journey_memory_ready 1.0" in httpx.get(f"{base}/metrics", headers=rd).text, 60,
              "the tier loaded")
        for k in range(0, len(items), 10):
            with httpx.Client(timeout=30) as c:           # a new connection per batch: spread over the processes
                assert c.post(f"{ingest}/api/v1/events", json=items[k:k + 10], headers=hdr).status_code == 200
        for item in items[:10]:
            for _ in range(3):
                with httpx.Client(timeout=30) as c:
                    c.post(f"{ingest}/api/v1/events", headers=hdr,
                           json=[dict(item, amount="777.00", currency="EUR", attributes={"invoice_ref": "INV/2"})])
        seen: list[dict] = [{}]

        def settled() -> bool:                             # the same documents twice, a second apart
            time.sleep(1)
            seen.append(documents())
            return seen[-1] == seen[-2] and all("timeline" in d for d in seen[-1].values())
        until(settled, 60, "every journey stored")
        assert "revwatch_journey_memory_ready 1.0" in httpx.get(f"{base}/metrics", headers=rd).text
    finally:
        owner.terminate()
        owner.wait(60)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import datetime as dt, json, yaml
        from revwatch.journeys import JourneyService
        from revwatch.store import open_store
        journeys = yaml.safe_load({CFG!r})["journeys"]
        from revwatch.config import JourneyConfig
        svc = JourneyService(open_store("chdb://{tmp_path}/data", "revwatch"),
                             {{n: JourneyConfig(**j) for n, j in journeys.items()}},
                             {{n: dt.timedelta(hours=1) for n in journeys}})
        print(json.dumps({{c: {{k: v for k, v in svc.lookup(c).items() if k in {parts!r}}} for c in {cids!r}}}))
    """)], capture_output=True, text=True, timeout=120)
    from_store = json.loads(out.stdout) if out.stdout else out.stderr
    assert isinstance(from_store, dict), from_store
    assert [c for c in cids if from_store[c] != seen[-1][c]] == []


def test_under_ingest_load_lookups_from_memory_do_not_queue_behind_store_reads(api_factory):
    """Issue #27's fourth failure: ten people reading during a webhook storm waited seconds, because every journey
    lookup was a store read rationed at `reads_per_second_under_ingest`. A lookup the tier covers takes a
    memory-read turn (150/s): twenty of them at a store rate of 1/s are not held, while four searches are."""
    api = api_factory(cfg_with(reads_per_second_under_ingest=1))
    ctx = api.ctx
    _ready(ctx.journey_tier)
    ctx.intake.submit_events(generated_events(5, ids=20))
    ctx.journey_tier.index_pending()
    cids = sorted(ctx.journey_tier._events)
    assert len(cids) == 20
    gate, paced = ctx.priority, ctx.metrics.reads_paced_seconds_total

    def busy():                                            # ingest is busy (200 requests in the last window)
        for _ in range(120):
            gate.note_ingest()
        gate._bucket_start -= gate.busy_window
        assert gate.busy()
    busy()
    before = paced._value.get()
    for cid in cids:
        assert api.get(f"/api/v1/journeys/{cid}").status_code == 200
    assert paced._value.get() - before < 0.3              # twenty store turns at 1/s would have waited ~17 s
    busy()
    before = paced._value.get()
    for _ in range(4):
        assert api.get("/api/v1/journeys", params={"customer": "C-1"}).status_code == 200
    assert paced._value.get() - before > 0.5              # the fourth search waits for its store turn


def test_acknowledged_batches_wait_to_be_indexed_but_every_read_sees_them(api_factory):
    """Indexing yields to ingest: a batch is kept as it came (one join) until the writer has caught up with the
    spool or a read needs it; either way a lookup sees every acknowledged event."""
    api = api_factory(CFG)
    ctx = api.ctx
    tier = ctx.journey_tier
    _ready(tier)
    tier.add_events(["pay_p", "pay_q"], [{"invoice_ref": "INV/P"}, {"invoice_ref": "INV/P"}],
                    [event_line(["p1", "payment.settled", "pay_p", 1764579600000, "stripe", "", None, "", {
                        "invoice_ref": "INV/P"}]),
                     event_line(["q1", "payment.settled", "pay_q", 1764579600000, "stripe", "", None, "", {
                         "invoice_ref": "INV/P"}])])
    assert tier.pending_events == 2 and "pay_p" not in tier._events and tier.bytes_held + tier._pending_bytes > 0
    doc = ctx.journeys.lookup("pay_p")
    assert [x["event_id"] for x in doc["timeline"]] == ["p1"] and doc["related"][0]["correlation_ids"] == ["pay_q"]
    assert tier.pending_events == 0
    ctx.intake.submit_events([_event("w1", "pay_w")])
    assert ctx.writer.wait_drained(30)
    deadline = time.monotonic() + 10
    while tier.pending_events and time.monotonic() < deadline:    # the writer indexes once caught up
        time.sleep(0.02)
    assert tier.pending_events == 0 and "pay_w" in tier._events



def test_an_idle_writer_indexes_what_intake_processes_forwarded(api_factory):
    """With intake processes the owner may store nothing of its own: its writer, idle, indexes what they forwarded
    (else it would wait for a read, or pile up to a quarter of the budget and be indexed in one long go)."""
    api = api_factory(CFG)
    tier = api.ctx.journey_tier
    _ready(tier)
    tier.add_event_lines([event_line(["f1", "payment.settled", "pay_f", 1764579600000, "stripe", "", None, "", {}])])
    deadline = time.monotonic() + 10
    while tier.pending_events and time.monotonic() < deadline:
        time.sleep(0.02)
    assert tier.pending_events == 0 and "pay_f" in tier._events


def _ready_tier(budget: int = 2**30) -> JourneyTier:
    tier = JourneyTier(budget, EVENT_WIRE_COLUMNS, event_line)
    tier._aside, tier.state = None, "ready"
    return tier


def _lines(cid: str, n: int, prefix: str = "x", **attrs) -> tuple[list, list, list]:
    rows = [[f"{prefix}{i:06d}", "payment.settled", cid if cid else f"pay_{prefix}{i}", 1764579600000 + i, "stripe",
             "", "129.00", "EUR", {k: f"{v}{i}" for k, v in attrs.items()}] for i in range(n)]
    return [r[2] for r in rows], [r[8] for r in rows], [event_line(r) for r in rows]


def test_a_lookup_is_not_cheap_while_another_thread_indexes_what_was_pending(monkeypatch):
    """The writer indexes a large pending backlog under the tier's lock (it piled up while the spool was behind):
    `cheap` must not send a lookup to the event loop meanwhile — there `events_of` would wait for that lock, and
    every request of the process with it (the count read zero from the start of the indexing)."""
    import threading
    tier = _ready_tier()
    tier.add_events(*_lines("", 3000))
    tier.add_events(*_lines("pay_small", 1, prefix="s"))
    assert not tier.cheap("pay_small")                     # 3,001 pending: not cheap
    started, release = threading.Event(), threading.Event()
    real = tier._add_events

    def slow(*a):
        started.set()
        release.wait(10)
        real(*a)
    monkeypatch.setattr(tier, "_add_events", slow)
    indexer = threading.Thread(target=tier.index_pending)
    indexer.start()
    try:
        assert started.wait(10)
        assert not tier.cheap("pay_small")                 # still being indexed, the lock held
    finally:
        release.set()
        indexer.join(10)
    assert tier.cheap("pay_small") and tier.pending_events == 0


@pytest.mark.parametrize("how", ["one ID's many pending events", "pending grew after cheap"])
def test_the_route_never_parses_a_large_read_on_the_event_loop(api_factory, monkeypatch, how):
    """`cheap` weighs an ID's indexed lines only: its pending ones (up to 2,000) were parsed on the event loop
    (~46 us each); and what is pending can grow between `cheap` and the read (another thread's feed)."""
    api = api_factory(CFG)
    tier = api.ctx.journey_tier
    _ready(tier)
    threaded = _threaded_lookups(monkeypatch)
    if how == "one ID's many pending events":
        tier.add_events(*_lines("pay_big", 1500))
        assert tier.cheap("pay_big")                        # the middleware's turn: as before
    else:
        tier.add_events(*_lines("pay_big", 1))
        tier.index_pending()
        cheap = tier.cheap

        def then_fed(cid):
            answer = cheap(cid)
            tier.add_events(*_lines("", 5000, prefix="o"))     # an intake thread, between the check and the read
            return answer
        monkeypatch.setattr(tier, "cheap", then_fed)
    r = api.get("/api/v1/journeys/pay_big")
    assert r.status_code == 200
    assert threaded == [("pay_big",)], "a large read ran on the event loop"


def test_indexing_what_was_pending_keeps_the_budget():
    """Pending lines are charged ~200 bytes each; indexed, a new ID with new link values costs more (150 per ID,
    120 per link value). A read that indexes must turn the tier off when that takes it over its budget."""
    tier = _ready_tier()
    tier.add_events(*_lines("", 200, prefix="a", invoice_ref="INV/A", customer_id="C-A", order_ref="O-A"))
    tier.index_pending()
    tier.add_events(*_lines("", 200, prefix="b", invoice_ref="INV/B", customer_id="C-B", order_ref="O-B"))
    tier.budget_bytes = tier.bytes_held + tier._pending_bytes + 1     # the feed's check passed: within budget
    held = tier.events_of("pay_b1")
    assert tier.bytes_held <= tier.budget_bytes or (tier.state == "off" and held is None), \
        (tier.bytes_held, tier.budget_bytes, tier.state)


def test_a_read_on_the_event_loop_does_not_wait_for_a_long_hold_of_the_lock(api_factory):
    """The writer indexing a backlog holds the tier's lock; a lookup judged cheap just before must not wait for it
    on the event loop: it gives up after CHEAP_LOCK_WAIT and is answered from a worker thread."""
    api = api_factory(CFG)
    tier = api.ctx.journey_tier
    _ready(tier)
    api.ctx.intake.submit_events([_event("h1", "pay_h")])
    tier.index_pending()
    with tier._lock:                                       # another thread's long hold
        t0 = time.monotonic()
        assert tier.events_of("pay_h", cheap=True) is None
        assert time.monotonic() - t0 < 1.0
    assert [e["EventId"] for e in tier.events_of("pay_h", cheap=True)] == ["h1"]


def test_instants_at_the_edges_of_the_supported_range_read_alike(api_factory):
    """Events at the first and last milliseconds the collector accepts ([1970, 2100)) and on a leap day: the tier
    turns the spool's 'seconds.millis' text back into the instant the store returns."""
    api = api_factory(CFG)
    ctx = api.ctx
    _ready(ctx.journey_tier)
    edges = ["1970-01-01T00:00:00.001Z", "2099-12-31T23:59:59.999Z", "2028-02-29T12:00:00.5Z", "2001-09-09T01:46:40Z"]
    out = ctx.intake.submit_events([{"event_id": f"edge-{i}", "type": "payment.settled", "correlation_id": "pay_edge",
                                     "occurred_at": at, "source": "stripe"} for i, at in enumerate(edges)])
    assert out.accepted == len(edges), out.rejected
    assert ctx.writer.wait_drained(60)
    assert assert_same_documents(ctx, ["pay_edge"], T0) == 1
    doc = ctx.journeys.lookup("pay_edge", now=T0)
    assert [x["at"] for x in doc["timeline"]] == ["1970-01-01T00:00:00.001000Z", "2001-09-09T01:46:40Z",
                                                  "2028-02-29T12:00:00.500000Z", "2099-12-31T23:59:59.999000Z"]
