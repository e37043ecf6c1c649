"""Recurrent layers' background thread and robustness: chunked work equals inline work, outputs never alias
work buffers, and interrupts, failures, a second backward and fork leave the layer correct."""
import numpy as np
import pytest

from tests.nn.test_recurrent import make


@pytest.mark.parametrize("kind", ["gru_reset_before", "elman", "jordan"])  # LSTM, GRU: test_recurrent_team
@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
def test_background_chunks_give_the_inline_result(kind, masked, monkeypatch):
    """Input projection ahead of the loop, backward preparation during a training forward and weight
    gradients during the reverse loop, all cut into 2-step chunks on the background thread, equal the
    same computation done inline in one piece."""
    import rnnkit.nn.recurrent.fast.rowmajor as core

    rng = np.random.default_rng(12)
    xs = rng.standard_normal((3, 7, 3))
    mask = (np.arange(7)[None] < np.array([7, 4, 2])[:, None]) if masked else None
    w = rng.standard_normal((3, 7, make(kind, num_layers=2, bidirectional=True).output_size))
    results = []
    for overlap, rows in [(False, 10_000), (True, 6)]:
        monkeypatch.setattr(core, "CHUNK_ROWS", rows)
        layer = make(kind, num_layers=2, bidirectional=True)
        layer.threads = None if overlap else 1
        assert {c.overlap for c in layer.cores} == {overlap}
        ys, state = layer.forward(xs, mask=mask, training=True)
        dxs, dstate0 = layer.backward(w, tuple(np.ones_like(s) for s in state))
        results.append((ys, dxs, dstate0, dict(layer.grads)))
    (ys_a, dx_a, ds_a, g_a), (ys_b, dx_b, ds_b, g_b) = results
    np.testing.assert_allclose(ys_b, ys_a, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx_b, dx_a, rtol=1e-12, atol=1e-14)
    for a, b in zip(ds_a, ds_b):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    for k in g_a:
        np.testing.assert_allclose(g_b[k], g_a[k], rtol=1e-11, atol=1e-13)


def test_a_forward_in_between_does_not_mix_with_a_prepared_backward():
    """An evaluation forward between a training forward and its backward: backward follows the last forward."""
    rng = np.random.default_rng(13)
    layer = make("lstm")
    x1, x2 = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 3))
    w = rng.standard_normal((2, 4, 4))
    layer.forward(x1, training=True)
    layer.forward(x2)
    dx, _ = layer.backward(w)
    ref = make("lstm")
    ref.forward(x2)
    dx_ref, _ = ref.backward(w)
    np.testing.assert_array_equal(dx, dx_ref)


@pytest.mark.parametrize("B, T", [(1, 4), (3, 1), (1, 1)])
def test_outputs_are_new_arrays_that_survive_the_next_call(B, T):
    """With B=1 or T=1 a transpose is already contiguous: outputs must still not alias a work buffer."""
    rng = np.random.default_rng(15)
    layer = make("lstm")
    x1, x2 = rng.standard_normal((B, T, 3)), rng.standard_normal((B, T, 3))
    y1, _ = layer.forward(x1)
    kept = y1.copy()
    layer.forward(x2)
    np.testing.assert_array_equal(y1, kept)
    # editing the returned output or the input in place does not change the gradients
    y2, _ = layer.forward(x2)
    w = rng.standard_normal(y2.shape)
    reference = make("lstm")
    reference.forward(x2)
    dx_ref, _ = reference.backward(w)
    y2 += 1.0
    x2 += 1.0
    dx, _ = layer.backward(w)
    np.testing.assert_array_equal(dx, dx_ref)


def test_second_backward_of_one_forward_is_refused():
    layer = make("gru")
    ys, _ = layer.forward(np.ones((2, 3, 3)))
    layer.backward(np.ones_like(ys))
    with pytest.raises(RuntimeError, match="already called"):
        layer.backward(np.ones_like(ys))


def test_interrupted_backward_writes_no_gradient_afterwards(monkeypatch):
    import threading
    import time

    import rnnkit.nn.recurrent.fast.rowmajor as core

    monkeypatch.setattr(core, "CHUNK_ROWS", 2)
    layer = make("elman")  # LSTM and GRU run on a team, not in background chunks (test_recurrent_team)
    xs = np.random.default_rng(16).standard_normal((2, 40, 3))
    ys, _ = layer.forward(xs, training=True)
    gate = threading.Event()
    original = core.WeightGradients._rows

    def slow_rows(self, lo, hi):  # background chunks wait until the loop has been interrupted
        gate.wait(5)
        original(self, lo, hi)

    def interrupt(self, t):
        if t == 20:
            gate.set()
            raise KeyboardInterrupt
        original_ready(self, t)

    original_ready = core.WeightGradients.ready
    monkeypatch.setattr(core.WeightGradients, "_rows", slow_rows)
    monkeypatch.setattr(core.WeightGradients, "ready", interrupt)
    with pytest.raises(KeyboardInterrupt):
        layer.backward(np.ones_like(ys))
    layer.zero_grad()
    time.sleep(0.2)
    assert all(not g.any() for g in layer.grads.values())


def test_a_failed_background_job_does_not_break_the_layer(monkeypatch):
    import rnnkit.nn.recurrent.fast.rowmajor as core
    from rnnkit.nn.recurrent.fast.elman import ElmanCore

    monkeypatch.setattr(core, "CHUNK_ROWS", 4)
    layer = make("elman")
    xs = np.random.default_rng(17).standard_normal((2, 10, 3))
    original = ElmanCore.prepare
    calls = []

    def failing_once(self, lo, hi):
        calls.append(lo)
        if len(calls) == 1:
            raise MemoryError("injected")
        original(self, lo, hi)

    monkeypatch.setattr(ElmanCore, "prepare", failing_once)
    ys, _ = layer.forward(xs, training=True)
    with pytest.raises(MemoryError, match="injected"):
        layer.backward(np.ones_like(ys))
    ys, _ = layer.forward(xs, training=True)
    dxs, _ = layer.backward(np.ones_like(ys))
    reference = make("elman")
    reference.forward(xs)
    np.testing.assert_allclose(dxs, reference.backward(np.ones_like(ys))[0], rtol=1e-12)


def _forward_in_child(queue, kind):
    layer = make(kind)
    layer.threads = 2
    xs = np.ones((8, 100, 3))
    ys, _ = layer.forward(xs, training=True)
    layer.backward(np.ones_like(ys))
    queue.put(float(np.abs(layer.grads["l0.W_h"]).sum()))


@pytest.mark.parametrize("kind", ["elman", "lstm"])
def test_a_forked_child_starts_its_own_worker_threads(kind, monkeypatch):
    """Elman's background thread and the LSTM's team (of two here): a child forked after the parent used
    them has no copy of the threads and must start its own instead of waiting for ever."""
    import multiprocessing

    layer = make(kind)  # the parent's pool exists before the fork
    layer.threads = 2
    ys, _ = layer.forward(np.ones((8, 100, 3)), training=True)
    layer.backward(np.ones_like(ys))
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_forward_in_child, args=(queue, kind))
    child.start()
    child.join(60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive, "the child deadlocked waiting for the parent's worker thread"
    assert queue.get(timeout=5) > 0
