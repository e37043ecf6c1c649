"""The fast engine equals the plain reference cells (rnnkit/nn/recurrent/reference.py) in float64, and the
reference's own gradients equal central differences."""
import itertools

import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.nn.gradcheck import gradcheck
from rnnkit.nn.recurrent import GRU, LSTM, ElmanRNN, JordanRNN
from rnnkit.nn.recurrent.bptt import ReferenceCore

D, H, B, T = 3, 5, 4, 6
LENGTHS = np.array([6, 3, 1, 5])  # unequal: rows end at different steps (one after its first step)
MAKE = {
    "lstm": lambda **kw: LSTM(D, H, **kw),
    "gru": lambda **kw: GRU(D, H, **kw),
    "gru_reset_before": lambda **kw: GRU(D, H, reset_after=False, **kw),
    "elman_tanh": lambda **kw: ElmanRNN(D, H, **kw),
    "elman_relu": lambda **kw: ElmanRNN(D, H, nonlinearity="relu", **kw),
    "jordan": lambda **kw: JordanRNN(D, H, 4, **kw),
}
TEAM_KINDS = ("lstm", "gru")  # the fast cores run by a team of threads; the others by one background thread
# threads=: every team size from one member to one hidden unit per member; for the row-major cores 1 is
# inline and 2 the background thread
ENGINE_SETTINGS = {True: (1, 2, 3, H), False: (1, 2)}
STACKS = [(1, 0.0), (2, 0.0), (2, 0.4)]  # (num_layers, dropout between layers)

CASES = [pytest.param(kind, threads, layers, dropout, bidir, masked, projected,
                      id=f"{kind}-threads{threads}-L{layers}-p{dropout}-{'bi' if bidir else 'uni'}"
                         f"-{'masked' if masked else 'full'}-{'projected' if projected else 'features'}")
         for kind in MAKE for threads in ENGINE_SETTINGS[kind in TEAM_KINDS]
         for (layers, dropout), bidir, masked, projected in itertools.product(STACKS, (False, True), (False, True),
                                                                              (False, True))
         if not (bidir and projected)]  # projected input (x W_x) is for one direction


def run(kind, engine, layers, dropout, bidir, masked, projected, threads=None):
    """One training forward and backward on fixed data (random initial state, output and state gradients)."""
    rng = np.random.default_rng(11)
    layer = MAKE[kind](num_layers=layers, bidirectional=bidir, dropout=dropout, dtype=np.float64, rng=7,
                       engine=engine, threads=threads)
    layer.record_dh = True
    # projected: x W_x of the first layer, (B, T, G*H), as a model owning an embedding gives it
    xs = rng.standard_normal((B, T, layer.params["l0.W_x"].shape[1] if projected else D))
    mask = np.arange(T)[None] < LENGTHS[:, None] if masked else None
    state = tuple(rng.standard_normal(s.shape) for s in layer.initial_state(B))
    ys, final = layer.forward(xs, state, mask=mask, training=True, projected=projected)
    gates = layer.gate_activations()
    dxs, dstate0 = layer.backward(rng.standard_normal(ys.shape),
                                  tuple(rng.standard_normal(s.shape) for s in final))
    return dict(
        params={k: v.copy() for k, v in layer.params.items()},
        dropout_masks=[m for m in layer._dropout_masks if m is not None],
        ys=ys, final=final, dxs=dxs, dstate0=dstate0, grads=dict(layer.grads), dhs=layer.dhs_, gates=gates,
        cores={type(c) for c in layer.cores}, overlap={getattr(c, "overlap", None) for c in layer.cores},
        team_sizes={len(getattr(c, "_parts", None) or ()) for c in layer.cores})


