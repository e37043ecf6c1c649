"""The .ts and CSV readers: every real archive file in ../shared/data/ucr, and every bad input's message."""
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data.tsfile import read_cases, read_csv_cases, read_csv_long, read_ts
from rnnkit.errors import UserError

UCR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ucr"
needs_ucr = pytest.mark.skipif(not UCR.is_dir(), reason="../shared/data/ucr is not present")

# name -> (cases, length min, length max, classes); counted independently with awk/grep on the files
REAL = {
    "ACSF1_TRAIN": (100, 1460, 1460, 10), "ACSF1_TEST": (100, 1460, 1460, 10),
    "PLAID_TRAIN": (537, 100, 1344, 11), "PLAID_TEST": (537, 134, 1000, 11),
    "PickupGestureWiimoteZ_TRAIN": (50, 29, 361, 10), "PickupGestureWiimoteZ_TEST": (50, 37, 324, 10),
    "UnitTest_TRAIN": (20, 24, 24, 2), "UnitTest_TEST": (22, 24, 24, 2),
}


@needs_ucr
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_archive_files(name):
    n, lo, hi, k = REAL[name]
    X, y = read_ts(UCR / f"{name}.ts")
    assert len(X) == n and y.shape == (n,) and y.dtype.kind == "U"
    assert all(x.shape[0] == 1 and x.dtype == np.float64 and np.isfinite(x).all() for x in X)
    lens = [x.shape[1] for x in X]
    assert (min(lens), max(lens)) == (lo, hi)
    assert len(set(y)) == k
    # the first and last values of the first and last data lines, read back as text
    lines = [ln for ln in (UCR / f"{name}.ts").read_text(encoding="utf-8").split("\n")
             if ln.strip() and ln[0] not in "@#%"]
    for x, label, line in ((X[0], y[0], lines[0]), (X[-1], y[-1], lines[-1])):
        values, lab = line.rsplit(":", 1)
        tokens = values.split(",")
        assert lab.strip() == label and len(tokens) == x.shape[1]
        assert x[0, 0] == float(tokens[0]) and x[0, -1] == float(tokens[-1])


@needs_ucr
def test_unit_test_labels_and_first_case():
    X, y = read_ts(UCR / "UnitTest_TRAIN.ts")
    assert list(y[:3]) == ["1", "1", "1"] or set(y) == {"1", "2"}
    assert X[0][0, :3].tolist() == [573.0, 375.0, 301.0]


HEAD = "@problemName t\n@timeStamps false\n@univariate true\n@equalLength false\n@classLabel true a b\n@data\n"
MULTI = "@problemName t\n@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true a b\n@data\n"


def write(tmp_path, text, name="f.ts", mode="w"):
    p = tmp_path / name
    if mode == "wb":
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def test_good_small_files(tmp_path):
    X, y = read_ts(write(tmp_path, "# comment\n% another\n" + HEAD + "1,2,3:a\n4,5:b\n\n"))
    assert [x.tolist() for x in X] == [[[1, 2, 3]], [[4, 5]]] and y.tolist() == ["a", "b"]
    X, y = read_ts(write(tmp_path, MULTI + "1,2:3,4:b\r\n5,6,7:8,9,10:a\r\n"))
    assert X[1].tolist() == [[5, 6, 7], [8, 9, 10]] and y.tolist() == ["b", "a"]
    X, y = read_ts(write(tmp_path, HEAD.replace("true a b", "false") + "1,2\n3\n"))
    assert y is None and [x.shape for x in X] == [(1, 2), (1, 1)]
    # byte-order mark, no trailing newline, class list absent (any label accepted)
    X, y = read_ts(write(tmp_path, b"\xef\xbb\xbf" + HEAD.replace("true a b", "true").encode() + b"1,2:z",
                         mode="wb"))
    assert y.tolist() == ["z"]


