"""The LSTM and GRU cores' team of threads: every team size gives the one-thread result (and PyTorch's),
and failures or interrupts in a member leave no thread running and the layer usable. Also projected input
(x @ W_x given instead of x), on every core."""
import threading
import time

import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.nn.recurrent import GRU, LSTM, ElmanRNN, JordanRNN
from rnnkit.nn.recurrent.fast import featuremajor, team
from rnnkit.nn.recurrent.fast.gru import GRUCore
from rnnkit.nn.recurrent.fast.lstm import LSTMCore
from tests.nn.test_recurrent_torch import check_parity


def run_layer(cls, threads, monkeypatch, *, layers=2, bidirectional=True, masked=True, H=7, seed=3):
    """Forward and backward of a float64 LSTM or GRU on fixed data with a given team size."""
    rng = np.random.default_rng(seed)
    B, T, D = 5, 6, 3
    layer = cls(D, H, num_layers=layers, bidirectional=bidirectional, dtype=np.float64, rng=0, threads=threads)
    layer.record_dh = True
    xs = rng.standard_normal((B, T, D))
    mask = (np.arange(T)[None] < np.array([6, 4, 1, 6, 3])[:, None]) if masked else None
    state = tuple(rng.standard_normal(s.shape) for s in layer.initial_state(B))
    ys, final = layer.forward(xs, state, mask=mask, training=True)
    gates = layer.gate_activations()
    w = rng.standard_normal(ys.shape)
    dxs, dstate0 = layer.backward(w, tuple(rng.standard_normal(s.shape) for s in final))
    return ys, final, dxs, dstate0, dict(layer.grads), layer.dhs_, gates


@pytest.mark.parametrize("cls", [LSTM, GRU], ids=["lstm", "gru"])
@pytest.mark.parametrize("threads", [2, 3, 7])
@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
def test_every_team_size_gives_the_single_thread_result(cls, threads, masked, monkeypatch):
    """Hidden units split over 2, 3 and 7 members (one unit each): outputs, states, input, state and weight
    gradients, recorded dL/dh and gate values equal one member's to round-off."""
    ref = run_layer(cls, 1, monkeypatch, masked=masked)
    got = run_layer(cls, threads, monkeypatch, masked=masked)
    for a, b in zip(ref[:4], got[:4]):
        for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            np.testing.assert_allclose(y, x, rtol=1e-12, atol=1e-13)
    for k in ref[4]:
        np.testing.assert_allclose(got[4][k], ref[4][k], rtol=1e-11, atol=1e-12, err_msg=k)
    for x, y in zip(ref[5], got[5]):
        np.testing.assert_allclose(y, x, rtol=1e-12, atol=1e-13)
    assert ref[6].keys() == got[6].keys()
    for core in ref[6]:
        for g in ref[6][core]:
            np.testing.assert_allclose(got[6][core][g], ref[6][core][g], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-8), (np.float32, 1e-5)], ids=["f64", "f32"])
def test_a_team_of_three_matches_pytorch(kind, dtype, tol, monkeypatch):
    check_parity(kind, 2, True, dtype, tol, threads=3)


def test_automatic_team_size():
    small, large = LSTMCore(4, 8, rng=np.random.default_rng(0)), GRUCore(4, 384, rng=np.random.default_rng(0))
    assert small.team_size(32) == 1  # too little work per step for a barrier to pay
    assert large.team_size(1) == 1
    assert large.team_size(32) == min(team.available_cores(), 4)
    large.threads = 2
    assert large.team_size(1) == 2


