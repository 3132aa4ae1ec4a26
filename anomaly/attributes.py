"""Features from whatever attributes a business sends: every key becomes a number, a category or text tokens.

The reconciliation-risk model (anomaly.risk) must learn failure drivers it was never told about — a payment
channel that fails, a token a bank writes inside references, a combination of both. So every attribute of a
payment (and of the invoice it names) is a candidate feature, typed by what its values look like in the training
history:

* **numeric** — at least 95 % of its non-empty values parse as finite numbers: one column `sign·log1p(|x|)` (money
  and counts are heavy-tailed) plus a missing indicator; a missing value takes the training median.
* **time** — at least 95 % of its non-empty values are ISO-8601 dates or date-times (`2026-06-15`,
  `2026-06-15T10:00:00Z`; without an offset read as UTC): one column, the signed days from the payment's settlement
  to that moment (`sign·log1p(|days|)`), plus a missing indicator. A due date, an invoice date, a service period's
  end: as text their shape is `9-9-9` for every value, and as absolute instants they never recur in the future a
  payment is scored in — relative to the payment they do ("paid 12 days after the due date").
* **category** — at most `MAX_CATEGORIES` distinct values: one-hot for each value seen at least `MIN_COUNT`
  times; anything else (a value first seen at scoring time, a rare one) is all zeros, the "other" row.
* **text** — the rest (references, memos, identifiers): character 1–3-grams of the value's *shape* (lower case,
  every run of digits replaced by one `9`), hashed into `TEXT_BUCKETS` columns. Shapes keep what generalises — a
  token such as `xb` inside `RF-XB-2231`, a reversed or re-spaced reference — and drop the serial numbers that
  would otherwise fill every bucket with noise. Beside them, the `MAX_WORDS` most frequent *words* of the shape
  (runs of two or more letters, seen on at least `MIN_COUNT` rows and not on every row) get a column each: a token
  inside a long free-text memo (`NETTING` among company names and dates) shares its hashed n-grams with everything
  else the memo says, its word column it shares with nothing.

* **value rate** — beside a numeric or text attribute whose values *recur* (the values seen at least `MIN_COUNT`
  times cover at least half of its rows: a merchant, terminal or bank code among hundreds, a card BIN, a customer
  number — not a reference or a serial), one more column: the smoothed failure rate of the earlier payments that
  carried the same value (log-odds of `(failures + RATE_PRIOR_ROWS · prior) / (payments + RATE_PRIOR_ROWS)`;
  target encoding, Micci-Barreca 2001, in CatBoost's *ordered* form: only outcomes that came before the payment
  described). Without it such a code had no door: too many values for one-hot, and its shape (`MRC-9`) is the same
  for every value once the digits are folded. The rates are counted where the other history inputs are
  (`anomaly.risk.describe_history`: the outcomes decided before the moment of its wait a payment is described at),
  so a training row and an open payment at the same step see the same share of the past — a rate over all outcomes
  (out of fold) described training payments with outcomes that came *after* them, which no open payment can have
  (measured: 0.011 lower on the carrier business, README). This module decides which attributes get the column
  (`Attribute.rated`); the rate itself comes with each row (`value_rates`).

A key present on fewer than `MIN_PRESENT` of the training rows is ignored. The encoder is fitted once, at training
time, and stored with the model: scoring encodes with the very same vocabulary, so a feature means the same at
both times (a value never seen in training is "other", never a new column). Columns are grouped per attribute, so
permutation importance and explanations speak of attributes, not of hashed columns.
"""
from __future__ import annotations

import datetime as dt
import math
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

MAX_CATEGORIES = 30        # more distinct values than this is an identifier or free text, not a category
MIN_COUNT = 5              # a category value needs this many training rows to get its own column
MIN_PRESENT = 0.02         # a key on fewer than 2 % of the rows carries too little to learn from
NUMERIC_SHARE = 0.95       # share of non-empty values that must parse for a key to be numeric
TEXT_BUCKETS = 32          # hashed n-gram columns per text attribute
MAX_WORDS = 64             # word columns per text attribute (the most frequent words of its shape)
RECURRING_SHARE = 0.5      # values seen MIN_COUNT times must cover this share of rows for a value-rate column
RATE_PRIOR_ROWS = 5.0      # the prior weighs as much as this many payments (= MIN_COUNT: a value earns its column)
PRIOR_KEY = ""             # in a row's value rates: the prior's log-odds, for a key with no rate of its own
RATED_KINDS = ("numeric", "text")   # kinds that get a value rate (a category has a column per value already)
_DIGITS = re.compile(r"\d+")
_WORD = re.compile(r"[^\W\d_]{2,}")


