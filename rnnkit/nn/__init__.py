"""The neural-network engine: pure NumPy layers with hand-derived gradients (no I/O, no printing).
Read the recurrent cells first in rnnkit/nn/recurrent/reference.py; the time-delay layer is in tdnn.py,
pooling over time in pooling.py, masked batch normalisation in norm.py; fixed random kernels with PPV
features in random_tdnn.py and their closed-form ridge readout in ridge.py (nothing there learns by gradient).

    from rnnkit.nn import LSTM, TDNN, MeanPool, Dense, Embedding, Adam, softmax_cross_entropy, clip_grad_norm
    from rnnkit.nn.gradcheck import gradcheck   # the module rnnkit.nn.gradcheck is the public checker
"""
from rnnkit.nn.base import Layer, as_rng
from rnnkit.nn.layers import Dense, Dropout, Embedding, ReLU, Sequential, Sigmoid, Softmax, Tanh
from rnnkit.nn.losses import gaussian_nll, mse, pinball, softmax_cross_entropy
from rnnkit.nn.optim import (SGD, Adagrad, Adam, AdamW, ConstantLR, CosineWarmupLR, RMSprop, StepLR,
                             clip_grad_norm, global_norm)
from rnnkit.nn.recurrent import GRU, LSTM, ElmanRNN, JordanRNN, RecurrentLayer
from rnnkit.nn.norm import BatchNorm
from rnnkit.nn.pooling import AttentionPool, LastPool, MaxPool, MeanPool
from rnnkit.nn.random_tdnn import RandomTDNN
from rnnkit.nn.ridge import RidgeReadout
from rnnkit.nn.tdnn import TDNN

__all__ = [
    "Layer", "as_rng",
    "Dense", "Dropout", "Embedding", "ReLU", "Sequential", "Sigmoid", "Softmax", "Tanh",
    "mse", "softmax_cross_entropy", "gaussian_nll", "pinball",
    "SGD", "RMSprop", "Adagrad", "Adam", "AdamW", "ConstantLR", "StepLR", "CosineWarmupLR",
    "clip_grad_norm", "global_norm",
    "LSTM", "GRU", "ElmanRNN", "JordanRNN", "RecurrentLayer",
    "TDNN", "LastPool", "MeanPool", "MaxPool", "AttentionPool", "BatchNorm",
    "RandomTDNN", "RidgeReadout",
]
