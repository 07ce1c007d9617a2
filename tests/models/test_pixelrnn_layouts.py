"""The PixelRNNs run their network on batch-last maps: it must compute exactly what the
network of the paper's figure computes on ``(B, C, H, W)`` maps (:func:`nchw_network`), in
every configuration that changes the path (residual and skip connections, full context,
colour groups, conditioning)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pixelrnn.models.pixelrnn import PixelRNN
from pixelrnn.nn import MaskedConv2d
from tests.helpers import random_images, tiny_model


def nchw_network(
    model: PixelRNN, x: torch.Tensor, context: torch.Tensor | None = None
) -> torch.Tensor:
    """The PixelRNN network (PixelRNN Fig. 5 and §3.3) on ``(B, C, H, W)`` maps throughout:
    the input convolution, the residual recurrent blocks with their skip connections summed,
    and the two output layers."""
    h = model.input_conv(x)
    skip_sum = None
    for k, block in enumerate(model.blocks):
        extra = {"image": x} if k == 0 and model.config.full_context else {}
        h = block(h, context, **extra)
        if model.skips:
            s = model.skips[k](h)
            skip_sum = s if skip_sum is None else skip_sum + s
    features = skip_sum if skip_sum is not None else h
    return model.output(F.relu(model.output_hidden(F.relu(features))))


# (channels, config overrides) that change the network's path; full context is the Diagonal
# BiLSTM's alone
PATHS = [
    (1, {}),
    (3, {}),
    (1, {"residual": False}),
    (3, {"skip": False}),
    (3, {"context_channels": 2}),
]
CASES = [("diagonal_bilstm", 1, {"full_context": True})] + [
    (name, channels, overrides)
    for name in ("diagonal_bilstm", "row_lstm")
    for channels, overrides in PATHS
]


@pytest.mark.parametrize(("name", "channels", "overrides"), CASES)
def test_batch_last_network_equals_the_nchw_network(
    name: str, channels: int, overrides: dict
) -> None:
    model = tiny_model(channels, 256, size=5, model=name, **overrides).double()
    x = model.normalize(random_images(model, 3)).double()
    context = None
    if "context_channels" in overrides:
        context = torch.randn(3, overrides["context_channels"], 5, 5, dtype=torch.float64)
    fast = model.network(x, context)
    slow = nchw_network(model, x, context)
    assert fast.shape == slow.shape == (3, model.num_params_out, 5, 5)
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-12)
    params = list(model.parameters())
    grads = [torch.autograd.grad(out.square().sum(), params) for out in (fast, slow)]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
def test_a_1x1_layer_on_batch_last_maps_equals_the_convolution(bias: bool) -> None:
    torch.manual_seed(0)
    conv = MaskedConv2d(6, 9, 1, "B", 3, bias=bias).double()
    x = torch.randn(2, 6, 4, 5, dtype=torch.float64)
    residual = torch.randn(2, 9, 4, 5, dtype=torch.float64)

    def batch_last(t: torch.Tensor) -> torch.Tensor:
        return t.permute(1, 2, 3, 0)

    out = conv.forward_batch_last(batch_last(x)).permute(3, 0, 1, 2)
    torch.testing.assert_close(out, conv(x), rtol=1e-12, atol=1e-12)
    out = conv.forward_batch_last(batch_last(x), residual=batch_last(residual))
    torch.testing.assert_close(out.permute(3, 0, 1, 2), conv(x) + residual, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="1x1 layers only"):
        MaskedConv2d(6, 9, 3, "B", 3).forward_batch_last(batch_last(x))


def test_batch_last_network_under_bf16_autocast() -> None:
    """Under CPU bfloat16 autocast the batch-last network (whose residual and skip sums are
    in-place products, which autocast does not cast) trains and stays within bfloat16's
    precision of float32."""
    model = tiny_model(1, 2, size=6, model="diagonal_bilstm")
    x = random_images(model, 4)
    exact = model.log_prob(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = model.log_prob(x)
    fast.mean().backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in model.parameters())
    torch.testing.assert_close(fast.float(), exact.detach(), rtol=0.05, atol=0.5)
