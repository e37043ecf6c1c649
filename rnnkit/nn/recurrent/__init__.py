"""Recurrent layers sharing their weights across time, trained by backpropagation through time.

``LSTM``, ``GRU``, ``ElmanRNN`` and ``JordanRNN`` (in ``stack``) stack one-direction cores (``lstm``, ``gru``,
``elman``, ``jordan``), which share the GEMM and mask machinery of ``core``.
"""
from rnnkit.nn.recurrent.stack import GRU, LSTM, ElmanRNN, JordanRNN, RecurrentLayer

__all__ = ["LSTM", "GRU", "ElmanRNN", "JordanRNN", "RecurrentLayer"]
