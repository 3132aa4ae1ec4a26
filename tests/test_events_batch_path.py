"""The large-batch path of POST /api/v1/events (issue #27) takes shortcuts; each must give what the long way gives:
the fast item check the same rows and warnings as the full check, the bulk lateness observation the same histogram,
and a spool batch as many events as `batch_rows` says (the event-key rows riding along are not counted)."""
import datetime as dt

import orjson
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.events import _valid_row, check_event, check_event_fully
from collector.limits import MAX_ATTR_KEY, MAX_ID
from collector.rowcodec import _ns, event_line, event_lines, event_records, fingerprint, fingerprints
from collector.spool import KIND_EVENT_KEYS, KIND_EVENTS_TEXT, Spool
from revwatch.metrics import Metrics, observe_many

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)


def item(**kw):
    base = {"event_id": "evt_1", "type": "payment.settled", "correlation_id": "pay_1",
            "occurred_at": "2026-11-23T10:15:02.120Z", "source": "stripe", "journey": "payment_to_posting",
            "amount": "129.00", "currency": "EUR", "attributes": {"invoice_ref": "INV/2026/00042"}}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not ...}


class Text(str):
    """A str subclass: valid for the full check, never taken by the fast one."""


# Values near every rule's edge, for every field (`...` removes the field).
ODD = [..., None, "", 0, 1.5, True, [], {}, "USD", "EU1", "EURO", "x" * MAX_ID, "x" * (MAX_ID + 1), "a\n",
       Text("payment.settled"), "\u0661\u0662", "12.5", "-0.000000001", "1e3", "EUR", "eur", "2026-11-23T10:15:02Z",
       "2026-11-23T10:15:02+05:30", "2026-11-23t10:15:02z", "2026-11-23T10:15:02", "2999-01-01T00:00:00Z",
       "1969-12-31T23:59:59Z", "2026-11-23T12:04:00Z", "2026-11-23T12:06:00Z", "Payment.Settled", "custom.thing",
       "payment.setled", " 2026-11-23T10:15:02Z", "20261123T101502Z", "2026-11-23T10:15:02.120-00:30",
       "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2099-12-31T23:59:59.999Z"]
ATTRS = [None, {}, {"k": "v"}, {"k": 7}, {"k": 1.5}, {"k": True}, {"k": None}, {"k": ["v"]}, {"": "v"},
         {"k" * (MAX_ATTR_KEY + 1): "v"}, {f"k{i}": "v" for i in range(65)}, {"b": "2", "a": "1"}, "not a map"]
FIELDS = ["event_id", "type", "correlation_id", "occurred_at", "source", "journey", "amount", "currency"]


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), st.sampled_from(ODD), max_size=4),
       st.sampled_from(ATTRS), st.booleans())
def test_fast_check_agrees_with_the_full_check(changes, attrs, extra_field):
    it = item(**changes, attributes=attrs if attrs is not None else ...)
    if extra_field:
        it["colour"] = "red"
    fast = _valid_row(it, NOW)
    row, problems, warnings = check_event_fully(it, NOW)
    if fast is None:
        assert check_event(it, NOW) == (row, problems, warnings)
        return
    assert problems == [] and fast[0] == row
    assert [(f, str(w)) for f, w in fast[1]] == [(f, str(w)) for f, w in warnings]
    assert event_line(fast[0]) == event_line(row)


def test_fast_check_takes_the_ordinary_items():
    """What senders send (canonical or custom types, amounts or none, string attributes, any offset) takes the
    fast path — the agreement test alone would pass if it never did."""
    for it in (item(), item(type="custom.thing"), item(amount=..., currency=..., journey=..., attributes=...),
               item(occurred_at="2026-11-23T11:15:02+01:00", attributes={"b": "2", "a": "1"})):
        assert _valid_row(it, NOW) is not None, it


def test_bulk_observation_is_the_same_histogram():
    values = [0.0, 0.5, 1.0, 1.0000001, 5, 14.9, 15, 3600, 86400, 7 * 86400, 7 * 86400 + 1, 1e12]
    one, bulk = Metrics(), Metrics()
    for v in values:
        one.source_lateness_seconds.labels("s").observe(v)
    observe_many(bulk.source_lateness_seconds.labels("s"), values)
    observe_many(bulk.source_lateness_seconds.labels("s"), [])
    assert samples(one) == samples(bulk) and len(samples(one)) == 13     # 11 buckets, count, sum


def samples(metrics):
    """The lateness histogram's samples (not its creation time, which differs between two registries)."""
    return [line for line in metrics.exposition().decode().splitlines()
            if line.startswith("revwatch_source_lateness_seconds") and "_created" not in line]


def test_a_batch_holds_batch_rows_events_whatever_their_keys(tmp_path):
    spool = Spool(tmp_path / "spool")
    rows = [check_event(item(event_id=f"e{i}"), NOW)[0] for i in range(10)]
    for i in (0, 5):                                   # two requests of five events: events, then their keys
        lines = [event_line(r) for r in rows[i:i + 5]]
        spool.append_records(event_records(rows[i:i + 5], lines, [fingerprint(ln) for ln in lines]))
    batch = spool.next_batch(10)
    kinds = [(r.kind, r.payload.count(b"\n") + 1) for r in batch.records]
    assert kinds == [(KIND_EVENTS_TEXT, 5), (KIND_EVENT_KEYS, 5), (KIND_EVENTS_TEXT, 5), (KIND_EVENT_KEYS, 5)]
    spool.commit(batch)
    assert spool.next_batch(10) is None


