"""`rnnkit memory` and `rnnkit inspect` end to end into a temporary folder."""
import json
import re

import pytest

from rnnkit.cli import main


def test_memory_run_words_solves_and_generates(tmp_path, capsys):
    out = tmp_path / "words"
    rc = main(["memory", "run", "--task", "words", "--cell", "lstm", "--length", "1", "--lr", "0.02",
               "--hidden-size", "32", "--no-progress", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "SOLVED: lstm on words" in text and "generated: the baker bakes warm bread every morning ." in text
    for name in ("config.json", "metrics.csv", "model.safetensors", "learning_curve.png", "result.json",
                 "generated.txt"):
        assert (out / name).stat().st_size > 0
    result = json.loads((out / "result.json").read_text())
    assert result["solved"] and result["stopped"] == "solved"
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["kind", "step", "loss"] and "dh_ratio" in header and "grad_norm/rnn.l0.W_h" in header

    # the trained run can be inspected
    rc = main(["inspect", "gradients", str(out), "--out", str(tmp_path / "insp"), "--batch-size", "2"])
    text = capsys.readouterr().out
    assert rc == 0 and "lstm (trained)" in text
    data = json.loads((tmp_path / "insp" / "gradients.json").read_text())
    assert set(data["cells"]) == {"lstm (trained)", "lstm (untrained)"}
    cell = data["cells"]["lstm (trained)"]
    assert len(cell["dh"][0]) == 10 and "l0" in cell["saturation"]
    assert (tmp_path / "insp" / "gates.png").exists()


def test_memory_table_writes_markdown_and_png(tmp_path, capsys):
    out = tmp_path / "table"
    rc = main(["memory", "table", "--cells", "lstm,elman", "--lengths", "5,8", "--max-steps", "40",
               "--eval-every", "20", "--hidden-size", "8", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    md = (out / "table.md").read_text()
    assert "| cell | T=5 | T=8 |" in md and "| lstm |" in md and "| elman |" in md
    assert "Longest length solved" in md and md in text
    res = json.loads((out / "results.json").read_text())["results"]
    assert {(r["cell"], r["length"]) for r in res} == {("lstm", 5), ("lstm", 8), ("elman", 5), ("elman", 8)}
    assert all(r["steps"] <= 40 for r in res)
    assert (out / "table.png").stat().st_size > 0
    # --resume reuses what was run with the same budget and only runs the new length
    rc = main(["memory", "table", "--cells", "lstm,elman", "--lengths", "5,8,6", "--max-steps", "40",
               "--eval-every", "20", "--hidden-size", "8", "--resume", "--out", str(out)])
    text = capsys.readouterr().out
    ran = re.findall(r"^  (\w+) +T=(\d+) ", text, flags=re.M)
    assert rc == 0 and "resuming: 4 results" in text and sorted(ran) == [("elman", "6"), ("lstm", "6")]
    assert "| cell | T=5 | T=6 | T=8 |" in (out / "table.md").read_text()


def test_inspect_gradients_fresh_cells(tmp_path, capsys):
    rc = main(["inspect", "gradients", "--cell", "elman,jordan,lstm,gru", "--length", "30", "--hidden-size", "8",
               "--batch-size", "2", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert rc == 0 and "vanishing" in text
    data = json.loads((tmp_path / "gradients.json").read_text())["cells"]
    assert set(data) == {"elman", "jordan", "lstm", "gru"}
    assert all(len(c["jacobian"][0]) == 30 and c["jacobian"][0][-1] > 0 for c in data.values())
    assert data["lstm"]["saturation"] and not data["elman"]["saturation"]
    assert (tmp_path / "gradients.png").exists() and (tmp_path / "gates.png").exists()


def test_inspect_clipping(tmp_path, capsys):
    rc = main(["inspect", "clipping", "--steps", "70", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "no clipping" in text and "loss non-finite" in text and "clipped at 1" in text
    data = json.loads((tmp_path / "clipping.json").read_text())
    assert len(data["clipped at 1"]["loss"]) == 70 and None not in data["clipped at 1"]["loss"]
    assert (tmp_path / "clipping.png").exists()


@pytest.mark.parametrize("argv,needle", [
    (["memory", "run", "--task", "sorting"], "unknown task"),
    (["memory", "run", "--cell", "transformer"], "unknown cell"),
    (["memory", "run", "--length", "0"], "length"),
    (["memory", "table", "--lengths", "ten"], "--lengths"),
    (["memory", "table", "--cells", "lstm,rnn"], "unknown cell"),
    (["inspect", "gradients", "--cell", "tcn"], "unknown cell"),
    (["inspect", "clipping", "--gain", "0"], "--gain"),
])
def test_bad_input_gives_one_line_and_status_2(tmp_path, capsys, argv, needle):
    rc = main(argv + ["--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_inspect_missing_run_folder(tmp_path, capsys):
    rc = main(["inspect", "gradients", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "model.safetensors" in capsys.readouterr().err


def test_memory_without_action_prints_help(capsys):
    assert main(["memory"]) == 2 and "run" in capsys.readouterr().out


def test_memory_run_schedule_reports_missed_days(tmp_path, capsys):
    rc = main(["memory", "run", "--task", "schedule", "--cell", "gru", "--length", "20", "--hidden-size", "32",
               "--lr", "0.01", "--batch-size", "32", "--no-progress", "--diagnostics", "0", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert rc == 0 and "SOLVED" in text and "missed days" in text
    rep = json.loads((tmp_path / "result.json").read_text())["schedule"]
    assert rep["missed_days"] > 100 and rep["accuracy_after_missed_day"] > 0.95


def test_memory_table_over_seeds(tmp_path, capsys):
    rc = main(["memory", "table", "--cells", "lstm", "--lengths", "5", "--seeds", "0,1", "--max-steps", "20",
               "--eval-every", "10", "--hidden-size", "4", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    res = json.loads((tmp_path / "results.json").read_text())["results"]
    assert rc == 0 and sorted(r["seed"] for r in res) == [0, 1]
    assert res[0]["metric"] != res[1]["metric"]  # different seeds, different runs
    solved = sum(r["solved"] for r in res)
    assert f"| lstm | {'**' if solved == 2 else ''}{solved}/2, " in (tmp_path / "table.md").read_text()
    assert "seeds [0, 1]" in text
