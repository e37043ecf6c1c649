"""Recurrent layers sharing their weights across time, trained by backpropagation through time.

Read ``reference`` first: the plain cells (Elman, Jordan, LSTM, GRU), one step forward and one step back,
and ``bptt``, their time loop. ``LSTM``, ``GRU``, ``ElmanRNN`` and ``JordanRNN`` (``stack``) run either
those (``engine="reference"``) or, by default, the fast cores of the ``fast`` sub-package, proven equal to
them: LSTM and reset-after GRU feature-major on a team of threads, Elman, Jordan and the reset-before GRU
row-major with a background thread. ``threads=`` on a layer sets both its threads and BLAS's (``threads``).
"""
from rnnkit.nn.recurrent.stack import GRU, LSTM, ElmanRNN, JordanRNN, RecurrentLayer

__all__ = ["LSTM", "GRU", "ElmanRNN", "JordanRNN", "RecurrentLayer"]
