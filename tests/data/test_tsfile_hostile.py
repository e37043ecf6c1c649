"""Sequence files for classification that must be refused in one line naming the file, line and column:
duplicated headers, values near the float limit, pipes, Latin-1 and binary bytes."""
from __future__ import annotations

import os

import pytest

from rnnkit.cli import main
from rnnkit.data.tsfile import read_cases
from rnnkit.errors import UserError


def _rows(n=6):
    return "\n".join(f"{i % 2},{i},{i + 1},{i * 2}" for i in range(n)) + "\n"


@pytest.mark.parametrize("body,needle", [
    (("label,a,a,b\n" + _rows()).encode(), "dup.csv:1: columns 2 and 3 are both named 'a'"),
    (("label,label,a,b\n" + _rows()).encode(), "columns 1 and 2 are both named 'label'"),
    (b"label,a,b,c\n0,1e308,-1e308,1\n1,1,2,3\n", "dup.csv:2: value 1e+308 at channel 1, step 1 is too large"),
    ("label,a,b,c\n0,1,2,3\ncaf\xe9,1,2,3\n".encode("latin-1"), "not valid UTF-8: byte 0xe9"),
    (bytes(range(256)) * 2, "not valid UTF-8"),
])
def test_bad_csv_cases(tmp_path, body, needle):
    p = tmp_path / "dup.csv"
    p.write_bytes(body)
    with pytest.raises(UserError) as err:
        read_cases(p)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_huge_values_in_a_ts_file(tmp_path):
    p = tmp_path / "big.ts"
    p.write_text("@problemName big\n@timeStamps false\n@univariate true\n@classLabel true a b\n@data\n"
                 "1,2,3:a\n1,1e300,3:b\n")
    with pytest.raises(UserError, match=r"big.ts:7: value 1e\+300 at channel 1, step 2 is too large"):
        read_cases(p)


def test_good_values_still_read(tmp_path):
    p = tmp_path / "ok.csv"
    p.write_text("label,a,b,c\n0,1e100,2,3\n1,4,5,6\n")
    X, y = read_cases(p)
    assert X[0][0, 0] == 1e100 and list(y) == ["0", "1"]


def test_fifo_refused_at_once(tmp_path, capsys):
    """Opening a FIFO blocks until a writer comes; the readers and the CLI refuse it before opening."""
    fifo = tmp_path / "p.csv"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="not a regular file"):
        read_cases(fifo)
    assert main(["classify", "train", str(fifo), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a regular file" in err[0]
