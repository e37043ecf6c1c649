"""Read labelled sequence files into cases: the UCR/UEA ``.ts`` format, and CSV (one case per row, or long format).

Every reader returns ``(X, y)``: X a list of float64 arrays ``(n_channels, length_i)`` (see rnnkit.data.layout),
y a 1-D array of str labels (None for a file without labels). Bad input raises UserError "FILE:LINE: what; fix".
"""
from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import numpy as np

from rnnkit.data.layout import FILLS, fill_missing
from rnnkit.data.text import read_text_file
from rnnkit.errors import UserError

MAX_ABS = 1e150  # larger magnitudes overflow the squares behind normalisation (float64 max 1.8e308)
MISSING = ("?", "nan", "NaN", "NAN")  # tokens read as a missing value (besides an empty CSV cell)
FILL_HINT = "set fill to 'interpolate', 'zero' or 'ffill' (--fill in the CLI) to fill missing values"


def _read_text(path) -> tuple[Path, str]:
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory; give the data file inside it")
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        regular = True  # missing or unreadable: read_text_file names the problem
    if not regular:  # opening a FIFO would wait forever for a writer
        raise UserError(f"{path} is not a regular file (a pipe or device); give a data file")
    text = read_text_file(path, fix="save the file as UTF-8")  # missing, empty, invalid UTF-8 (file, line, byte)
    if not text.strip():
        raise UserError(f"{path}: the file is empty; give a file with data")
    return path, text


def _check_fill(fill) -> None:
    if fill is not None and fill not in FILLS:
        raise UserError(f"unknown fill {fill!r}; use one of {', '.join(FILLS)} (or None to refuse missing values)")


def _floats(tokens: list[str], where: str, describe) -> np.ndarray:
    """Tokens -> float64; a missing token is NaN; anything else non-numeric is an error naming it.

    ``describe(k)`` names the k-th token (0-based) in the message: its channel, position and column.
    """
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        pass
    out = np.empty(len(tokens))
    for k, tok in enumerate(tokens):
        s = tok.strip()
        if s in MISSING:
            out[k] = np.nan
            continue
        try:
            out[k] = float(s)
        except ValueError:
            shown = repr(tok) if s else "an empty value"
            raise UserError(f"{where}: {describe(k)} is {shown}, not a number; fix or remove it "
                            "(write ? for a missing value)") from None
    return out


def _finish_case(case: np.ndarray, where: str, fill) -> np.ndarray:
    """Refuse infinities; refuse or fill NaN (C, L)."""
    if np.isinf(case).any():
        c, t = np.argwhere(np.isinf(case))[0]
        raise UserError(f"{where}: infinite value at channel {c + 1}, step {t + 1}; replace it with a number")
    if (np.abs(np.nan_to_num(case)) > MAX_ABS).any():
        c, t = np.argwhere(np.abs(np.nan_to_num(case)) > MAX_ABS)[0]
        raise UserError(f"{where}: value {case[c, t]:g} at channel {c + 1}, step {t + 1} is too large; keep "
                        f"magnitudes at most {MAX_ABS:g} (rescale the data, e.g. divide by a power of ten)")
    if np.isnan(case).any():
        if fill is None:
            c, t = np.argwhere(np.isnan(case))[0]
            n = int(np.isnan(case).sum())
            raise UserError(f"{where}: missing value (NaN or ?) at channel {c + 1}, step {t + 1} ({n} in this "
                            f"case); {FILL_HINT}")
        case = fill_missing(case, fill, where=f"{where}: ")
    return case


# -- .ts (UCR/UEA archive) -------------------------------------------------------------------------------
_BOOL = {"true": True, "false": False}


def _parse_header(path: Path, lines: list[str]) -> tuple[dict, int]:
    """Header tags up to @data -> (dict, index of the first data line)."""
    head: dict = {}
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line or line[0] in "#%":
            continue
        where = f"{path}:{i + 1}"
        if not line.startswith("@"):
            raise UserError(f"{where}: data before the @data line; end the header with a line '@data'")
        tag, *rest = line[1:].split(None, 1)
        rest = rest[0] if rest else ""
        tag, words = tag.lower(), rest.split()
        if tag == "data":
            return head, i + 1
        if tag in ("timestamps", "missing", "univariate", "equallength", "classlabel", "targetlabel"):
            if not words or words[0].lower() not in _BOOL:
                raise UserError(f"{where}: @{line[1:].split()[0]} needs true or false; write e.g. "
                                f"'@{line[1:].split()[0]} true'")
            head[tag] = _BOOL[words[0].lower()]
            if tag == "classlabel" and head[tag]:
                head["classes"] = words[1:]
        elif tag in ("dimensions", "serieslength"):
            if len(words) != 1 or not words[0].isdigit() or int(words[0]) < 1:
                raise UserError(f"{where}: @{line[1:].split()[0]} needs one positive integer, got {rest!r}")
            head[tag] = int(words[0])
        # other tags (@problemName, ...) carry nothing the reader needs
    raise UserError(f"{path}: no @data line; a .ts file is a header of @tags ending with '@data' and then one "
                    "case per line (is the file truncated or not a .ts file?)")