def test_shares_cover_the_range_evenly():
    for n in (1, 5, 7, 384):
        for parts in (1, 2, 3, 4):
            pieces = team.shares(n, parts)
            assert pieces[0][0] == 0 and pieces[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
            sizes = [hi - lo for lo, hi in pieces]
            assert max(sizes) - min(sizes) <= 1


def test_a_failing_member_stops_the_team_and_raises_its_own_error():
    """Member 2 fails after its first sync: the others must not wait at the barrier for ever, and the caller
    sees the member's exception (not the broken barrier)."""
    reached = []

    def fn(k, sync):
        for step in range(50):
            if k == 2 and step == 1:
                raise ValueError("member 2 failed")
            sync()
            reached.append((k, step))

    with pytest.raises(ValueError, match="member 2 failed"):
        team.run(3, fn)
    assert max(step for _, step in reached) <= 1
    # the pool is still usable
    out = []
    team.run(3, lambda k, sync: out.append(k))
    assert sorted(out) == [0, 1, 2]


@pytest.mark.parametrize("cls", [LSTM, GRU], ids=["lstm", "gru"])
def test_an_interrupt_in_member_0_waits_for_the_others_and_leaves_the_layer_usable(cls, monkeypatch):
    """A KeyboardInterrupt in member 0 after the loop, while member 1 is still about to write its weight
    gradients (delayed here): it is raised only once member 1 has finished, so nothing is written after it;
    the next forward/backward gives the one-thread result."""
    rng = np.random.default_rng(5)
    xs = rng.standard_normal((3, 12, 4))
    layer = cls(4, 6, dtype=np.float64, rng=0, threads=2)
    ys, _ = layer.forward(xs, training=True)
    original = featuremajor.FeatureMajorCore.weight_grads

    def slow_or_interrupted(self, *args, **kwargs):
        if threading.current_thread() is threading.main_thread():
            raise KeyboardInterrupt
        time.sleep(0.3)
        original(self, *args, **kwargs)

    monkeypatch.setattr(featuremajor.FeatureMajorCore, "weight_grads", slow_or_interrupted)
    with pytest.raises(KeyboardInterrupt):
        layer.backward(np.ones_like(ys))
    layer.zero_grad()
    time.sleep(0.5)
    assert all(not g.any() for g in layer.grads.values())  # member 1 wrote before the interrupt was raised
    monkeypatch.setattr(featuremajor.FeatureMajorCore, "weight_grads", original)
    ys, _ = layer.forward(xs, training=True)
    dxs, _ = layer.backward(np.ones_like(ys))
    ref = cls(4, 6, dtype=np.float64, rng=0, threads=1)
    ref.forward(xs, training=True)
    np.testing.assert_allclose(dxs, ref.backward(np.ones_like(ys))[0], rtol=1e-12, atol=1e-14)


def test_an_interrupt_while_waiting_for_the_members_still_waits_for_them():
    """Ctrl-C arriving while member 0 waits for the others: run raises it only after every member stopped."""
    import signal

    log = []

    def fn(k, sync):
        sync()
        if k == 1:
            time.sleep(0.4)
            log.append("member 1 done")

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(KeyboardInterrupt):
            team.run(2, fn)
        assert log == ["member 1 done"]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_teams_from_two_threads_run_one_after_the_other():
    """Two teams at once would share the pool's workers (each could hold one and wait for ever for the
    next): a team started while another runs waits until the first has finished."""
    release, log = threading.Event(), []

    def first(k, sync):
        sync()
        if k == 0:
            release.wait(5)
        log.append(f"first {k}")

    def second(k, sync):
        sync()
        log.append(f"second {k}")

    a = threading.Thread(target=team.run, args=(2, first))
    a.start()
    time.sleep(0.1)
    b = threading.Thread(target=team.run, args=(2, second))
    b.start()
    time.sleep(0.3)
    assert log == ["first 1"]  # the second team has not started while the first is running
    release.set()
    a.join(5)
    b.join(5)
    assert log[:2] == ["first 1", "first 0"] and sorted(log[2:]) == ["second 0", "second 1"]


@pytest.mark.parametrize("cls", [LSTM, GRU], ids=["lstm", "gru"])
def test_one_step_sequences_give_the_single_thread_result_every_time(cls, monkeypatch):
    """T = 1, where transposed copies are already contiguous and may alias shared buffers: a team of two
    matches one thread on every one of 30 runs (a race shows up as an occasional wrong initial-state
    gradient)."""
    rng = np.random.default_rng(8)
    xs, w = rng.standard_normal((4, 1, 3)), rng.standard_normal((4, 1, 64))

    def run(threads):
        layer = cls(3, 64, dtype=np.float64, rng=0, threads=threads)
        ys, final = layer.forward(xs, training=True)
        _, dstate0 = layer.backward(w, tuple(np.ones_like(s) for s in final))
        return dstate0

    ref = run(1)
    for _ in range(30):
        for a, b in zip(ref, run(2)):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


# -- projected input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("make", [
    lambda **kw: LSTM(4, 6, **kw), lambda **kw: LSTM(4, 6, num_layers=2, **kw), lambda **kw: GRU(4, 6, **kw),
    lambda **kw: GRU(4, 6, reset_after=False, **kw), lambda **kw: ElmanRNN(4, 6, num_layers=2, **kw),
    lambda **kw: JordanRNN(4, 6, 3, **kw), lambda **kw: LSTM(4, 6, engine="reference", **kw)],
    ids=["lstm", "lstm-L2", "gru", "gru-reset-before", "elman-L2", "jordan", "lstm-reference"])
