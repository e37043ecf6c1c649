"""Reading a CSV file a user hands us: UTF-8 (with or without BOM) or a one-line refusal naming the line and
byte, no binary files, and time columns that must increase (duplicated or unsorted times named by row)."""
from __future__ import annotations

import csv
import io
import os
import stat
from datetime import datetime

from rnnkit.errors import UserError


def read_csv_rows(path) -> tuple[list[str], list[list[str]]]:
    """(header with names stripped, data rows without blank ones) of the CSV file at ``path``."""
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        raise UserError(f"{path}: no such file; give the path of a CSV file with a header row") from None
    if not stat.S_ISREG(mode):
        raise UserError(f"{path} is not a regular file (a folder, pipe or device); give a CSV file")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the file ({exc.strerror})") from None
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise UserError(f"{path}: a NUL byte at line {line} (byte {nul}): this is a binary file, not a CSV text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserError(f"{path}: not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line} (byte {exc.start}) "
                        "cannot be decoded; save the file as UTF-8 (for a Latin-1 file: iconv -f latin1 -t utf-8)"
                        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise UserError(f"{path}: the file is empty; it needs a header row and data rows")
        rows = [r for r in reader if any(c.strip() for c in r)]
    except csv.Error as exc:
        raise UserError(f"{path}: line {reader.line_num}: not valid CSV ({exc})") from None
    return [h.strip() for h in header], rows


def _time_key(text: str):
    """A comparable key for a time label: a number, an ISO date/time (or year-month), else None."""
    try:
        return (0, float(text))
    except ValueError:
        pass
    for candidate in (text, text + "-01"):
        try:
            when = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        return (1, when.replace(tzinfo=None).timestamp() if when.tzinfo is None else when.timestamp())
    return None


def check_time_order(times: list[str], rows: list[int], column: str, source: str) -> None:
    """Refuse duplicated time labels, and labels that go back in time when every one can be read as a
    number or an ISO date; the message names the two rows. rows: file line numbers of ``times``."""
    keys = [_time_key(t) for t in times]
    if all(k is not None for k in keys) and len({k[0] for k in keys}) <= 1:
        for i in range(1, len(keys)):
            if keys[i][1] <= keys[i - 1][1]:
                what = "repeats" if keys[i][1] == keys[i - 1][1] else "comes before"
                raise UserError(f"{source}: row {rows[i]}, column {column!r}: time {times[i]!r} {what} row "
                                f"{rows[i - 1]}'s {times[i - 1]!r}; sort the file by time and remove duplicated "
                                "rows (one row per time step and series)")
        return
    seen: dict[str, int] = {}
    for t, r in zip(times, rows):
        if t in seen:
            raise UserError(f"{source}: row {r}, column {column!r}: time {t!r} repeats row {seen[t]}'s; remove "
                            "duplicated rows (one row per time step and series)")
        seen[t] = r
