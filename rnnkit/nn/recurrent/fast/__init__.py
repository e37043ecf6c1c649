"""The fast cores, proven equal to the reference cells (tests/nn/test_recurrent_reference.py).

Two strategies side by side over a small shared base (``base``: parameters, buffers, the reverse loop's
state-gradient bookkeeping, masks):

- feature-major on a team of threads (``featuremajor``, ``team``): the LSTM (``lstm``) and the reset-after
  GRU (``gru``), whose one recurrent GEMM per step can be split by hidden units;
- row-major with one background thread for the large GEMMs (``rowmajor``, ``background``): Elman
  (``elman``), Jordan (``jordan``) and the reset-before GRU (``gru_before``).
"""
from rnnkit.nn.recurrent.fast.elman import ElmanCore
from rnnkit.nn.recurrent.fast.gru import GRUCore
from rnnkit.nn.recurrent.fast.gru_before import GRUResetBeforeCore
from rnnkit.nn.recurrent.fast.jordan import JordanCore
from rnnkit.nn.recurrent.fast.lstm import LSTMCore

__all__ = ["LSTMCore", "GRUCore", "GRUResetBeforeCore", "ElmanCore", "JordanCore"]
