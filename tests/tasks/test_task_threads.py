"""``threads=`` (``rnnkit --threads N``) reaches the recurrent layers of the forecast, classify and memory tasks."""
import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.errors import UserError
from rnnkit.tasks import memory
from rnnkit.tasks.classify_config import ClassifyConfig
from rnnkit.tasks.classify_model import ClassifierNet
from rnnkit.tasks.forecast import Forecaster
from rnnkit.tasks.forecast_config import ForecastConfig


def test_forecaster_layers_get_the_configured_threads():
    y = 10 + np.sin(np.arange(80) / 3.0)
    f = Forecaster(horizon=3, season=1, cell="lstm", hidden_size=8, epochs=2, threads=2, seed=0).fit(y)
    assert f.nets_ and all(net.encoder.threads == 2 for net in f.nets_)
    assert Forecaster(horizon=3, season=1, hidden_size=8, epochs=2, seed=0).fit(y).nets_[0].encoder.threads is None
    with pytest.raises(UserError, match="threads"):
        ForecastConfig(horizon=3, threads=0).check()


def test_a_loaded_forecaster_chooses_its_threads_again(tmp_path):
    """threads is the training machine's setting: a saved forecaster loads with threads None (automatic)."""
    y = 10 + np.sin(np.arange(80) / 3.0)
    f = Forecaster(horizon=3, season=1, cell="gru", hidden_size=8, epochs=2, threads=2, seed=0).fit(y)
    f.save(tmp_path / "f.safetensors")
    back = Forecaster.load(tmp_path / "f.safetensors")
    assert back.config.threads is None and all(net.encoder.threads is None for net in back.nets_)


def test_classifier_network_and_config_take_threads():
    arch = dict(model="rnn", stride=1, channels=[], kernels=[], cell="gru", hidden_size=6, num_layers=2,
                bidirectional=True, pool="mean", front_size=4, dropout=0.0)
    net = ClassifierNet(2, 3, arch, rng=0, threads=2)
    assert net.rnn.threads == 2 and all(core.threads == 2 for core in net.rnn.cores)  # the GRU's team size
    assert ClassifierNet(2, 3, arch, rng=0).rnn.threads is None
    with pytest.raises(UserError, match="threads"):
        ClassifyConfig(threads=0).check()


def test_memory_run_passes_threads_and_the_cli_hands_them_over(tmp_path, monkeypatch):
    cfg = memory.MemoryConfig(task="adding", length=6, hidden_size=4, max_steps=2, eval_every=1, eval_size=8,
                              test_size=8, batch_size=4, threads=1)
    model, _ = memory.train(cfg)
    assert model.rnn.threads == 1
    with pytest.raises(UserError, match="threads"):
        memory.MemoryConfig(threads=-1).validate()

    seen = []
    real = memory.build_model
    monkeypatch.setattr(memory, "build_model", lambda *a, **kw: seen.append(kw.get("threads")) or real(*a, **kw))
    code = main(["--threads", "2", "memory", "run", "--task", "adding", "--length", "5", "--hidden-size", "4",
                 "--max-steps", "1", "--out", str(tmp_path / "run")])
    assert code == 0 and seen and seen[0] == 2
