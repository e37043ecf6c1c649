"""Recurrent layers sharing their weights across time, trained by backpropagation through time.

Read ``reference`` first: the plain cells (Elman, Jordan, LSTM, GRU), one step forward and one step back,
and ``bptt``, their time loop. ``LSTM``, ``GRU``, ``ElmanRNN`` and ``JordanRNN`` (``stack``) run either
those (``engine="reference"``) or, by default, the fast cores proven equal to them: LSTM and GRU feature-major
on a team of threads (``teamcore``, ``team``), Elman, Jordan and the reset-before GRU row-major with a
background thread (``core``). ``Tokens`` (``tokens``) feeds a layer an embedding lookup.
"""
from rnnkit.nn.recurrent.stack import GRU, LSTM, ElmanRNN, JordanRNN, RecurrentLayer
from rnnkit.nn.recurrent.tokens import Tokens

__all__ = ["LSTM", "GRU", "ElmanRNN", "JordanRNN", "RecurrentLayer", "Tokens"]
