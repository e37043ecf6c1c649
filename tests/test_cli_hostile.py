"""Hostile and clumsy command lines through ``rnnkit.cli.main`` in-process: each one exits 2 with a single line
on stderr that names the option, never a traceback, and never hangs (a per-case timer aborts a stuck case)."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from rnnkit.cli import main

CASE_SECONDS = 30


class Hung(Exception):
    pass


def _run(argv, capsys):
    """(exit status, stderr lines) of ``rnnkit argv``; Hung when it takes longer than CASE_SECONDS."""
    def alarm(signum, frame):
        raise Hung(f"rnnkit {' '.join(argv)} still running after {CASE_SECONDS} s")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    try:
        code = main(argv)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    captured = capsys.readouterr()
    return code, [line for line in captured.err.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hardcli")
    (d / "a.txt").write_text("the cat sat on the mat. " * 40, encoding="utf-8")
    rows = "\n".join(f"2000-{m % 12 + 1:02d}-01,{10 + m % 7}" for m in range(60))
    (d / "s.csv").write_text("t,y\n" + rows + "\n")
    (d / "c.csv").write_text("label,a,b,c\n" + "\n".join(f"{i % 2},{i},{i + 1},{i * 2}" for i in range(20)) + "\n")
    (d / "afile").write_text("I am a file\n")
    (d / "folder").mkdir()
    return d


def _cases():
    """(id, argv with {d} for the files folder, text the message must contain)."""
    t = ["text", "train", "{d}/a.txt", "--steps", "1", "--no-progress", "--out", "{d}/run_text"]
    tb = ["text", "train", "{d}/a.txt", "--no-progress", "--out", "{d}/run_t2"]
    fc = ["forecast", "train", "{d}/s.csv", "--target", "y", "--horizon", "3", "--out", "{d}/run_fc"]
    bt = ["forecast", "backtest", "{d}/s.csv", "--target", "y", "--horizon", "3", "--out", "{d}/run_bt"]
    cl = ["classify", "train", "{d}/c.csv", "--out", "{d}/run_cl"]
    mr = ["memory", "run", "--out", "{d}/run_mem", "--no-progress"]
    mt = ["memory", "table", "--out", "{d}/run_tab"]
    ig = ["inspect", "gradients", "--out", "{d}/run_ig"]
    ic = ["inspect", "clipping", "--out", "{d}/run_ic"]
    gen = ["text", "generate", "{d}/no_such_run"]
    cases = [
        # -- the global option
        ("threads-0", ["--threads", "0", "gradcheck"], "--threads"),
        ("threads-nan", ["--threads", "nan", "gradcheck"], "--threads"),
        ("threads-huge", ["--threads", "100000", "gradcheck"], "--threads"),
        # -- text train: learning rates, decay, clipping, budgets, sizes
        ("text-lr-nan", t + ["--lr", "nan"], "--lr"),
        ("text-lr-inf", t + ["--lr", "inf"], "--lr"),
        ("text-lr-neg", t + ["--lr", "-0.01"], "--lr"),
        ("text-lr-zero", t + ["--lr", "0"], "--lr"),
        ("text-lr-word", t + ["--lr", "fast"], "--lr"),
        ("text-min-lr-neg", t + ["--min-lr", "-1e-4"], "--min-lr"),
        ("text-min-lr-nan", t + ["--min-lr", "NaN"], "--min-lr"),
        ("text-wd-neg", t + ["--weight-decay", "-1"], "--weight-decay"),
        ("text-wd-inf", t + ["--weight-decay", "inf"], "--weight-decay"),
        ("text-clip-neg", t + ["--clip", "-5"], "--clip"),
        ("text-clip-nan", t + ["--clip", "nan"], "--clip"),
        ("text-eval-chars-neg", t + ["--eval-chars", "-5"], "--eval-chars"),
        ("text-eval-chars-0", t + ["--eval-chars", "0"], "--eval-chars"),
        ("text-seed-neg", t + ["--seed", "-1"], "--seed"),
        ("text-seed-float", t + ["--seed", "1.5"], "--seed"),
        ("text-seed-huge", t + ["--seed", str(2**70)], "--seed"),
        ("text-minutes-tiny", tb + ["--minutes", "1e-9"], "--minutes"),
        ("text-minutes-neg", tb + ["--minutes", "-1"], "--minutes"),
        ("text-minutes-nan", tb + ["--minutes", "nan"], "--minutes"),
        ("text-minutes-inf", tb + ["--minutes", "inf"], "--minutes"),
        ("text-eval-minutes-neg", tb + ["--minutes", "0.05", "--eval-minutes", "-1"], "--eval-minutes"),
        ("text-eval-minutes-0", tb + ["--minutes", "0.05", "--eval-minutes", "0"], "--eval-minutes"),
        ("text-steps-0", tb + ["--steps", "0"], "--steps"),
        ("text-steps-neg", tb + ["--steps", "-3"], "--steps"),
        ("text-hidden-1e9", t + ["--hidden-size", "1000000000"], "--hidden-size"),
        ("text-hidden-0", t + ["--hidden-size", "0"], "--hidden-size"),
        ("text-hidden-memory", t + ["--hidden-size", "60000"], "--hidden-size"),
        ("text-batch-memory", t + ["--batch-size", "1000000", "--seq-len", "100000"], "--batch-size"),
        ("text-layers-0", t + ["--num-layers", "0"], "--num-layers"),
        ("text-batch-0", t + ["--batch-size", "0"], "--batch-size"),
        ("text-seq-len-neg", t + ["--seq-len", "-64"], "--seq-len"),
        ("text-dropout-1", t + ["--dropout", "1"], "--dropout"),
        ("text-dropout-neg", t + ["--dropout", "-0.2"], "--dropout"),
        ("text-val-0", t + ["--val-fraction", "0"], "--val-fraction"),
        ("text-val-1", t + ["--val-fraction", "1"], "--val-fraction"),
        ("text-warmup-neg", t + ["--warmup-steps", "-1"], "--warmup-steps"),
        ("text-keep-0", t + ["--keep-last", "0"], "--keep-last"),
        ("text-eval-every-0", t + ["--eval-every", "0"], "--eval-every"),
        ("text-cell", t + ["--cell", "transformer"], "--cell"),
        ("text-dtype", t + ["--dtype", "float16"], "--dtype"),
        ("text-out-file", t[:-1] + ["{d}/afile"], "--out"),
        ("text-out-under-file", t[:-1] + ["{d}/afile/run"], "--out"),
        ("text-out-empty", t[:-1] + [""], "--out"),
        ("text-out-long", t[:-1] + ["{d}/" + "x" * 300], "--out"),
        # -- text generate: parsed before the run is opened
        ("gen-length-huge", gen + ["--length", str(10**12)], "--length"),
        ("gen-length-neg", gen + ["--length", "-1"], "--length"),
        ("gen-samples-huge", gen + ["--num-samples", str(10**8)], "--num-samples"),
        ("gen-samples-0", gen + ["--num-samples", "0"], "--num-samples"),
        ("gen-temp-nan", gen + ["--temperature", "nan"], "--temperature"),
        ("gen-temp-neg", gen + ["--temperature", "-1"], "--temperature"),
        ("gen-topk-0", gen + ["--top-k", "0"], "--top-k"),
        ("gen-seed-neg", gen + ["--seed", "-7"], "--seed"),
        # -- forecast
        ("fc-horizon-0", fc[:5] + ["--horizon", "0"], "--horizon"),
        ("fc-horizon-nan", fc[:5] + ["--horizon", "nan"], "--horizon"),
        ("fc-horizon-huge", fc[:5] + ["--horizon", str(10**12)], "--horizon"),
        ("fc-lr-nan", fc + ["--lr", "nan"], "--lr"),
        ("fc-lr-neg", fc + ["--lr", "-1"], "--lr"),
        ("fc-patience-neg", fc + ["--patience", "-1"], "--patience"),
        ("fc-interval-1", fc + ["--interval", "1"], "--interval"),
        ("fc-interval-nan", fc + ["--interval", "nan"], "--interval"),
        ("fc-hidden-1e9", fc + ["--hidden-size", "1000000000"], "--hidden-size"),
        ("fc-hidden-memory", fc + ["--hidden-size", "60000"], "--hidden-size"),
        ("fc-seed-neg", fc + ["--seed", "-1"], "--seed"),
        ("fc-epochs-0", fc + ["--epochs", "0"], "--epochs"),
        ("fc-ensemble-0", fc + ["--ensemble", "0"], "--ensemble"),
        ("fc-val-neg", fc + ["--val", "-2"], "--val"),
        ("fc-season-0", fc + ["--season", "0"], "--season"),
        ("fc-highway-neg", fc + ["--highway", "-1"], "--highway"),
        ("fc-batch-0", fc + ["--batch-size", "0"], "--batch-size"),
        ("fc-out-file", fc[:-1] + ["{d}/afile"], "--out"),
        ("bt-folds-0", bt + ["--folds", "0"], "--folds"),
        ("bt-step-neg", bt + ["--step", "-3"], "--step"),
        ("fp-out-folder", ["forecast", "predict", "{d}/no_run", "--out", "{d}/folder"], "--out"),
        # -- classify
        ("cl-lr-inf", cl + ["--lr", "inf"], "--lr"),
        ("cl-val-1", cl + ["--val-size", "1"], "--val-size"),
        ("cl-minutes-tiny", cl + ["--minutes", "1e-9"], "--minutes"),
        ("cl-minutes-neg", cl + ["--minutes", "-1"], "--minutes"),
        ("cl-patience-0", cl + ["--patience", "0"], "--patience"),
        ("cl-hidden-1e9", cl + ["--hidden-size", "1000000000"], "--hidden-size"),
        ("cl-hidden-memory", cl + ["--hidden-size", "60000"], "--hidden-size"),
        ("cl-seed-neg", cl + ["--seed", "-1"], "--seed"),
        ("cl-ensemble-0", cl + ["--ensemble", "0"], "--ensemble"),
        ("cl-stride-0", cl + ["--stride", "0"], "--stride"),
        ("cl-out-file", cl[:-1] + ["{d}/afile"], "--out"),
        ("cp-out-folder", ["classify", "predict", "{d}/no_run", "{d}/c.csv", "--out", "{d}/folder"], "--out"),
        # -- memory
        ("mem-length-1e12", mr + ["--length", str(10**12)], "--length"),
        ("mem-length-0", mr + ["--length", "0"], "--length"),
        ("mem-length-memory", mr + ["--length", "1000000"], "--length"),
        ("mem-hidden-1e9", mr + ["--hidden-size", "1000000000"], "--hidden-size"),
        ("mem-lr-nan", mr + ["--lr", "nan"], "--lr"),
        ("mem-clip-neg", mr + ["--clip", "-1"], "--clip"),
        ("mem-seconds-tiny", mr + ["--max-seconds", "1e-9"], "--max-seconds"),
        ("mem-seconds-inf", mr + ["--max-seconds", "inf"], "--max-seconds"),
        ("mem-forget-nan", mr + ["--forget-bias", "nan"], "--forget-bias"),
        ("mem-seed-neg", mr + ["--seed", "-2"], "--seed"),
        ("mem-eval-every-0", mr + ["--eval-every", "0"], "--eval-every"),
        ("mem-steps-0", mr + ["--max-steps", "0"], "--max-steps"),
        ("mem-diag-neg", mr + ["--diagnostics", "-1"], "--diagnostics"),
        ("mem-layers-0", mr + ["--layers", "0"], "--layers"),
        ("mem-out-file", mr[:2] + ["--out", "{d}/afile"], "--out"),
        ("tab-lengths-neg", mt + ["--lengths", "10,-5"], "--lengths"),
        ("tab-lengths-word", mt + ["--lengths", "10,abc"], "--lengths"),
        ("tab-lengths-huge", mt + ["--lengths", str(10**12)], "--lengths"),
        ("tab-seeds-neg", mt + ["--seeds", "0,-1"], "--seeds"),
        ("tab-cells", mt + ["--cells", "lstm,tcn"], "--cells"),
        # -- inspect, gradcheck, export
        ("ig-length-1", ig + ["--length", "1"], "--length"),
        ("ig-hidden-0", ig + ["--hidden-size", "0"], "--hidden-size"),
        ("ig-hidden-memory", ig + ["--hidden-size", "16384", "--length", "10"], "--hidden-size"),
        ("ig-length-huge", ig + ["--length", "100000"], "--length"),
        ("ig-batch-neg", ig + ["--batch-size", "-1"], "--batch-size"),
        ("ig-cells", ig + ["--cells", "lstm,foo"], "--cell"),
        ("ig-out-file", ig[:2] + ["--out", "{d}/afile"], "--out"),
        ("ic-clip-0", ic + ["--clip", "0"], "--clip"),
        ("ic-gain-nan", ic + ["--gain", "nan"], "--gain"),
        ("ic-lr-inf", ic + ["--lr", "inf"], "--lr"),
        ("ic-steps-0", ic + ["--steps", "0"], "--steps"),
        ("gc-tol-nan", ["gradcheck", "--tol", "nan"], "--tol"),
        ("gc-tol-neg", ["gradcheck", "--tol", "-1"], "--tol"),
        ("gc-seed-neg", ["gradcheck", "--seed", "-1"], "--seed"),
        ("gc-layer", ["gradcheck", "--layer", "nonesuch"], "--layer"),
        ("export-out-folder", ["export", "{d}/no_run", "--out", "{d}/folder"], "--out"),
        ("export-format", ["export", "{d}/no_run", "--format", "tflite"], "--format"),
    ]
    return cases


CASES = _cases()


@pytest.mark.parametrize("argv,needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_command_line_exits_2_with_one_line(argv, needle, files, capsys):
    argv = [a.replace("{d}", str(files)) for a in argv]
    code, err = _run(argv, capsys)
    assert code == 2, (argv, err)
    assert len(err) == 1, err
    assert "Traceback" not in err[0] and "error" in err[0]
    assert needle in err[0], err[0]


def test_case_ids_are_unique():
    assert len({c[0] for c in CASES}) == len(CASES)


def test_refused_out_folders_are_not_created(files, capsys):
    """A refused command line leaves nothing behind: no run folder under a bad option."""
    argv = ["text", "train", str(files / "a.txt"), "--steps", "1", "--lr", "nan", "--out", str(files / "never")]
    assert _run(argv, capsys)[0] == 2
    assert not (files / "never").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_parent_is_refused(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, err = _run(["inspect", "clipping", "--out", str(ro / "run")], capsys)
    finally:
        ro.chmod(0o700)
    assert code == 2 and "--out" in err[0] and "permission" in err[0]


def test_time_budget_too_small_for_an_evaluation_still_ends(tmp_path):
    """A time budget far below one step (Python API; the CLI refuses it) ends after one step: the next
    evaluation time is computed, not reached by adding a tiny interval in a loop (that ran for hours)."""
    from rnnkit.tasks import text

    cfg = text.TextConfig(hidden_size=8, embedding_dim=4, batch_size=2, seq_len=4, minutes=1e-9,
                          eval_minutes=1e-9, sample_length=0, eval_chars=64)
    signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(Hung("train with minutes=1e-9 hung")))
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    try:
        lm = text.train(text="abcabcabd " * 40, config=cfg, out=tmp_path / "run", progress=False)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    assert lm.meta["step"] <= 3
    assert Path(tmp_path / "run" / "metrics.csv").is_file()


@pytest.mark.parametrize("field,value", [("lr", float("nan")), ("eval_minutes", -1.0), ("minutes", float("inf")),
                                         ("weight_decay", -1.0), ("clip", float("nan")), ("hidden_size", 10**6),
                                         ("eval_chars", 0), ("seed", -1), ("cell", "rnn")])
def test_text_config_check_refuses(field, value):
    from rnnkit.errors import UserError
    from rnnkit.tasks.text import TextConfig

    cfg = TextConfig(**{field: value})
    with pytest.raises(UserError, match=field.replace("_", "-")):
        cfg.check()
