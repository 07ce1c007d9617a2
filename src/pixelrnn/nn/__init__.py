"""Layers: building blocks that know nothing of data, losses or sampling."""

from pixelrnn.nn.diagonal_lstm import DiagonalBiLSTM, down_shift
from pixelrnn.nn.lstm_cell import lstm_cell
from pixelrnn.nn.masked_conv import MaskedConv2d, causal_mask, channel_groups, gate_groups
from pixelrnn.nn.row_lstm import RowLSTM
from pixelrnn.nn.skew import skew, unskew

__all__ = [
    "DiagonalBiLSTM",
    "MaskedConv2d",
    "RowLSTM",
    "causal_mask",
    "channel_groups",
    "down_shift",
    "gate_groups",
    "lstm_cell",
    "skew",
    "unskew",
]
