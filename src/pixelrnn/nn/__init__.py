"""Layers: building blocks that know nothing of data, losses or sampling."""

from pixelrnn.nn.masked_conv import MaskedConv2d, causal_mask, channel_groups

__all__ = ["MaskedConv2d", "causal_mask", "channel_groups"]