def read_ts(path, fill: str | None = None):
    """Read a UCR/UEA ``.ts`` file -> (X, y).

    Header lines start with @ (up to ``@data``); lines starting with # or % are comments. One case per data
    line: channels separated by ':', values by ',', the class label last after ':' when ``@classLabel true``.
    ``?`` and NaN are missing values, refused unless ``fill`` is "interpolate", "zero" or "ffill". Uni- and
    multivariate, equal and unequal length. ``@timeStamps true`` files are refused (their time stamps would be
    dropped silently otherwise), as are regression files (``@targetLabel true``). Without ``@classLabel``
    true/false in the header the file is refused (a numeric label looks like a one-point channel otherwise).
    """
    _check_fill(fill)
    path, text = _read_text(path)
    lines = text.split("\n")
    head, start = _parse_header(path, lines)
    if head.get("timestamps"):
        raise UserError(f"{path}: @timeStamps true files ((time,value) pairs) are not supported; write the "
                        "values alone (resampled to a regular grid) with @timeStamps false")
    if head.get("targetlabel"):
        raise UserError(f"{path}: @targetLabel true marks a regression file; rnnkit classify needs class labels "
                        "(@classLabel true ...)")
    if "classlabel" not in head:
        raise UserError(f"{path}: the header has no @classLabel line; add '@classLabel true <label> <label> ...' "
                        "before @data (or '@classLabel false' for a file without labels)")
    labelled, classes = head["classlabel"], head.get("classes")
    n_channels = 1 if head.get("univariate") else head.get("dimensions")
    equal = head.get("equallength")
    series_length = head.get("serieslength") if equal is not False else None
    unterminated = not text.endswith("\n")
    last = max(i for i, ln in enumerate(lines) if ln.strip())
    X, y = [], []
    for i in range(start, len(lines)):
        line = lines[i].strip()
        if not line or line[0] in "#%":
            continue
        where = f"{path}:{i + 1}"
        try:
            case, label = _parse_ts_line(lines[i], where, labelled, n_channels)
            if n_channels is None:
                n_channels = case.shape[0]
            if labelled and classes and label not in classes:
                raise UserError(f"{where}: label {label!r} is not among the classes the header declares "
                                f"(@classLabel true {' '.join(classes)}); fix the label or add it to @classLabel")
            L = case.shape[1]
            if series_length is not None and L != series_length:
                raise UserError(f"{where}: the case has {L} time points but the header says @seriesLength "
                                f"{series_length}; fix the line or the header")
            if equal and X and L != X[0].shape[1]:
                raise UserError(f"{where}: the case has {L} time points but the first case has {X[0].shape[1]} "
                                "and the header says @equalLength true; fix the line or say @equalLength false")
            case = _finish_case(case, where, fill)
        except UserError as e:
            if i == last and unterminated:
                raise UserError(f"{e} (the file ends on this line without a newline: it may be truncated)") \
                    from None
            raise
        X.append(case)
        y.append(label)
    if not X:
        raise UserError(f"{path}: no cases after @data; add one line per case")
    return X, (np.array(y, dtype=str) if labelled else None)