@pytest.mark.parametrize("fill, expected", [
    ("interpolate", [1.0, 1.0, 2.0, 3.0, 3.0]),
    ("zero", [0.0, 1.0, 0.0, 3.0, 0.0]),
    ("ffill", [1.0, 1.0, 1.0, 3.0, 3.0]),
])
def test_fill_missing(tmp_path, fill, expected):
    X, _ = read_ts(write(tmp_path, HEAD + "?,1,NaN,3,?:a\n"), fill=fill)
    assert X[0][0].tolist() == expected


def bad(tmp_path, text, *needles, name="f.ts", reader=read_ts, mode="w", **kw):
    path = write(tmp_path, text, name, mode)
    with pytest.raises(UserError) as e:
        reader(path, **kw)
    msg = str(e.value)
    for needle in needles:
        assert needle in msg, msg
    return msg


def test_bad_files(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_ts(tmp_path / "missing.ts")
    with pytest.raises(UserError, match="is a directory"):
        read_ts(tmp_path)
    bad(tmp_path, "", "f.ts is empty")
    bad(tmp_path, "\n  \n", "the file is empty")
    bad(tmp_path, "@problemName x\n@classLabel true a\n", "no @data line")
    msg = bad(tmp_path, HEAD.encode() + b"1,2:a\n1,\xff2:b\n", "f.ts is not valid UTF-8", "(line 8)",
              "byte offset", "save the file as UTF-8", mode="wb")
    assert f"offset {len(HEAD) + 8}" in msg
    bad(tmp_path, "1,2:a\n@data\n", "f.ts:1:", "data before the @data line")
    bad(tmp_path, "@univariate maybe\n@data\n", "f.ts:1:", "true or false")
    bad(tmp_path, "@dimensions two\n@data\n", "f.ts:1:", "positive integer")
    bad(tmp_path, "@problemName x\n@data\n1,2:a\n", "no @classLabel")
    bad(tmp_path, HEAD, "no cases after @data")


def test_bad_data_lines(tmp_path):
    bad(tmp_path, HEAD + "1,2:a\n3,4\n", "f.ts:8:", "no class label", "@classLabel true")
    bad(tmp_path, HEAD + "1,2:\n", "f.ts:7:", "label", "empty")
    bad(tmp_path, HEAD + "1,2:a\n3,4:c\n", "f.ts:8:", "label 'c'", "a b")
    bad(tmp_path, MULTI + "1,2:3,4:a\n1,2:b\n", "f.ts:8:", "1 channel(s) but the file has 2")
    bad(tmp_path, HEAD + "1,2:3,4:a\n", "f.ts:7:", "2 channel(s) but the file has 1")
    bad(tmp_path, MULTI + "1,2:3,4,5:a\n", "f.ts:7:", "channel 2 has 3 values but channel 1 has 2")
    bad(tmp_path, HEAD + "1.5,abc,3:a\n", "f.ts:7:", "channel 1, value 2 (column 5)", "'abc'", "not a number")
    bad(tmp_path, MULTI + "1,2:3,,4:a\n", "f.ts:7:", "channel 2, value 2 (column 7)", "empty value")
    bad(tmp_path, HEAD + "1,inf:a\n", "f.ts:7:", "infinite value at channel 1, step 2")
    bad(tmp_path, MULTI + "1,2:3,?:a\n", "f.ts:7:", "missing value", "channel 2, step 2", "fill to 'interpolate'")
    bad(tmp_path, HEAD + "?,?:a\n", "channel 1 has no values at all", fill="ffill")
    bad(tmp_path, HEAD + "1,2:a\n", "unknown fill", fill="mean")


def test_header_length_rules(tmp_path):
    eq = HEAD.replace("@equalLength false", "@equalLength true")
    bad(tmp_path, eq + "1,2,3:a\n1,2:b\n", "f.ts:8:", "2 time points but the first case has 3", "@equalLength")
    bad(tmp_path, eq.replace("@data", "@seriesLength 3\n@data") + "1,2:a\n", "f.ts:8:", "@seriesLength 3")
    X, _ = read_ts(write(tmp_path, HEAD.replace("@data", "@seriesLength 3\n@data") + "1,2:a\n"))
    assert X[0].shape == (1, 2)  # @equalLength false: the length tag describes nothing


def test_single_class_is_returned(tmp_path):
    X, y = read_ts(write(tmp_path, HEAD + "1,2:a\n3,4:a\n"))
    assert y.tolist() == ["a", "a"]


def test_truncated_last_line(tmp_path):
    eq = HEAD.replace("@equalLength false", "@equalLength true")
    bad(tmp_path, eq + "1,2,3:a\n1,2,3:b\n1,2", "f.ts:9:", "no class label", "may be truncated")
    bad(tmp_path, eq + "1,2,3:a\n1,2,3:b\n1,2,", "f.ts:9:", "may be truncated")
    bad(tmp_path, eq + "1,2,3:a\n1,2:b", "f.ts:8:", "time points", "may be truncated")


def test_refused_kinds(tmp_path):
    ts = HEAD.replace("@timeStamps false", "@timeStamps true")
    bad(tmp_path, ts + "(1,2),(2,3):a\n", "@timeStamps true", "not supported")
    bad(tmp_path, HEAD + "(1,2),(2,3):a\n", "f.ts:7:", "(time,value)")
    bad(tmp_path, HEAD.replace("@classLabel true a b", "@targetLabel true") + "1,2:0.5\n", "regression")


# -- CSV -------------------------------------------------------------------------------------------------
def test_csv_cases(tmp_path):
    X, y = read_csv_cases(write(tmp_path, "t0,t1,t2,label\n1,2,3,a\n4,5,,b\n\n6,,,a\n", "c.csv"))
    assert [x.tolist() for x in X] == [[[1, 2, 3]], [[4, 5]], [[6]]] and y.tolist() == ["a", "b", "a"]
    X, y = read_csv_cases(write(tmp_path, "cls,t0,t1\nx,1,2\ny,3,4\n", "c.csv"), label_col="cls")
    assert X[1].tolist() == [[3, 4]] and y.tolist() == ["x", "y"]
    X, y = read_csv_cases(write(tmp_path, "t0,t1,class\n1,2,x\n", "c.csv"))  # no "label": the last column
    assert X[0].tolist() == [[1, 2]] and y.tolist() == ["x"]
    X, y = read_csv_cases(write(tmp_path, "t0,t1\n1,2\n", "c.csv"), label_col=None)
    assert y is None and X[0].tolist() == [[1, 2]]
    X, _ = read_csv_cases(write(tmp_path, "t0,t1,t2,label\n1,,3,a\n", "c.csv"), fill="interpolate")
    assert X[0].tolist() == [[1, 2, 3]]


def test_csv_cases_bad(tmp_path):
    r = read_csv_cases
    bad(tmp_path, "", "c.csv is empty", name="c.csv", reader=r)
    bad(tmp_path, "t0,label\n", "no data rows", name="c.csv", reader=r)
    bad(tmp_path, "t0,t1,label\n1,,a\n1,2,\n", "c.csv:3:", "label", "empty", name="c.csv", reader=r)
    bad(tmp_path, "t0,t1,label\n1,x,a\n", "c.csv:2:", "column 't1' (column 2)", "'x'", name="c.csv", reader=r)
    bad(tmp_path, "t0,t1,t2,label\n1,,3,a\n", "c.csv:2:", "missing value", "step 2", name="c.csv", reader=r)
    bad(tmp_path, "t0,label\n1,a,7\n", "c.csv:2:", "3 cells", name="c.csv", reader=r)
    bad(tmp_path, "t0,t1,label\n,,a\n", "c.csv:2:", "no values", name="c.csv", reader=r)
    bad(tmp_path, "t0,y\n1,a\n", "no column named 'cls'", "t0, y", name="c.csv", reader=r, label_col="cls")


LONG = "id,t,x,y,label\n1,0,1,2,a\n1,2,3,4,a\n1,1,5,6,a\n2,0,7,8,b\n"


def test_csv_long(tmp_path):
    X, y = read_csv_long(write(tmp_path, LONG, "l.csv"), "id", "t", "label")
    assert X[0].tolist() == [[1, 5, 3], [2, 6, 4]] and X[1].tolist() == [[7], [8]] and y.tolist() == ["a", "b"]
    X, y = read_csv_long(write(tmp_path, LONG, "l.csv"), "id", "t", None, channels=["y"])
    assert X[0].tolist() == [[2, 6, 4]] and y is None
    X, y = read_cases(write(tmp_path, LONG, "l.csv"), case_col="id", time_col="t", label_col="label")
    assert len(X) == 2


def test_csv_long_bad(tmp_path):
    r, args = read_csv_long, dict(case_col="id", time_col="t", label_col="label", name="l.csv")
    bad(tmp_path, LONG + "2,1,1,1,a\n", "l.csv:6:", "case '2' has label 'a' here but 'b' on line 5", reader=r,
        **args)
    bad(tmp_path, LONG + "2,0,1,1,b\n", "l.csv:6:", "time 0 twice", "line 5", reader=r, **args)
    bad(tmp_path, LONG + "2,1,,1,b\n", "l.csv:5", "case '2'", "missing value", reader=r, **args)
    bad(tmp_path, LONG + "2,soon,1,1,b\n", "l.csv:6:", "the time (column 't')", reader=r, **args)
    bad(tmp_path, LONG, "no column named 'when'", reader=r, **{**args, "time_col": "when"})
    X, _ = read_csv_long(write(tmp_path, LONG + "2,1,,1,b\n2,2,9,1,b\n", "l.csv"), "id", "t", "label",
                         fill="interpolate")
    assert X[1].tolist() == [[7, 8, 9], [8, 1, 1]]


def test_read_cases_dispatch(tmp_path):
    X, y = read_cases(write(tmp_path, HEAD + "1,2:a\n"))
    assert y.tolist() == ["a"]
    X, y = read_cases(write(tmp_path, "t0,label\n1,a\n", "c.CSV"))
    assert y.tolist() == ["a"]
    bad(tmp_path, "x", "unknown file type '.arff'", ".ts", name="f.arff", reader=read_cases)


def test_csv_separators_and_header_check(tmp_path):
    X, y = read_csv_cases(write(tmp_path, "t0;t1;label\n1;2;a\n", "c.csv"))
    assert X[0].tolist() == [[1, 2]] and y.tolist() == ["a"]
    X, y = read_csv_cases(write(tmp_path, "0\t1\tlabel\n1\t2.5\ta\n", "c.csv"))
    assert X[0].tolist() == [[1, 2.5]]
    bad(tmp_path, "0.5,1.5,a\n2.5,3.5,b\n", "c.csv:1:", "holds values", "add a header row", name="c.csv",
        reader=read_csv_cases)


def test_header_tags_with_tabs(tmp_path):
    X, y = read_ts(write(tmp_path, "@univariate\ttrue\n@classLabel\ttrue\ta\tb\n@data\n1,2:b\n"))
    assert y.tolist() == ["b"] and X[0].shape == (1, 2)
    bad(tmp_path, "@univariate\ttrue\n@classLabel\ttrue\ta\tb\n@data\n1,2:c\n", "label 'c'")


def test_read_cases_options_for_csv_only(tmp_path):
    bad(tmp_path, HEAD + "1,2:a\n", "case_col applies to CSV files only", reader=read_cases, case_col="id")
    X, y = read_cases(write(tmp_path, HEAD + "1,?:a\n"), fill="zero", label_col=None)
    assert X[0].tolist() == [[1.0, 0.0]]
