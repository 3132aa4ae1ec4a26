"""Size limits of ingested data, shared by ingest validation and the lookup routes so they always agree.

Anything accepted at the door can be stored and looked up again: a correlation ID ingest accepts is one the
journey route accepts, and no single item can make the store or the writer choke. Each limit is documented in
README ("Ingest limits").
"""
from __future__ import annotations

MAX_ID = 256                  # event_id, type, correlation_id, source, journey; a span's correlation ID; lookups
MAX_ATTR_KEY = 256            # characters of an attribute key (events and spans)
MAX_ATTR_VALUE = 64 * 1024    # characters of an attribute value (events and spans)
MAX_EVENT_ATTRIBUTES = 64     # attributes of one business event
MAX_SPAN_ATTRIBUTES = 256     # attributes of one span, one resource, one span event or one link
MAX_SPAN_EVENTS = 1024        # events of one span
MAX_SPAN_LINKS = 1024         # links of one span
MAX_NAME = 4096               # span name, status message, scope name/version, trace state
MAX_REJECTED_LISTED = 1000    # a reply lists at most this many rejected items (it counts all of them)
