"""Tests of rnnkit.export: ONNX graphs checked by onnxruntime, PyTorch-named weights checked by torch."""
