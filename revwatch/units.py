"""Parsing of the human units used in config and on the command line: durations, byte sizes, instants."""
from __future__ import annotations

import datetime as dt
import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$")
_SIZE_FACTOR = {"": 1, "b": 1, "k": 1000, "ki": 1024, "m": 1000**2, "mi": 1024**2, "g": 1000**3, "gi": 1024**3,
                "t": 1000**4, "ti": 1024**4}


def parse_duration(text: str | int | float) -> dt.timedelta:
    """Parse '15m', '1h30m', '28d', '2w', '500ms' (or a number of seconds) into a timedelta."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0:
            raise ValueError("duration must not be negative")
        return dt.timedelta(seconds=text)
    if not isinstance(text, str):
        raise ValueError(f"duration must be a string like '15m', got {text!r}")
    s = text.strip()
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError(f"invalid duration {text!r} (use e.g. 30s, 15m, 6h, 28d, 2w)")
    return dt.timedelta(seconds=total)


def format_duration(td: dt.timedelta) -> str:
    """Render a timedelta in the shortest exact unit form ('5m', '1h', '28d', '90s')."""
    secs = int(td.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if secs and secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def parse_size(text: str | int) -> int:
    """Parse '1GiB', '512MiB', '10MB', '4096' into a number of bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"invalid size {text!r} (use e.g. 512MiB, 1GiB)")
    unit = (m.group(2) or "").lower().rstrip("b")
    return int(float(m.group(1)) * _SIZE_FACTOR[unit])


# The instants revwatch stores and computes with: every DateTime/DateTime64/Date column and partition key of the
# schema holds them (Date and DateTime end in 2149/2106, DateTime64(9) in 2262, and toDate() of an instant before
# 1970 is not its day), and window arithmetic (`at - 28d`) cannot overflow. Half-open: MIN <= t < MAX.
MIN_INSTANT = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
MAX_INSTANT = dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)


def parse_instant(text: str) -> dt.datetime:
    """Parse an RFC 3339 timestamp into the supported range [1970-01-01, 2100-01-01) UTC.

    A naive timestamp (no offset) is rejected, never guessed; so is an instant outside the range, including the
    year-edge ones (0001-…, 9999-…+offset) that would overflow when converted to UTC. Every route and the CLI
    parse instants here, so all of them get the same range and the same ValueError (→ 400 naming the field)."""
    if not isinstance(text, str) or not text:
        raise ValueError("timestamp must be an RFC 3339 string")
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        value = dt.datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"invalid RFC 3339 timestamp {text[:64]!r}") from None
    if value.tzinfo is None:
        raise ValueError(f"timestamp {text[:64]!r} has no timezone offset (add Z or +00:00)")
    utc: dt.datetime | None
    try:
        utc = value.astimezone(dt.timezone.utc)
    except OverflowError:
        utc = None
    if utc is None or not MIN_INSTANT <= utc < MAX_INSTANT:
        raise ValueError(f"timestamp {text[:64]!r} is outside the supported range "
                         f"{MIN_INSTANT:%Y-%m-%d} to {MAX_INSTANT:%Y-%m-%d} (UTC)")
    return utc


def utcnow() -> dt.datetime:
    """The current instant, timezone-aware UTC."""
    return dt.datetime.now(dt.timezone.utc)


def epoch_millis(t: dt.datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (truncated through its float timestamp): the integer
    instant the store's `toUnixTimestamp64Milli` columns are compared with."""
    return int(t.timestamp() * 1000)


def as_utc(value: dt.datetime) -> dt.datetime:
    """Treat a naive datetime (as ClickHouse returns them) as UTC; convert aware ones to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def iana_time_zone(name: str) -> str:
    """An IANA time zone name, checked (`Europe/Paris`); ValueError naming it otherwise."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None
    return name