def assert_close(got, want, what, rtol=1e-12):
    """max |got - want| <= rtol * max |want| (relative to the array's scale)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = np.abs(want).max()
    err = np.abs(got - want).max()
    assert err <= rtol * scale, f"{what}: max error {err:.3g} at scale {scale:.3g}"


@pytest.mark.parametrize("kind, threads, layers, dropout, bidir, masked, projected", CASES)
def test_fast_engine_equals_the_reference(kind, threads, layers, dropout, bidir, masked, projected):
    """Outputs, final states, input (or projected-input) gradients, initial-state gradients, every parameter
    gradient, the recorded dL/dh and the gate values: fast and reference agree to 1e-12 of their scale."""
    ref = run(kind, "reference", layers, dropout, bidir, masked, projected)
    fast = run(kind, "fast", layers, dropout, bidir, masked, projected, threads)
    assert ref["cores"] == {ReferenceCore} and ReferenceCore not in fast["cores"]
    if kind in TEAM_KINDS:  # the team really had that many members
        assert fast["team_sizes"] == {threads}
    else:
        assert fast["overlap"] == {threads > 1}
    assert ref["params"].keys() == fast["params"].keys() == ref["grads"].keys()
    for name in ref["params"]:  # the same initialisation from the same seed
        np.testing.assert_array_equal(fast["params"][name], ref["params"][name], err_msg=name)
    assert len(fast["dropout_masks"]) == len(ref["dropout_masks"]) == (layers - 1 if dropout else 0)
    for a, b in zip(fast["dropout_masks"], ref["dropout_masks"]):  # drawn identically
        np.testing.assert_array_equal(a, b)
    assert_close(fast["ys"], ref["ys"], "outputs")
    assert_close(fast["dxs"], ref["dxs"], "projected-input gradient" if projected else "input gradient")
    for j in range(len(ref["final"])):
        assert_close(fast["final"][j], ref["final"][j], f"final state[{j}]")
        assert_close(fast["dstate0"][j], ref["dstate0"][j], f"initial-state gradient[{j}]")
    for name in ref["grads"]:
        assert_close(fast["grads"][name], ref["grads"][name], f"gradient of {name}")
    assert len(fast["dhs"]) == len(ref["dhs"]) > 0  # zip would pass on nothing
    for k, (a, b) in enumerate(zip(fast["dhs"], ref["dhs"])):
        assert_close(a, b, f"dL/dh of core {k}")
    assert fast["gates"].keys() == ref["gates"].keys()
    for core in ref["gates"]:
        assert fast["gates"][core].keys() == ref["gates"][core].keys()
        for g in ref["gates"][core]:
            assert_close(fast["gates"][core][g], ref["gates"][core][g], f"gate {g} of {core}")


@pytest.mark.parametrize("kind", list(MAKE))
@pytest.mark.parametrize("bidir", [False, True], ids=["uni", "bi"])
def test_reference_gradients_equal_central_differences(kind, bidir):
    """Two layers, masks, a random initial state and weighting: parameters, input and initial state."""
    rng = np.random.default_rng(5)
    layer = MAKE[kind](num_layers=2, bidirectional=bidir, dtype=np.float64, rng=3, engine="reference")
    if kind == "elman_relu":  # keep pre-activations away from relu's kink, where differences are one-sided
        for name, p in layer.params.items():
            if name.endswith("b_x"):
                p += 0.5
    xs = rng.standard_normal((3, 4, D))
    mask = np.arange(4)[None] < np.array([4, 2, 3])[:, None]
    state = tuple(rng.standard_normal(s.shape) for s in layer.initial_state(3))
    result = gradcheck(layer, xs, state=state, mask=mask, rng=rng)
    assert result.passed(), result.failures()
    assert {"input", "state[0]"} <= set(result) and set(layer.params) <= set(result)


@pytest.mark.parametrize("kind", list(MAKE))
def test_reference_step_equals_forward(kind):
    """Streaming on the reference: step by step, and from projected input (x W_x), equals forward."""
    rng = np.random.default_rng(6)
    layer = MAKE[kind](num_layers=2, dtype=np.float64, rng=3, engine="reference")
    xs = rng.standard_normal((2, 4, D))
    ys, final = layer.forward(xs)
    state = None
    for t in range(4):
        y, state = layer.step(xs[:, t], state)
        assert_close(y, ys[:, t], f"step {t}")
    for a, b in zip(state, final):
        assert_close(a, b, "final state")
    y1, _ = layer.step(xs[:, 0] @ layer.params["l0.W_x"], None, projected=True)
    assert_close(y1, ys[:, 0], "projected step")


def test_reference_backward_twice_and_bad_engine():
    layer = LSTM(D, H, engine="reference", dtype=np.float64, rng=0)
    ys, _ = layer.forward(np.ones((2, 3, D)), training=True)
    layer.backward(np.ones_like(ys))
    with pytest.raises(RuntimeError, match="already called"):
        layer.backward(np.ones_like(ys))
    for make in MAKE.values():
        with pytest.raises(UserError, match="engine must be 'fast'.*'reference'.*got 'slow'"):
            make(engine="slow")


@pytest.mark.parametrize("kind", list(MAKE))
def test_reference_runs_in_float32_like_the_fast_engine(kind):
    """The default dtype: the reference computes in float32 and agrees with the fast engine to float32 round-off."""
    rng = np.random.default_rng(8)
    xs = rng.standard_normal((B, T, D)).astype(np.float32)
    mask = np.arange(T)[None] < LENGTHS[:, None]
    out = {}
    for engine in ("fast", "reference"):
        layer = MAKE[kind](num_layers=2, bidirectional=True, rng=7, engine=engine)
        ys, final = layer.forward(xs, mask=mask, training=True)
        dxs, dstate0 = layer.backward(np.ones_like(ys))
        assert ys.dtype == dxs.dtype == final[0].dtype == dstate0[0].dtype == np.float32
        assert all(g.dtype == np.float32 for g in layer.grads.values())
        out[engine] = (ys, dxs, *final, *dstate0, *layer.grads.values())
    for a, b in zip(out["fast"], out["reference"]):
        assert_close(a, b, "float32", rtol=1e-5)
