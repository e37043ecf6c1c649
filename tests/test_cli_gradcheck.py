"""`rnnkit gradcheck`: table output, exit status 0 on success, 1 on a wrong gradient, 2 on a bad name."""
import numpy as np

from rnnkit import cli
from rnnkit.commands import gradcheck as cmd
from rnnkit.nn.gradcheck import gradcheck
from rnnkit.nn.layers import Dense


def test_subset_passes(capsys):
    assert cli.main(["gradcheck", "--layer", "dense", "cross_entropy", "--layer", "embedding", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    for row in ("dense", "cross_entropy", "embedding"):
        assert row in out
    assert "FAIL" not in out and "all passed (3 cases" in out
    assert "input" in out.split("embedding")[0]  # dense checks its input ...
    assert all("input" not in line for line in out.splitlines() if line.startswith("embedding"))  # ... not ints


def test_every_layer_type_is_covered():
    names = set(cmd.all_cases())
    assert {"dense", "embedding", "sequential", "sigmoid", "tanh", "relu", "softmax",
            "mse", "cross_entropy", "gaussian_nll", "pinball"} <= names
    try:
        import rnnkit.nn.recurrent  # noqa: F401
    except ImportError:
        return
    assert {"elman", "jordan", "lstm", "gru", "lstm_last"} <= names


def test_recurrent_case_checks_both_state_arrays(capsys):
    if "lstm" not in cmd.all_cases():
        return
    assert cli.main(["gradcheck", "--layer", "lstm"]) == 0
    out = capsys.readouterr().out
    assert "l1_reverse.W_h" in out and "state[1]" in out


class _Broken(Dense):
    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["W"] *= 1.01
        return dx


def test_wrong_gradient_exits_1(monkeypatch, capsys):
    cases = {"broken": lambda rng: gradcheck(_Broken(3, 2, dtype=np.float64, rng=rng),
                                             rng.standard_normal((2, 3)), rng=rng)}
    monkeypatch.setattr(cmd, "all_cases", lambda: cases)
    assert cli.main(["gradcheck"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "1 FAILED" in out


def test_unknown_layer_exits_2(capsys):
    assert cli.main(["gradcheck", "--layer", "transformer"]) == 2
    assert "unknown --layer transformer" in capsys.readouterr().err
