"""Layers: building blocks that know nothing of data, losses or sampling."""

from pixelrnn.nn.conditioning import (
    ClassEmbedding,
    ContextProjections,
    SpatialConditioning,
    code_map,
    context_terms,
)
from pixelrnn.nn.data_init import data_dependent_init
from pixelrnn.nn.diagonal_lstm import DiagonalBiLSTM
from pixelrnn.nn.gated import (
    GatedLayer,
    HorizontalStackConv,
    VerticalStackConv,
    gated_activation,
)
from pixelrnn.nn.input_encoding import InputEncoding
from pixelrnn.nn.latent import (
    LatentEncoder,
    LatentUpsampler,
    ResidualStack,
    doubling_stack,
    halving_stack,
)
from pixelrnn.nn.lstm_cell import lstm_cell
from pixelrnn.nn.masked_conv import MaskedConv2d, causal_mask, channel_groups, gate_groups
from pixelrnn.nn.quantize import Quantized, VectorQuantizer, codebook_usage
from pixelrnn.nn.row_lstm import RowLSTM
from pixelrnn.nn.shifted_conv import (
    GatedResNet,
    ShiftedConv2d,
    ShiftedConvTranspose2d,
    concat_elu,
    down_shift,
    right_shift,
)
from pixelrnn.nn.skew import skew, unskew
from pixelrnn.nn.weight_norm import weight_norm

__all__ = [
    "ClassEmbedding",
    "ContextProjections",
    "DiagonalBiLSTM",
    "GatedLayer",
    "GatedResNet",
    "HorizontalStackConv",
    "InputEncoding",
    "LatentEncoder",
    "LatentUpsampler",
    "MaskedConv2d",
    "Quantized",
    "ResidualStack",
    "RowLSTM",
    "ShiftedConv2d",
    "ShiftedConvTranspose2d",
    "SpatialConditioning",
    "VectorQuantizer",
    "VerticalStackConv",
    "causal_mask",
    "channel_groups",
    "code_map",
    "codebook_usage",
    "concat_elu",
    "context_terms",
    "data_dependent_init",
    "doubling_stack",
    "down_shift",
    "gate_groups",
    "gated_activation",
    "halving_stack",
    "lstm_cell",
    "right_shift",
    "skew",
    "unskew",
    "weight_norm",
]