def test_projected_input_equals_the_features(make, threads):
    """forward(xs @ W_x, projected=True) gives the outputs of forward(xs); its backward returns the gradient
    dxw of xs @ W_x, (B, T, G*H): dxs = dxw W_x^T, dW_x = xs^T dxw, and every other gradient unchanged."""
    rng = np.random.default_rng(9)
    B, T = 3, 5
    xs = rng.standard_normal((B, T, 4))
    mask = np.arange(T)[None] < np.array([5, 2, 4])[:, None]
    results = []
    for projected in (False, True):
        layer = make(dtype=np.float64, rng=0, threads=threads)
        W_x = layer.params["l0.W_x"]
        ys, final = layer.forward(xs @ W_x if projected else xs, mask=mask, training=True, projected=projected)
        w = np.random.default_rng(1).standard_normal(ys.shape)
        dx, dstate0 = layer.backward(w, tuple(np.ones_like(s) for s in final))
        results.append((ys, final, dx, dstate0, dict(layer.grads)))
    (ys_a, fin_a, dx_a, ds_a, g_a), (ys_b, fin_b, dxw, ds_b, g_b) = results
    np.testing.assert_allclose(ys_b, ys_a, rtol=1e-12, atol=1e-14)
    for a, b in zip(fin_a + ds_a, fin_b + ds_b):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    assert dxw.shape == (B, T, W_x.shape[1])
    np.testing.assert_allclose(dxw @ W_x.T, dx_a, rtol=1e-11, atol=1e-13)
    assert not g_b["l0.W_x"].any()  # the caller owns the product x @ W_x
    np.testing.assert_allclose(np.einsum("btd,btg->dg", xs, dxw), g_a["l0.W_x"], rtol=1e-11, atol=1e-13)
    for k in g_a.keys() - {"l0.W_x"}:
        np.testing.assert_allclose(g_b[k], g_a[k], rtol=1e-11, atol=1e-13, err_msg=k)


@pytest.mark.parametrize("layer, xs, match", [
    (LSTM(3, 4, rng=0), np.zeros((2, 5, 3)), r"x @ W_x of the first layer, shape \(batch, time, 16\)"),
    (LSTM(3, 4, bidirectional=True, rng=0), np.zeros((2, 5, 16)), "bidirectional"),
    (GRU(3, 4, rng=0), np.zeros((2, 12)), r"\(batch, time, 12\)"),
], ids=["width", "bidirectional", "2-D"])
def test_bad_projected_input_is_named(layer, xs, match):
    with pytest.raises(UserError, match=match):
        layer.forward(xs, projected=True)
