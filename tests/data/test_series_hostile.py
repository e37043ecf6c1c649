"""Damaged and awkward CSV files for forecasting: each is refused with one message naming the row or the
column (and never a false statement), through load_csv and through ``rnnkit forecast train``."""
from __future__ import annotations

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.data.series import SeriesScaler, from_python, load_csv
from rnnkit.errors import UserError


def _csv(tmp_path, body: bytes, name="s.csv"):
    p = tmp_path / name
    p.write_bytes(body)
    return p


GOOD = "t,y\n" + "".join(f"2001-{m:02d},{v}\n" for m, v in zip(range(1, 13), [5, 7, 6, 8, 9, 7, 6, 8, 10, 9, 8, 11]))


def test_good_file_loads(tmp_path):
    s = load_csv(_csv(tmp_path, GOOD.encode()), target="y", time="t")[0]
    assert s.y.tolist()[:3] == [5, 7, 6] and s.time[0] == "2001-01"


@pytest.mark.parametrize("body,kw,needle", [
    ("t,y\n1,caf\xe9\n2,3\n".encode("latin-1"), {}, "not UTF-8 text: byte 0xe9 at line 2"),
    ("t,n\xe9e\n1,2\n2,3\n".encode("latin-1"), {}, "line 1"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", {}, "binary file"),
    (b"t,y\n1,2\n2,3\n3,\x004\n", {}, "NUL byte at line 4"),
    (b"t,y,y\n1,2,3\n2,3,4\n", {}, "columns 2 and 3 are both named 'y'"),
    (b"t,y\n2001-01,1\n2001-02,2\n2001-02,3\n2001-03,4\n", {"time": "t"}, "row 4, column 't': time '2001-02' repeats row 3"),
    (b"t,y\n2001-01-01,1\n2001-03-01,2\n2001-02-01,3\n", {"time": "t"}, "row 4, column 't': time '2001-02-01' comes before row 3"),
    (b"t,y\n3,1\n2,2\n4,3\n", {"time": "t"}, "row 3, column 't'"),
    (b"t,y\nQ1,1\nQ2,2\nQ1,3\n", {"time": "t"}, "time 'Q1' repeats row 2"),
    (b"t,y\n1,1e308\n2,-1e308\n3,1e308\n", {}, "row 2, column 'y': 1e308 is too large"),
    (b"t,y\n1,1\n2,inf\n3,2\n", {}, "row 3, column 'y': inf is infinite"),
    (b"", {}, "empty"),
])
def test_bad_csv_refused_with_row_or_column(tmp_path, body, kw, needle):
    with pytest.raises(UserError) as err:
        load_csv(_csv(tmp_path, body), target="y", **kw)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg


def test_unsorted_times_fine_per_series(tmp_path):
    """Times are checked within each series: two series sharing dates are not duplicates."""
    body = b"t,k,y\n1,a,1\n2,a,2\n1,b,3\n2,b,4\n"
    out = load_csv(_csv(tmp_path, body), target="y", time="t", series_col="k")
    assert [s.y.tolist() for s in out] == [[1, 2], [3, 4]]


def test_a_folder_or_fifo_is_not_a_csv(tmp_path):
    import os

    (tmp_path / "d.csv").mkdir()
    with pytest.raises(UserError, match="not a regular file"):
        load_csv(tmp_path / "d.csv", target="y")
    os.mkfifo(tmp_path / "p.csv")
    with pytest.raises(UserError, match="not a regular file"):
        load_csv(tmp_path / "p.csv", target="y")  # refused at once: opening a FIFO would block


def test_huge_values_are_not_called_constant():
    """A series near the float limit was reported as 'constant'; now it is named as too large."""
    y = np.array([1e308, -1e308, 5e307, 1e308])
    with pytest.raises(UserError, match="too large") as err:
        from_python(y)
    assert "constant" not in str(err.value)
    with pytest.raises(UserError, match="too large"):
        SeriesScaler(log=False).fit(np.array([1e200, -1e200, 3e199]))
    with pytest.raises(UserError, match="constant"):
        SeriesScaler(log=False).fit(np.array([3.0, 3.0, 3.0]))


def test_cli_refuses_latin1_with_one_line(tmp_path, capsys):
    rows = "".join(f"{k},{10 + k % 5}\n" for k in range(40))
    p = _csv(tmp_path, ("t,ventes\xe9\n" + rows).encode("latin-1"))
    assert main(["forecast", "train", str(p), "--target", "y", "--horizon", "3", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not UTF-8" in err[0] and "line 1" in err[0]