def _parse_ts_line(raw: str, where: str, labelled: bool, n_channels: int | None):
    line = raw.strip()
    indent = len(raw) - len(raw.lstrip())
    parts = line.split(":")
    label = None
    if "(" in line:
        raise UserError(f"{where}: the line holds '(' like (time,value) pairs, but the header does not say "
                        "@timeStamps true (and those files are not supported); write plain values")
    if labelled:
        if len(parts) < 2:
            raise UserError(f"{where}: the line has no class label, but the header says @classLabel true; "
                            "end the line with ':<label>'")
        label = parts.pop().strip()
        if not label:
            raise UserError(f"{where}: the class label after the last ':' is empty; write the label there")
    if n_channels is not None and len(parts) != n_channels:
        raise UserError(f"{where}: the line has {len(parts)} channel(s) but the file has {n_channels} "
                        f"(channels are separated by ':'{', the label comes last' if labelled else ''}); "
                        "fix the line")
    chans = []
    for c, part in enumerate(parts):
        tokens = part.split(",")
        start = indent + sum(len(p) + 1 for p in parts[:c])

        def describe(k, c=c, tokens=tokens, start=start):  # 1-based character column of token k in the line
            return f"channel {c + 1}, value {k + 1} (column {start + sum(len(t) + 1 for t in tokens[:k]) + 1})"

        vals = _floats(tokens, where, describe)
        if chans and len(vals) != len(chans[0]):
            raise UserError(f"{where}: channel {c + 1} has {len(vals)} values but channel 1 has {len(chans[0])}; "
                            "the channels of one case must have the same length")
        chans.append(vals)
    return np.stack(chans), label


# -- CSV -------------------------------------------------------------------------------------------------
def _looks_like_data(name: str) -> bool:
    """A header cell such as 0.53 or -1e-3 is a value, not a column name (0, 1, 2 ... are fine names)."""
    try:
        float(name)
    except ValueError:
        return False
    return not name.lstrip("+-").isdigit()


def _csv_rows(path, text: str):
    """(header names, iterator of (line number, cells)) with blank rows skipped.

    Cells are separated by commas; a file whose first line has no comma but semicolons or tabs uses those."""
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    delimiter = "," if "," in first else ";" if ";" in first else "\t" if "\t" in first else ","
    reader = csv.reader(lines, delimiter=delimiter)
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise UserError(f"{path}:1: the first row must name the columns; add a header row")
    header = [h.strip() for h in header]
    if any(_looks_like_data(h) for h in header):
        raise UserError(f"{path}:1: the first row holds values ({', '.join(header[:4])} ...), not column names; "
                        "add a header row (e.g. t0,t1,...,label)")
    first: dict[str, int] = {}
    for j, h in enumerate(header):
        if h and h in first:
            raise UserError(f"{path}:1: columns {first[h] + 1} and {j + 1} are both named {h!r}; give every column "
                            "its own name (in a one-case-per-row file each names a time point)")
        first.setdefault(h, j)

    def rows():
        for cells in reader:
            if any(c.strip() for c in cells):
                yield reader.line_num, cells
    return header, rows()


def _column(path, header: list[str], name: str, role: str) -> int:
    if name in header:
        return header.index(name)
    folded = [h.lower() for h in header]
    if name.lower() in folded:
        return folded.index(name.lower())
    raise UserError(f"{path}:1: no column named {name!r} for the {role}; the columns are "
                    f"{', '.join(header[:12])}{' ...' if len(header) > 12 else ''}; pass the right name")


def read_csv_cases(path, label_col: str | None = "label", fill: str | None = None):
    """Read a CSV with one case (one channel) per row -> (X, y).

    The first row names the columns. ``label_col`` names the label column; with the default "label", when no
    column has that name (any case) the *last* column is the label. ``label_col=None``: no labels (y is None).
    The other columns, in file order, are the time points. Shorter series leave their trailing cells empty; an
    empty cell (or ?, NaN) before the last value is a missing value, refused unless ``fill`` is given.
    """
    _check_fill(fill)
    path, text = _read_text(path)
    header, rows = _csv_rows(path, text)
    if label_col is None:
        li = None
    elif label_col == "label" and "label" not in [h.lower() for h in header]:
        li = len(header) - 1
    else:
        li = _column(path, header, label_col, "labels")
    time_cols = [j for j in range(len(header)) if j != li]
    if not time_cols:
        raise UserError(f"{path}:1: the only column is the label; add one column per time point")
    X, y = [], []
    for line, cells in rows:
        where = f"{path}:{line}"
        if len(cells) > len(header):
            raise UserError(f"{where}: {len(cells)} cells but the header names {len(header)} columns; "
                            "remove the extra cells or name them in the header")
        cells = cells + [""] * (len(header) - len(cells))
        if li is not None:
            label = cells[li].strip()
            if not label:
                raise UserError(f"{where}: the label (column {header[li]!r}) is empty; write the label")
            y.append(label)
        values = [cells[j] for j in time_cols]
        n = len(values)
        while n and not values[n - 1].strip():
            n -= 1  # trailing empty cells: the series is shorter
        if n == 0:
            raise UserError(f"{where}: the row has no values; remove it or fill it")
        vals = _floats([v if v.strip() else "?" for v in values[:n]], where,
                       lambda k: f"column {header[time_cols[k]]!r} (column {time_cols[k] + 1})")
        X.append(_finish_case(vals[None, :], where, fill))
    if not X:
        raise UserError(f"{path}: no data rows after the header; add one row per case")
    return X, (np.array(y, dtype=str) if li is not None else None)


