"""Run bookkeeping of the text task: the overfitting warning, budgets added on resume, nothing-to-do resumes."""
import pytest

from rnnkit.tasks import text
from rnnkit.tasks.text_run import RunRecorder

CORPUS = "the cat sat on the mat. the dog sat on the log.\n" * 40


def recorder_with(rows):
    r = RunRecorder.__new__(RunRecorder)  # only the warning's state: rows, a log and the once-flag
    r.rows, r.overfit_warned, r.lines = rows, False, []
    r.log = r.lines.append
    return r


def rows_of(pairs):
    """[(train losses since the last evaluation, validation loss), ...] -> metrics.csv rows, 10 steps apart."""
    rows, step = [], 0
    for trains, val in pairs:
        for loss in trains:
            step += 10
            rows.append({"kind": "train", "step": step, "loss": loss})
        rows.append({"kind": "val", "step": step, "loss": val})
    return rows


def test_overfit_warning_names_the_best_step_once():
    r = recorder_with(rows_of([([2.0, 1.8], 1.9), ([1.6, 1.5], 1.55), ([1.4, 1.2], 1.6)]))
    r._warn_overfit()
    assert r.lines == []  # one evaluation above the best: noise, not yet a trend
    r.rows = rows_of([([2.0, 1.8], 1.9), ([1.6, 1.5], 1.55), ([1.4, 1.2], 1.6), ([1.2, 1.0], 1.58)])
    r._warn_overfit()
    assert len(r.lines) == 1
    line = r.lines[0]
    assert line.startswith("warning: overfitting from step 40 on: validation loss 1.5800 at step 80 is no better "
                           "than 1.5500 at step 40, while the training loss fell from 1.5500 to 1.1000")
    r.rows += [{"kind": "train", "step": 90, "loss": 0.9}, {"kind": "val", "step": 90, "loss": 1.7}]
    r._warn_overfit()
    assert len(r.lines) == 1  # once per run


@pytest.mark.parametrize("pairs", [
    [([2.0, 1.8], 1.9), ([1.6, 1.5], 1.55), ([1.4, 1.2], 1.5), ([1.1], 1.45)],  # validation still improves
    [([2.0, 1.8], 1.9), ([1.6, 1.5], 1.55), ([1.4, 1.2], 1.6), ([1.1], 1.5)],   # one bump, then better again
    [([2.0, 1.8], 1.9), ([1.6, 1.5], 1.55), ([1.7, 1.6], 1.6), ([1.7], 1.6)],   # both got worse: no overfitting
    [([2.0, 1.8], 1.9)],                                           # one evaluation: nothing to compare
])
def test_no_overfit_warning_without_the_pattern(pairs):
    r = recorder_with(rows_of(pairs))
    r._warn_overfit()
    assert r.lines == []


def tiny(**kw):
    base = dict(hidden_size=16, embedding_dim=4, batch_size=4, seq_len=8, steps=6, eval_every=3, sample_length=0,
                warmup_steps=2)
    base.update(kw)
    return text.TextConfig(**base)


def test_resume_budget_is_added_and_a_finished_run_is_returned_untouched(tmp_path):
    run = tmp_path / "r"
    first = text.train(text=CORPUS, config=tiny(), out=run, progress=False)
    assert first.meta["trained_steps"] == 6 and first.meta["best_step"] in (3, 6)
    lines = []
    same = text.train(text=CORPUS, resume=run, progress=False, log=lines.append)
    assert same.meta["trained_steps"] == 0 and same.meta["step"] == 6 and any("nothing to do" in x for x in lines)
    more = text.train(text=CORPUS, resume=run, config=text.TextConfig(steps=4), progress=False, log=lines.append)
    assert more.meta["step"] == 10 and more.meta["trained_steps"] == 4
    assert any("training 4 more steps (added to what the run already spent; 10 steps in all)" in x for x in lines)
    # a config without a budget finishes the run's own (already done here)
    again = text.train(text=CORPUS, resume=run, config=text.TextConfig(), progress=False)
    assert again.meta["trained_steps"] == 0 and again.meta["step"] == 10


def test_one_layer_dropout_applies_before_the_head_without_a_warning(recwarn):
    import numpy as np

    from rnnkit.tasks.text_model import build_model

    arch = dict(cell="gru", hidden_size=8, num_layers=1, embedding_dim=4, dropout=0.5, dtype="float64")
    m = build_model(6, arch, rng=0)
    assert not [w for w in recwarn if "dropout" in str(w.message)]
    ids = np.arange(12).reshape(2, 6) % 6
    a, _ = m.forward(ids, training=False)
    b, _ = m.forward(ids, training=True)  # masks before the head change the logits in training only
    assert not np.allclose(a, b) and np.allclose(a, m.forward(ids, training=False)[0])


def test_timed_evaluations_wait_while_they_would_cost_more_than_a_tenth_of_the_time(monkeypatch):
    cfg = text.TextConfig(minutes=10.0)  # timed evaluations every minute
    r = RunRecorder.__new__(RunRecorder)
    r.cfg, r.every, r.interval, r.next_time = cfg, None, 60.0, 60.0
    r.step, r._acc, r._n, r.rows = 0, 0.0, 0, []
    calls = []
    r.evaluate = lambda: calls.append(r.step)
    clock = {"s": 0.0}
    r.seconds = lambda: clock["s"]
    r._eval_cost, r._eval_end = 30.0, 50.0  # the last evaluation took 30 s and ended at 50 s
    for step, now in ((1, 59.0), (2, 61.0), (3, 200.0), (4, 321.0)):
        clock["s"] = now
        r.on_step({"step": step, "loss": 1.0, "lr": 1e-3})
    # due from 60 s on, but 9 x 30 s of training since 50 s are only done at 320 s
    assert calls == [4]
