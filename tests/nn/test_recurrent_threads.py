"""``threads=`` on the recurrent layers: the team size, the background thread and the BLAS threads, together.
(That every setting gives the reference's numbers is in test_recurrent_reference.py.)"""
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from rnnkit.errors import UserError
from rnnkit.nn.recurrent import GRU, LSTM, ElmanRNN, JordanRNN


def blas_threads() -> set[int]:
    return {d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"}


def spy_on_blas(layer, seen):
    """Record the BLAS thread count every time a core's forward or backward starts."""
    for core in layer.cores:
        for name in ("forward", "backward"):
            original = getattr(core, name)

            def spy(*args, _original=original, **kwargs):
                seen.append(blas_threads())
                return _original(*args, **kwargs)
            setattr(core, name, spy)


@pytest.mark.parametrize("make, threads, blas", [
    (lambda **kw: LSTM(3, 8, **kw), 1, 1),
    (lambda **kw: GRU(3, 8, **kw), 2, 1),       # a team of two, each member single-threaded in BLAS
    (lambda **kw: ElmanRNN(3, 8, **kw), 1, 1),  # all on the calling thread
    (lambda **kw: ElmanRNN(3, 8, **kw), 3, 2),  # the background thread and two BLAS threads
    (lambda **kw: JordanRNN(3, 8, 2, **kw), 2, 1),
    (lambda **kw: LSTM(3, 8, engine="reference", **kw), 2, 2),
], ids=["lstm1", "gru2", "elman1", "elman3", "jordan2", "reference2"])
def test_threads_set_the_team_the_background_thread_and_blas(make, threads, blas):
    layer = make(threads=threads, rng=0)
    for core in layer.cores:
        if hasattr(core, "team_size"):
            assert core.team_size(32) == threads
        elif hasattr(core, "overlap"):
            assert core.overlap == (threads > 1)
    seen = []
    spy_on_blas(layer, seen)
    with threadpool_limits(limits=2, user_api="blas"):
        ys, _ = layer.forward(np.ones((2, 4, 3)), training=True)
        assert blas_threads() == {2}  # restored after forward
        layer.backward(np.ones_like(ys))
        assert blas_threads() == {2}
    assert seen == [{blas}, {blas}]


def test_automatic_threads_leave_blas_alone():
    layer = ElmanRNN(3, 8, rng=0)
    assert layer.threads is None and layer.blas_threads is None and layer.cores[0].overlap
    seen = []
    spy_on_blas(layer, seen)
    with threadpool_limits(limits=2, user_api="blas"):
        layer.forward(np.ones((2, 4, 3)))
    assert seen == [{2}]


def test_threads_can_be_changed_later():
    lstm, elman = LSTM(3, 384, rng=0), ElmanRNN(3, 8, rng=0)
    automatic = lstm.cores[0].team_size(32)
    lstm.threads, elman.threads = 3, 1
    assert lstm.cores[0].team_size(32) == 3 and lstm.blas_threads == 1
    assert not elman.cores[0].overlap and elman.blas_threads == 1
    lstm.threads, elman.threads = None, None
    assert lstm.cores[0].team_size(32) == automatic and lstm.blas_threads is None
    assert elman.cores[0].overlap and elman.blas_threads is None
    with pytest.raises(UserError, match="threads"):
        lstm.threads = 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_threads_are_named(bad):
    with pytest.raises(UserError, match=r"threads must be a whole number >= 1"):
        LSTM(3, 4, threads=bad)
