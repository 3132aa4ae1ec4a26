"""Reading and writing `timestamp,value` series files for the offline metric detector.

A bad file is refused whole, naming the file and line, rather than scored with silent gaps: the output has one
row per input row, in input order, so it can be joined back line by line."""
from __future__ import annotations

import csv
import math
from pathlib import Path


class SeriesError(ValueError):
    """A series file that cannot be read as `timestamp,value` rows."""


def read_csv(path: Path) -> tuple[list[str], list[float]]:
    """(timestamps as written, values) of a CSV with a `timestamp,value` header (other columns ignored)."""
    try:
        fh = open(path, newline="", encoding="utf-8")
    except OSError as e:
        raise SeriesError(f"{path}: {e.strerror or e}") from None
    with fh:
        try:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "timestamp" not in reader.fieldnames or "value" not in reader.fieldnames:
                raise SeriesError(f"{path}: the first line must be a header with 'timestamp' and 'value'")
            ts, vals = [], []
            for row in reader:
                line = reader.line_num
                t, v = (row.get("timestamp") or "").strip(), (row.get("value") or "").strip()
                if not t:
                    raise SeriesError(f"{path}:{line}: empty timestamp")
                try:
                    x = float(v)
                except ValueError:
                    raise SeriesError(f"{path}:{line}: value {v!r} is not a number") from None
                if not math.isfinite(x):
                    raise SeriesError(f"{path}:{line}: value {v!r} is not a finite number")
                ts.append(t)
                vals.append(x)
        except (csv.Error, UnicodeDecodeError) as e:
            raise SeriesError(f"{path}: not a readable CSV ({e})") from None
    return ts, vals


def write_scored(path: Path, timestamps: list[str], values: list[float], scores: list[float]) -> None:
    """`timestamp,value,anomaly_score` rows, written to a temporary file first and renamed (no half files)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "value", "anomaly_score"])
        for t, v, s in zip(timestamps, values, scores):
            w.writerow([t, repr(v) if not float(v).is_integer() else int(v), f"{s:.6f}"])
    tmp.replace(path)
