"""Shared helpers: run an exported graph in onnxruntime, fill a model with non-constant random weights."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

TOL = 1e-5  # float32 graphs against rnnkit's float32 forward


def session(proto) -> ort.InferenceSession:
    onnx.checker.check_model(proto, full_check=True)
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def run(proto, **feeds) -> dict[str, np.ndarray]:
    """Outputs by name."""
    sess = proto if isinstance(proto, ort.InferenceSession) else session(proto)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


def randomize(model, rng, scale: float = 0.6) -> None:
    """Every parameter uniform in [-scale, scale]: no symmetric gate blocks, so a swapped gate shows."""
    for p in model.params.values():
        p[...] = rng.uniform(-scale, scale, p.shape)


def close(actual, expected, tol: float = TOL) -> float:
    """Assert |actual - expected| <= tol * max(1, |expected|) elementwise; return the max abs difference."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)
    return float(np.max(np.abs(actual - expected))) if actual.size else 0.0