def _number(v: str) -> float | None:
    try:
        x = float(v)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?")


def instant(v: str) -> dt.datetime | None:
    """An ISO-8601 date or date-time as an aware UTC instant (no offset: UTC), else None."""
    v = v.strip()
    if not _ISO_TIME.fullmatch(v):
        return None
    try:
        t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


def shape(v: str) -> str:
    """The value with letter case and serial numbers taken out: `INV/2026/00042` → `inv/9/9`."""
    return _DIGITS.sub("9", v.strip().lower())


def _grams(v: str) -> set[str]:
    s = f"^{shape(v)}$"
    return {s[i:i + n] for n in (1, 2, 3) for i in range(len(s) - n + 1)}


def words(v: str) -> set[str]:
    """The words of the value's shape (letters only, two or more): `intercompany NETTING adj IN9/9` → netting, …"""
    return set(_WORD.findall(shape(v)))


def _bucket(gram: str) -> int:
    return zlib.crc32(gram.encode()) % TEXT_BUCKETS      # stable across processes (str hash() is salted)


@dataclass
class Attribute:
    """How one attribute key is encoded, learned from the training rows."""
    key: str
    kind: str                                    # numeric | time | category | text
    values: list[str] = field(default_factory=list)    # category: the values with their own column; text: words
    median: float = 0.0                          # numeric: stands in for a missing value
    # a value-rate column (numeric and text whose values recur); False also for models stored before it existed
    rated: bool = False

    @property
    def width(self) -> int:
        own = {"numeric": 2, "time": 2, "category": len(self.values),
               "text": TEXT_BUCKETS + len(self.values)}[self.kind]
        return own + self.rated

    @cached_property
    def columns(self) -> dict[str, int]:
        """The column of each of `values` — a category's value, a text's word — among this attribute's own."""
        return {v: i for i, v in enumerate(self.values)}

    def encode(self, v: str, out: np.ndarray, rate: float = 0.0, at: dt.datetime | None = None) -> None:
        """Write this attribute's columns for value `v` ('' = missing) into `out` (zeros on entry); `rate`: the
        value rate's log-odds for this row (see `rate_log_odds`); `at`: the moment a time is measured from (the
        payment's settlement; None: every time reads as missing)."""
        if self.rated:
            out[-1] = rate
        if self.kind == "time":
            if at is not None and at.tzinfo is None:
                at = at.replace(tzinfo=dt.timezone.utc)           # a naive moment is UTC, as `instant` reads one
            t = instant(v) if v and at is not None else None
            out[0] = _squash((t - at).total_seconds() / 86400) if t is not None and at is not None else 0.0
            out[1] = float(t is None)
        elif self.kind == "numeric":
            x = _number(v) if v else None
            out[0] = _squash(self.median if x is None else x)
            out[1] = float(x is None)
        elif self.kind == "category":
            if (col := self.columns.get(v)) is not None:
                out[col] = 1.0
        elif v:
            for g in _grams(v):
                out[_bucket(g)] = 1.0
            for w in words(v):
                if (col := self.columns.get(w)) is not None:
                    out[TEXT_BUCKETS + col] = 1.0


def rate_log_odds(fails, n, prior: float):
    """The value-rate column: log-odds of `fails` failures in `n` payments, smoothed toward `prior` (numbers, or
    numpy arrays of them: one per row)."""
    r = np.clip((np.asarray(fails, dtype=float) + RATE_PRIOR_ROWS * prior) / (np.asarray(n, dtype=float)
                                                                               + RATE_PRIOR_ROWS), 1e-4, 1 - 1e-4)
    out = np.log(r / (1 - r))
    return float(out) if out.ndim == 0 else out


def recurring(values: Counter[str]) -> bool:
    """Whether an attribute's values recur (a code, not a serial): those seen MIN_COUNT times cover at least
    RECURRING_SHARE of its rows."""
    return sum(n for n in values.values() if n >= MIN_COUNT) >= RECURRING_SHARE * sum(values.values())