def test_remembering_a_batch_at_once_keeps_what_one_by_one_keeps():
    from collector.intake import RecentKeys
    one, many = RecentKeys(10), RecentKeys(10)         # two generations of five
    for batch in ([("a", 1), ("b", 2)], [("c", 3), ("a", 9)], [(k, i) for i, k in enumerate("defghijk")]):
        for k, v in batch:
            one.add(k, v)
        many.add_many(batch)
        assert [many.get(k) for k in "abcdefghijkz"] == [one.get(k) for k in "abcdefghijkz"]
    assert len(many) == len(one) and many.get("k") == 7 and many.get("a") is None


# Text a JSON encoder has to work for: quotes, backslashes, the separators the batch encoders look for, brackets,
# control characters, non-ASCII and astral characters.
NASTY = st.lists(st.sampled_from(['"', "\\", "],[", '"],["', "[", "]", ",", "\n", "\x00", "é", "€", "🙂", "a",
                                  "1"]), max_size=8).map("".join)
EVENT_ROWS = st.lists(st.builds(
    lambda eid, typ, ms, amount, attrs: [eid, typ, "c" + eid, ms, "src", "", amount, "EUR" if amount else "",
                                         attrs],
    NASTY.filter(bool), NASTY, st.integers(0, 4102444800000 - 1), st.sampled_from([None, "129.00", "-0.5", "7"]),
    st.dictionaries(NASTY, NASTY, max_size=3)), max_size=8)


@settings(max_examples=300, deadline=None)
@given(EVENT_ROWS)
def test_batch_encoders_give_what_the_one_row_encoders_give(rows):
    """The batch encoders of the intake (issue #27) against the one-row definitions: the same spool lines, the
    same fingerprints (event_keys holds them across restarts)."""
    lines = event_lines(rows)
    assert lines == [event_line(r) for r in rows]
    fps = fingerprints(lines)
    assert fps == [fingerprint(ln) for ln in lines]
    assert [orjson.loads(ln) for ln in lines] == [[*r[:3], f"{r[3] // 1000:010d}.{r[3] % 1000:03d}", *r[4:],
                                                   r[6] or ""] for r in rows]


HEAP_PROBE = """
import ctypes, ctypes.util, sys
from revwatch.server import keep_heap_pages
if sys.argv[1] == "keep":
    assert keep_heap_pages()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = MallInfo2
lines = [bytes(1500) + i.to_bytes(4, "little") for i in range(12_000)]    # ~18 MB of C-heap objects, as a batch
del lines
print(libc.mallinfo2().keepcost)
"""


def test_the_server_keeps_freed_heap_pages_for_the_next_batch():
    """keep_heap_pages (revwatch.server): after a batch's objects are freed, the top of the C heap stays with the
    process (glibc's default gives it back, and the next batch faults every page in again)."""
    import ctypes
    import ctypes.util
    import subprocess
    import sys
    if "libc.so.6" not in (ctypes.util.find_library("c") or ""):
        pytest.skip("not glibc: keep_heap_pages changes nothing")
    if not hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallinfo2"):
        pytest.skip("glibc older than 2.33: no mallinfo2 to read the kept heap with")
    kept = {mode: int(subprocess.run([sys.executable, "-c", HEAP_PROBE, mode], capture_output=True, text=True,
                                     check=True).stdout) for mode in ("default", "keep")}
    assert kept["keep"] > 16 * 1024**2 > 1024**2 > kept["default"], kept


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 4102444800 * 10**9 - 1))
def test_span_timestamps_are_written_as_before(ns):
    """The spool's span timestamp text (`_ns`, now cut from one decimal string) is the two-integer format
    ClickHouse was always sent: 10 digits of seconds, 9 of nanoseconds."""
    assert _ns(ns) == f"{ns // 1_000_000_000:010d}.{ns % 1_000_000_000:09d}"


def test_span_attributes_and_empty_columns_encode_as_before():
    """The span decoder's shortcuts (a string value read without asking its kind; the shared empty event and link
    columns) give the rows and spool bytes the long way gives."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from collector.correlation import CorrelationRules
    from collector.otlp import any_value_to_str, attributes_to_map, decode_traces
    from collector.rowcodec import encode_spans
    req = ExportTraceServiceRequest()
    sp = req.resource_spans.add().scope_spans.add().spans.add(trace_id=b"\1" * 16, span_id=b"\2" * 8, name="n",
                                                               start_time_unix_nano=1_700_000_000_123_456_789)
    kinds = {"s": "text", "empty": "", "i": 7, "b": False, "d": 1.5, "raw": b"\0\1"}
    for k, v in kinds.items():
        val = sp.attributes.add(key=k).value
        setattr(val, {str: "string_value", int: "int_value", bool: "bool_value", float: "double_value",
                      bytes: "bytes_value"}[type(v)], v)
    sp.attributes.add(key="arr").value.array_value.values.add().int_value = 3
    sp.attributes.add(key="unset")
    got = attributes_to_map(sp.attributes)
    assert got == {kv.key: any_value_to_str(kv.value) for kv in sp.attributes}
    assert got["empty"] == "" and got["i"] == "7" and got["b"] == "false" and got["unset"] == ""
    rows = decode_traces(req.SerializeToString(), False, CorrelationRules([], [])).rows
    with_lists = [[[] if isinstance(x, tuple) else x for x in r] for r in rows]
    assert encode_spans(rows) == encode_spans(with_lists) and b",[],[],[],[],[],[],[]," in encode_spans(rows)
