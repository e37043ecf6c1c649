"""``workers=`` on the classification and forecasting tasks: with 2 Ray workers and the same seed, a
classifier (recurrent model, no dropout or BatchNorm: their masks and batch statistics are per worker) and a
forecaster equal one process; the CLI flags reach the task; without Ray, ``--workers 2`` exits 2 with the hint."""
import sys

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.tasks.classify import SequenceClassifier
from rnnkit.tasks.forecast import ForecastConfig, Forecaster


def cases():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 2, 12))
    y = np.where(X[:, 0].mean(1) > 0, "up", "down")
    return X, y


@pytest.mark.slow
def test_classifier_with_two_workers_equals_one_process(ray_local):
    X, y = cases()
    probs = []
    for workers in (1, 2):
        clf = SequenceClassifier(model="rnn", hidden_size=8, front_size=4, dropout=0.0, n_estimators=1,
                                 epochs=4, patience=10, batch_size=8, max_minutes=None, dtype="float64",
                                 normalize="global", random_state=0, workers=workers)
        probs.append(clf.fit(X, y).predict_proba(X))
    assert np.ptp(probs[0]) > 0.05  # trained, not constant
    np.testing.assert_allclose(probs[1], probs[0], rtol=1e-9, atol=1e-11)


@pytest.mark.slow
def test_forecaster_with_two_workers_equals_one_process(ray_local):
    t = np.arange(90)
    y = 50 + 0.5 * t + 5 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(1).normal(0, 0.5, 90)
    means = []
    for workers in (1, 2):
        cfg = ForecastConfig(horizon=4, hidden_size=6, epochs=5, dtype="float64", seed=0, workers=workers)
        model = Forecaster(config=cfg).fit(y)
        means.append(model.predict()["series"]["mean"])
    np.testing.assert_allclose(means[1], means[0], rtol=1e-9)


def test_cli_workers_reach_the_tasks_and_need_ray(monkeypatch, tmp_path, capsys):
    import rnnkit.distributed as dist

    def missing(what="--workers"):
        from rnnkit.errors import UserError
        raise UserError(f'{what} needs Ray: pip install "rnnkit[ray]"')

    monkeypatch.setattr(dist, "require_ray", missing)
    data = tmp_path / "s.csv"
    data.write_text("v\n" + "\n".join(str(float(i % 7)) for i in range(60)) + "\n")
    assert main(["forecast", "train", str(data), "--target", "v", "--horizon", "3", "--workers", "2",
                 "--out", str(tmp_path / "f")]) == 2
    assert 'pip install "rnnkit[ray]"' in capsys.readouterr().err
    ts = tmp_path / "c.csv"
    rows = ["label,a,b,c,d"] + [f"{'xy'[i % 2]},{i},{i + 1},{i % 3},{i % 5}" for i in range(20)]
    ts.write_text("\n".join(rows) + "\n")
    assert main(["classify", "train", str(ts), "--workers", "2", "--out", str(tmp_path / "c")]) == 2
    assert 'pip install "rnnkit[ray]"' in capsys.readouterr().err
    assert main(["classify", "train", str(ts), "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
