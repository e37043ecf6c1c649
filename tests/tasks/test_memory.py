"""Memory tasks: each is learned at a short length, generation reproduces the corpus, clipping tames an
exploding Elman network, and the model wiring has correct gradients."""
from dataclasses import asdict

import numpy as np
import pytest

from rnnkit.data import sequences as sq
from rnnkit.errors import UserError
from rnnkit.tasks import memory as M


def _train(**kw):
    base = dict(hidden_size=32, batch_size=32, lr=1e-2, max_steps=1500, max_seconds=60, eval_every=25,
                eval_size=256, test_size=500, seed=0)
    base.update(kw)
    return M.train(M.MemoryConfig(**base))


@pytest.mark.parametrize("task,length,cell,extra", [
    ("adding", 10, "lstm", {}),
    ("order", 10, "lstm", {}),
    ("schedule", 20, "gru", {}),
    ("words", 1, "lstm", {}),
    ("copy", 2, "gru", {"hidden_size": 64, "batch_size": 64}),
])
def test_each_task_is_learned_at_a_short_length(task, length, cell, extra):
    model, res = _train(task=task, length=length, cell=cell, **extra)
    spec = M.TASKS[task]
    assert res.solved and res.stopped == "solved", (task, res.test_metric)
    assert spec.is_solved(res.test_metric) and not spec.is_solved(spec.chance)
    assert res.steps < 1500 and res.seconds > 0
    solved_eval = [r for r in res.history if r["kind"] == "eval" and r["step"] == res.steps][0]
    assert spec.is_solved(solved_eval["val_metric"]) and solved_eval["test_metric"] == res.test_metric


def test_untrained_model_scores_near_chance():
    spec = M.TASKS["adding"]
    model = M.build_model(spec, "lstm", 16, rng=0)
    model.params["head.W"][...] = 0
    model.params["head.b"][...] = 1.0  # always predicts the mean
    mse = M.score(spec, model, sq.adding_problem(4000, 20, rng=1))
    assert abs(mse - spec.chance) < 0.01


def test_budget_stops_an_unsolved_run():
    model, res = _train(task="adding", length=30, cell="elman", max_steps=20, eval_every=10)
    assert not res.solved and res.stopped == "max_steps" and res.steps == 20
    assert np.isfinite(res.test_metric)


@pytest.mark.filterwarnings("ignore:step")
def test_monitor_columns_land_in_history():
    _, res = _train(task="adding", length=40, cell="elman", max_steps=6, monitor_every=2, log_every=2)
    rows = [r for r in res.history if "dh_ratio" in r]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert {"grad_norm", "grad_norm/rnn.l0.W_h", "dh_first", "dh_last"} <= set(rows[0])
    assert all(0 < r["dh_ratio"] < 1e-2 for r in rows)  # Elman at T=40: little signal reaches step 0


def test_generation_after_training_reproduces_the_sentences():
    model, res = _train(task="words", length=1, cell="gru", lr=2e-2)
    assert res.solved
    for sentence in sq.SENTENCES:
        assert M.generate_words(model, sentence.split()[0]) == sentence
    assert M.generate_words(model, "the baker", max_words=4).split()[:2] == ["the", "baker"]
    with pytest.raises(UserError, match="unknown words"):
        M.generate_words(model, "zebra")


def test_sequence_model_gradients_match_finite_differences():
    spec = M.TASKS["copy"]
    model = M.build_model(spec, "gru", 5, dtype=np.float64, rng=0)
    batch = sq.copy_task(3, 2, rng=1, dtype=np.float64)
    model.zero_grad()
    _, dout = M.loss_and_grad(spec, model.forward(batch.xs), batch)
    model.backward(dout)
    rng = np.random.default_rng(0)
    for name in ("rnn.l0.W_h", "head.W"):
        p = model.params[name]
        for idx in [tuple(rng.integers(0, s) for s in p.shape) for _ in range(3)]:
            old = p[idx]
            p[idx] = old + 1e-6
            up = M.loss_and_grad(spec, model.forward(batch.xs), batch)[0]
            p[idx] = old - 1e-6
            down = M.loss_and_grad(spec, model.forward(batch.xs), batch)[0]
            p[idx] = old
            assert model.grads[name][idx] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-9)


def test_clipping_tames_an_exploding_elman():
    free = M.exploding_demo(None, steps=80, length=50)
    clipped = M.exploding_demo(1.0, steps=80, length=50)
    assert not np.isfinite(free["loss"][-1]) and len(free["loss"]) < 80
    norms = np.array(free["grad_norm"])
    assert norms[np.isfinite(norms)].max() > 1e6  # unclipped, the raw gradients explode
    assert len(clipped["loss"]) == 80 and np.isfinite(clipped["loss"]).all()
    assert max(clipped["grad_norm"]) > 10  # clipping was active
    # seeds 0-2 all end near the mean-predictor loss 0.167 (measured 0.17-0.20 over the last 50 of 300 steps)
    assert np.mean(clipped["loss"][-20:]) < 0.5


def test_config_and_task_errors():
    with pytest.raises(UserError, match="unknown task"):
        M.get_task("sorting")
    with pytest.raises(UserError, match="unknown cell"):
        M.MemoryConfig(cell="transformer").validate()
    with pytest.raises(UserError, match="length"):
        M.MemoryConfig(length=0).validate()


def test_save_load_round_trip_and_bad_files(tmp_path):
    cfg = M.MemoryConfig(task="order", length=12, cell="gru", hidden_size=6, num_layers=2, dtype="float64", seed=3)
    model = M.build_model(M.get_task(cfg.task), cfg.cell, cfg.hidden_size, cfg.num_layers, dtype=np.float64, rng=7)
    path = M.save(model, tmp_path / "run" / M.MODEL_FILE, cfg, step=42)
    for where in (path, tmp_path / "run"):  # the file or its run folder
        loaded, cfg2 = M.load(where)
        assert cfg2 == cfg and type(loaded) is type(model) and loaded.dtype == np.float64
        assert loaded.params.keys() == model.params.keys()
        assert all(np.array_equal(loaded.params[k], model.params[k]) for k in model.params)
        batch = sq.temporal_order(3, 12, np.random.default_rng(0), dtype=np.float64)
        assert np.array_equal(loaded.forward(batch.xs), model.forward(batch.xs))
    with pytest.raises(UserError, match="has no model.safetensors"):
        M.load(tmp_path / "nowhere")
    from rnnkit.io import save_checkpoint

    save_checkpoint(tmp_path / "other.safetensors", model.state_dict(), {"config": {"cell": "gru"}})
    with pytest.raises(UserError, match="not written by `rnnkit memory run`.*task"):
        M.load(tmp_path / "other.safetensors")
    small = M.build_model(M.get_task("order"), "gru", 5, 2, dtype=np.float64, rng=0)
    save_checkpoint(tmp_path / "shape.safetensors", small.state_dict(), {"config": asdict(cfg)})
    with pytest.raises(UserError):  # weights that do not fit the config's architecture
        M.load(tmp_path / "shape.safetensors")
