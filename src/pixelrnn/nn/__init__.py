"""Layers: building blocks that know nothing of data, losses or sampling."""

from pixelrnn.nn.conditioning import ClassEmbedding, SpatialConditioning
from pixelrnn.nn.diagonal_lstm import DiagonalBiLSTM, down_shift
from pixelrnn.nn.gated import (
    GatedLayer,
    HorizontalStackConv,
    VerticalStackConv,
    gated_activation,
)
from pixelrnn.nn.lstm_cell import lstm_cell
from pixelrnn.nn.masked_conv import MaskedConv2d, causal_mask, channel_groups, gate_groups
from pixelrnn.nn.row_lstm import RowLSTM
from pixelrnn.nn.skew import skew, unskew

__all__ = [
    "ClassEmbedding",
    "DiagonalBiLSTM",
    "GatedLayer",
    "HorizontalStackConv",
    "MaskedConv2d",
    "RowLSTM",
    "SpatialConditioning",
    "VerticalStackConv",
    "causal_mask",
    "channel_groups",
    "down_shift",
    "gate_groups",
    "gated_activation",
    "lstm_cell",
    "skew",
    "unskew",
]