def kind_of(values: Counter[str]) -> str:
    """How an attribute with these non-empty values (value → rows) is encoded: numeric, time, category or text."""
    present = sum(values.values())
    if sum(n for v, n in values.items() if _number(v) is not None) >= NUMERIC_SHARE * present:
        return "numeric"
    if sum(n for v, n in values.items() if instant(v) is not None) >= NUMERIC_SHARE * present:
        return "time"
    return "category" if len(values) <= MAX_CATEGORIES else "text"


def rated(values: Counter[str]) -> bool:
    """Whether an attribute with these values gets a value-rate column: a number or a text whose values recur (a
    category has a column per value already; a time is measured from the payment instead)."""
    return kind_of(values) in RATED_KINDS and recurring(values)


def _squash(x: float) -> float:
    return math.copysign(math.log1p(abs(x)), x)


class AttributeEncoder:
    """Typed columns for every attribute key of the training rows (see the module docstring)."""

    def __init__(self) -> None:
        self.attributes: list[Attribute] = []

    def fit(self, rows: list[dict[str, str]]) -> "AttributeEncoder":
        present: Counter[str] = Counter()
        values: dict[str, Counter[str]] = {}
        for r in rows:
            for k, v in r.items():
                if v:
                    present[k] += 1
                    values.setdefault(k, Counter())[v] += 1
        self.attributes = []
        for k in sorted(present):
            if present[k] < max(1, MIN_PRESENT * len(rows)):
                continue
            seen = values[k]
            kind = kind_of(seen)
            if kind == "numeric":
                nums = [x for v, n in seen.items() if (x := _number(v)) is not None for _ in range(n)]
                self.attributes.append(Attribute(k, "numeric", median=float(np.median(nums))))
            elif kind == "time":
                self.attributes.append(Attribute(k, "time"))
            elif kind == "category":
                kept = sorted(v for v, n in seen.items() if n >= MIN_COUNT)
                if kept:
                    self.attributes.append(Attribute(k, "category", values=kept))
            else:
                counts: Counter[str] = Counter()
                for v, n in seen.items():
                    for w in words(v):
                        counts[w] += n
                common = [w for w, n in counts.most_common() if MIN_COUNT <= n < present[k]]
                self.attributes.append(Attribute(k, "text", values=sorted(common[:MAX_WORDS])))
        for a in self.attributes:                # `rated`, with the kind already known
            a.rated = a.kind in RATED_KINDS and recurring(values[a.key])
        return self

    @property
    def width(self) -> int:
        return sum(a.width for a in self.attributes)

    def groups(self, offset: int = 0) -> dict[str, list[int]]:
        """Column indices per attribute key (shifted by `offset` when placed after other columns)."""
        out, i = {}, offset
        for a in self.attributes:
            out[a.key] = list(range(i, i + a.width))
            i += a.width
        return out

    def rate_columns(self, offset: int = 0) -> dict[str, int]:
        """The value-rate column of each rated attribute key (its block's last; shifted by `offset`)."""
        return {a.key: cols[-1] for a, cols in zip(self.attributes, self.groups(offset).values()) if a.rated}

    def transform(self, rows: list[dict[str, str]], rates: list[dict[str, float]] | None = None,
                  at: list[dt.datetime] | None = None) -> np.ndarray:
        """The columns of `rows`; `rates`: per row, the value rate of each attribute key (log-odds, as
        `anomaly.risk.featurize` counts them; a key it counted no rate for gets the prior, under `PRIOR_KEY`);
        `at`: per row, the moment its time attributes are measured from."""
        X = np.zeros((len(rows), self.width))
        for i, r in enumerate(rows):
            j = 0
            own = rates[i] if rates is not None else {}
            when = at[i] if at is not None else None
            for a in self.attributes:
                a.encode(r.get(a.key, ""), X[i, j:j + a.width], own.get(a.key, own.get(PRIOR_KEY, 0.0)), when)
                j += a.width
        return X

    def describe(self) -> list[dict]:
        """What each attribute became, for the model card."""
        return [{"attribute": a.key, "kind": a.kind, **({"categories": a.values} if a.kind == "category" else
                                                          {"words": a.values} if a.kind == "text" else {}),
                 **({"value_rate": True} if a.rated else {})}
                for a in self.attributes]