def read_csv_long(path, case_col: str, time_col: str, label_col: str | None,
                  channels: list[str] | None = None, fill: str | None = None):
    """Read a long-format CSV (one row per case, time step) -> (X, y).

    Columns: a case id, a numeric time, one column per channel (``channels``, default every other column) and
    a label (the same on every row of a case; ``label_col=None`` for no labels). Cases come out in order of
    first appearance, each sorted by time; only the order of the times is used (no resampling). Missing values
    (empty, ?, NaN) are refused unless ``fill`` is given; a repeated time within a case is an error.
    """
    _check_fill(fill)
    path, text = _read_text(path)
    header, rows = _csv_rows(path, text)
    ci = _column(path, header, case_col, "case id")
    ti = _column(path, header, time_col, "time")
    li = None if label_col is None else _column(path, header, label_col, "labels")
    if channels is None:
        chan_idx = [j for j in range(len(header)) if j not in (ci, ti, li)]
    else:
        chan_idx = [_column(path, header, c, "channel") for c in channels]
    if not chan_idx:
        raise UserError(f"{path}:1: no channel columns besides case, time and label; add value columns")
    groups: dict[str, list] = {}
    for line, cells in rows:
        where = f"{path}:{line}"
        if len(cells) != len(header):
            raise UserError(f"{where}: {len(cells)} cells but the header names {len(header)} columns; fix the row")
        case = cells[ci].strip()
        if not case:
            raise UserError(f"{where}: the case id (column {header[ci]!r}) is empty; write it")
        t = _floats([cells[ti]], where, lambda k: f"the time (column {header[ti]!r})")[0]
        if not np.isfinite(t):
            raise UserError(f"{where}: the time (column {header[ti]!r}) is missing; write a number")
        label = None if li is None else cells[li].strip()
        if li is not None and not label:
            raise UserError(f"{where}: the label (column {header[li]!r}) is empty; write the label")
        vals = _floats([cells[j] if cells[j].strip() else "?" for j in chan_idx], where,
                       lambda k: f"column {header[chan_idx[k]]!r}")
        g = groups.setdefault(case, [label, line, {}])
        if label != g[0]:
            raise UserError(f"{where}: case {case!r} has label {label!r} here but {g[0]!r} on line {g[1]}; one "
                            "case has one label")
        if t in g[2]:
            raise UserError(f"{where}: case {case!r} has time {t:g} twice (also on line {g[2][t][0]}); remove one")
        g[2][t] = (line, vals)
    if not groups:
        raise UserError(f"{path}: no data rows after the header; add one row per case and time step")
    X, y = [], []
    for case, (label, first_line, steps) in groups.items():
        times = sorted(steps)
        arr = np.stack([steps[t][1] for t in times], axis=1)  # (C, L)
        X.append(_finish_case(arr, f"{path}:{first_line} (case {case!r})", fill))
        y.append(label)
    return X, (np.array(y, dtype=str) if li is not None else None)


def read_cases(path, **kw):
    """Read a labelled sequence file by its suffix: ``.ts`` -> read_ts; ``.csv`` -> read_csv_long when
    ``case_col`` is given, else read_csv_cases. Keyword arguments go to that reader."""
    suffix = Path(path).suffix.lower()
    if suffix == ".ts":
        extra = sorted(k for k, v in kw.items() if k != "fill" and v is not None)
        if extra:
            raise UserError(f"{path}: {', '.join(extra)} appl{'ies' if len(extra) == 1 else 'y'} to CSV files "
                            "only; a .ts file names its own labels and channels")
        return read_ts(path, fill=kw.get("fill"))
    if suffix == ".csv":
        return read_csv_long(path, **kw) if "case_col" in kw else read_csv_cases(path, **kw)
    raise UserError(f"{path}: unknown file type {suffix or '(no suffix)'!r}; rnnkit reads UCR/UEA .ts files and "
                    ".csv files (one case per row, or long format with case_col/time_col)")
