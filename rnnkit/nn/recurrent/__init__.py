"""Recurrent layers sharing their weights across time, trained by backpropagation through time.

``LSTM``, ``GRU``, ``ElmanRNN`` and ``JordanRNN`` (in ``stack``) stack one-direction cores (``lstm``, ``gru``,
``elman``, ``jordan``), which share the GEMM and mask machinery of ``core``; the LSTM core's time loop is
shared by a team of threads (``team``). ``Tokens`` (``tokens``) feeds a layer an embedding lookup.
"""
from rnnkit.nn.recurrent.stack import GRU, LSTM, ElmanRNN, JordanRNN, RecurrentLayer
from rnnkit.nn.recurrent.tokens import Tokens

__all__ = ["LSTM", "GRU", "ElmanRNN", "JordanRNN", "RecurrentLayer", "Tokens"]
