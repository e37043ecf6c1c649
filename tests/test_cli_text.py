"""``rnnkit text ...`` end to end in temporary folders: train, resume, fine-tune, generate, evaluate, errors."""
import json

import pytest

from rnnkit.cli import main

TINY = ["--hidden-size", "16", "--embedding-dim", "4", "--batch-size", "2", "--seq-len", "8",
        "--sample-length", "20", "--no-progress"]
CORPUS = "to be or not to be, that is the question.\n" * 20


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text(CORPUS, encoding="utf-8")
    return p


@pytest.fixture
def run(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    assert main(["text", "train", str(corpus), "--out", str(out), "--steps", "6", "--eval-every", "3", *TINY]) == 0
    capsys.readouterr()
    return out


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnkit text: error:"), err  # one line, no traceback
    return err[0]


def test_train_writes_a_run_folder_and_prints_a_sample(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    assert main(["text", "train", str(corpus), "--out", str(out), "--steps", "6", "--eval-every", "3", *TINY]) == 0
    stdout = capsys.readouterr().out
    assert "val " in stdout and "nats/char" in stdout and "bits/char" in stdout
    assert "--- sample from the best checkpoint" in stdout
    for name in ("config.json", "metrics.csv", "learning_curves.png", "best.safetensors", "ckpt-00000006.safetensors"):
        assert (out / name).exists(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["hidden_size"] == 16 and cfg["config"]["clip"] == 5.0 and cfg["corpus_chars"] == len(CORPUS)


def test_train_without_files_uses_the_builtin_corpus(tmp_path, capsys):
    assert main(["text", "train", "--out", str(tmp_path / "b"), "--steps", "2", *TINY]) == 0
    stdout = capsys.readouterr().out
    assert "builtin" in stdout and "--- sample" in stdout


def test_resume_and_init_from(tmp_path, corpus, run, capsys):
    assert main(["text", "train", "--resume", str(run), "--steps", "9"]) == 0  # 9 more steps after the 6
    stdout = capsys.readouterr().out
    assert "resuming" in stdout and "training 9 more steps (added" in stdout and "done: 15 steps" in stdout
    ft = tmp_path / "ft"
    assert main(["text", "train", str(corpus), "--init-from", str(run), "--out", str(ft), "--steps", "2",
                 *TINY]) == 0
    assert "fine-tuning from" in capsys.readouterr().out


def test_existing_run_folder_is_not_overwritten(corpus, run, capsys):
    assert main(["text", "train", str(corpus), "--out", str(run), "--steps", "2", *TINY]) == 2
    assert "--resume" in error_line(capsys)


def test_generate_streams_and_options(tmp_path, run, capsys):
    assert main(["text", "generate", str(run), "--prime", "to be", "--length", "30", "--seed", "1"]) == 0
    out1 = capsys.readouterr().out
    assert out1.startswith("to be") and len(out1.rstrip("\n")) >= 30
    assert main(["text", "generate", str(run), "--prime", "to be", "--length", "30", "--seed", "1"]) == 0
    assert capsys.readouterr().out == out1
    pf = tmp_path / "prime.txt"
    pf.write_text("that is", encoding="utf-8")
    assert main(["text", "generate", str(run), "--prime-file", str(pf), "--length", "10", "--num-samples", "3",
                 "--temperature", "0", "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("--- sample") == 3 and out.count("that is") == 3


def test_generate_prime_outside_vocabulary_names_characters(run, capsys):
    assert main(["text", "generate", str(run), "--prime", "to bé!", "--strict"]) == 2
    line = error_line(capsys)
    assert "prime text has 2 character(s) the model never saw in training" in line
    assert "'é'" in line and "'!'" in line
    # default: the characters are dropped, named on one warning line, and the sample is that of the clean prime
    assert main(["text", "generate", str(run), "--prime", "to bé!!", "--length", "20", "--seed", "3"]) == 0
    got = capsys.readouterr()
    warning, using = got.err.strip().splitlines()
    assert warning == "warning: dropped from the prime 3 character(s) the model never saw in training: '!' x2, 'é' x1"
    assert main(["text", "generate", str(run), "--prime", "to b", "--length", "20", "--seed", "3"]) == 0
    ref = capsys.readouterr()
    assert got.out == ref.out and got.out.startswith("to b") and ref.err.strip() == using


def test_evaluate_skips_unseen_characters_and_strict_refuses(tmp_path, run, capsys):
    clean = "that is the question, to be or not.\n" * 6
    dirty = "`" + clean[:40] + "±$" + clean[40:120] + "``" + clean[120:] + "$±"
    (tmp_path / "clean.txt").write_text(clean, encoding="utf-8")
    (tmp_path / "dirty.txt").write_text(dirty, encoding="utf-8")
    assert main(["text", "evaluate", str(run), str(tmp_path / "dirty.txt"), "--score", "to`be$"]) == 0
    using, *out = capsys.readouterr().out.splitlines()
    assert main(["text", "evaluate", str(run), str(tmp_path / "clean.txt"), "--score", "tobe"]) == 0
    ref = capsys.readouterr().out.splitlines()[1:]
    assert using.startswith("using the best checkpoint")
    assert out[0].endswith(f": {len(clean) - 1:,} characters predicted") and ref[0].endswith(out[0].split(":")[-1])
    assert out[1] == ("skipped (not scored, not fed to the model; --strict refuses them) 7 character(s) the model "
                      "never saw in training: '`' x3, '$' x2, '±' x2")
    assert out[2].startswith("loss ") and out[2] == ref[1]  # identical loss: the same text without them
    assert out[3] == "skipped in --score 2 character(s) the model never saw in training: '$' x1, '`' x1"
    assert out[4].replace("'to`be$'", "'tobe'") == ref[2]
    assert main(["text", "evaluate", str(run), str(tmp_path / "dirty.txt"), "--strict"]) == 2
    line = error_line(capsys)
    assert "the evaluation text has 3 character(s) the model never saw in training: " in line
    assert "remove or replace them" in line and "'±'" in line
    assert main(["text", "evaluate", str(run), "--score", "to`be", "--strict"]) == 2
    assert "scored text has 1 character(s)" in error_line(capsys)


def test_evaluate_and_score(corpus, run, capsys):
    assert main(["text", "evaluate", str(run), str(corpus), "--score", "to be"]) == 0
    out = capsys.readouterr().out
    assert "nats/char" in out and "bits/char" in out and "perplexity" in out and "log-probability of 'to be'" in out
    assert main(["text", "evaluate", str(run)]) == 2
    assert "--score" in error_line(capsys)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        (b"", "is empty"),
        (b"abc\n\xc3\x28 more", "byte 0xc3 at byte offset 4 (line 2)"),
        ("short".encode(), "lower --batch-size or --seq-len"),
    ],
)
def test_train_bad_inputs_exit_2_with_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "data.txt"
    if content is not None:
        path.write_bytes(content)
    assert main(["text", "train", str(path), "--out", str(tmp_path / "r"), "--steps", "1", *TINY]) == 2
    assert message in error_line(capsys)


def test_replace_bad_bytes_option(tmp_path, capsys):
    path = tmp_path / "bad.txt"
    path.write_bytes(CORPUS.encode() + b"\xff\xfe tail\n")
    assert main(["text", "train", str(path), "--out", str(tmp_path / "r"), "--steps", "1", "--replace-bad-bytes",
                 *TINY]) == 0


def test_missing_run_and_corrupt_checkpoint(tmp_path, run, capsys):
    assert main(["text", "generate", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in error_line(capsys)
    best = run / "best.safetensors"
    best.write_bytes(best.read_bytes()[:50])
    assert main(["text", "generate", str(run)]) == 2
    assert "corrupt or truncated" in error_line(capsys)


class _NotHandled(Exception):
    pass


@pytest.fixture
def signals_guarded(monkeypatch):
    """Handlers that fail the test (instead of killing pytest) if the command does not catch the signal."""
    import signal

    def fail(signum, frame):
        raise _NotHandled(signal.Signals(signum).name)

    old = {s: signal.signal(s, fail) for s in (signal.SIGINT, signal.SIGTERM)}
    yield fail
    for s, h in old.items():
        signal.signal(s, h)


def _signal_at_step(monkeypatch, step, signum, times=1):
    import signal

    from rnnkit.tasks import text_run

    original = text_run.RunRecorder.on_step

    def on_step(self, record):  # the signal arrives during a step, as from Ctrl-C or `kill`
        result = original(self, record)
        if record["step"] == step:
            for _ in range(times):
                signal.raise_signal(signum)
        return result

    monkeypatch.setattr(text_run.RunRecorder, "on_step", on_step)


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_stops_after_the_step_saves_and_resumes(tmp_path, corpus, capsys, monkeypatch,
                                                                  signals_guarded, name):
    import signal

    _signal_at_step(monkeypatch, 4, getattr(signal, name))
    out = tmp_path / "run"
    assert main(["text", "train", str(corpus), "--out", str(out), "--steps", "50", "--eval-every", "3", *TINY]) == 130
    captured = capsys.readouterr()
    stdout = captured.out
    assert f"interrupted at step 4: checkpoint saved; continue with rnnkit text train --resume {out}" in stdout
    assert "done: 4 steps" in stdout and "--- sample" not in stdout  # issue 15: no sample after an interrupt
    assert f"rnnkit text train: interrupted ({name}); checkpoint saved in {out}" in captured.err
    assert not list(out.glob(".tmp-*")) and not (out / ".rnnkit.lock").exists()
    assert (out / "ckpt-00000004.safetensors").exists() and (out / "learning_curves.png").exists()
    assert signal.getsignal(signal.SIGINT) is signals_guarded and signal.getsignal(signal.SIGTERM) is signals_guarded
    monkeypatch.undo()
    assert main(["text", "train", "--resume", str(out)]) == 0  # finishes the run's own 50 steps
    assert "done: 50 steps" in capsys.readouterr().out


def test_second_ctrl_c_aborts_at_once(tmp_path, corpus, capsys, monkeypatch, signals_guarded):
    import signal

    _signal_at_step(monkeypatch, 4, signal.SIGINT, times=2)
    out = tmp_path / "run"
    assert main(["text", "train", str(corpus), "--out", str(out), "--steps", "50", "--eval-every", "3", *TINY]) == 130
    captured = capsys.readouterr()
    assert "interrupted at step" not in captured.out
    assert captured.err.strip().splitlines()[-1] == "rnnkit text: interrupted"
    assert not list(out.glob(".tmp-*")) and not (out / ".rnnkit.lock").exists()
    assert not (out / "ckpt-00000004.safetensors").exists()
    assert signal.getsignal(signal.SIGINT) is signals_guarded


def best_val_row(out):
    """(step, loss) of the lowest validation loss in a run's metrics.csv, computed here from the file."""
    import csv

    rows = [r for r in csv.DictReader(open(out / "metrics.csv")) if r["kind"] == "val"]
    best = min(rows, key=lambda r: float(r["loss"]))
    return int(best["step"]), float(best["loss"])


def test_generate_evaluate_and_final_sample_say_which_checkpoint(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    assert main(["text", "train", str(corpus), "--out", str(out), "--steps", "12", "--eval-every", "3", *TINY]) == 0
    step, loss = best_val_row(out)
    said = f"best checkpoint {out / 'best.safetensors'} (step {step}, validation loss {loss:.4f} nats/char)"
    assert f"--- sample from the {said}" in capsys.readouterr().out
    assert main(["text", "generate", str(out), "--length", "5", "--seed", "0"]) == 0
    captured = capsys.readouterr()
    assert f"using the {said}" in captured.err and "using" not in captured.out  # stdout: only the text
    assert main(["text", "evaluate", str(out), str(corpus)]) == 0
    assert f"using the {said}" in capsys.readouterr().out
    assert main(["text", "evaluate", str(out), str(corpus), "--checkpoint", "latest"]) == 0
    assert f"checkpoint {out / 'ckpt-00000012.safetensors'} (step 12" in capsys.readouterr().out


def test_resume_adds_minutes_and_steps_and_a_finished_run_has_nothing_to_do(tmp_path, run, capsys):
    # the fixture's run trained its whole budget (6 steps): resuming it without a budget changes nothing
    before = (run / "metrics.csv").read_text()
    assert main(["text", "train", "--resume", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "nothing to do" in out and "--- sample" not in out and "done:" not in out
    assert (run / "metrics.csv").read_text() == before
    # --minutes is added to the time already spent: the new budget is printed as "more" and in all
    assert main(["text", "train", "--resume", str(run), "--minutes", "0.02", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "training 0.02 more minutes (added to what the run already spent;" in out and "--- sample" in out
    import re

    total = float(re.search(r"; ([\d.]+) min in all\)", out).group(1))
    spent = float(re.search(r"at step 6 \(([\d.]+) min trained\)", out).group(1))
    assert abs(total - (spent + 0.02)) < 0.006


def test_help_states_resume_semantics_and_one_default_temperature(capsys):
    import inspect

    from rnnkit.tasks import text
    from rnnkit.tasks.text_defaults import DEFAULT_TEMPERATURE

    assert main(["text", "train", "--help"]) == 0
    helptext = " ".join(capsys.readouterr().out.split())
    assert "with --resume: minutes MORE, added to the time the run already trained" in helptext
    assert main(["text", "generate", "--help"]) == 0
    assert f"(default {DEFAULT_TEMPERATURE})" in " ".join(capsys.readouterr().out.split())
    assert inspect.signature(text.generate).parameters["temperature"].default == DEFAULT_TEMPERATURE
    assert text.TextConfig().sample_temperature == DEFAULT_TEMPERATURE


def test_evaluate_spelling_prints_the_table(tmp_path, corpus, run, capsys):
    assert main(["text", "evaluate", str(run), "--spelling", "--temperatures", "0.5", "1",
                 "--spelling-chars", "200"]) == 0
    out = capsys.readouterr().out
    assert "distinct words of the training text" in out
    lines = out.splitlines()
    assert any(line.split()[:2] == ["validation", "-"] for line in lines)
    for source in ("model", "5-gram"):
        assert [line.split()[1] for line in lines if line.split()[:1] == [source]] == ["0.5", "1"]
    corpus.write_text(CORPUS.replace("question", "answer"), encoding="utf-8")  # the training file changed
    assert main(["text", "evaluate", str(run), "--spelling"]) == 2
    assert "changed since the model was trained" in error_line(capsys)
