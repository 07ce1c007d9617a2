"""Weight normalisation: the same function and parameter layout as PyTorch's, exact in
float64, and the initial weight kept."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as torch_weight_norm

from pixelrnn.nn import weight_norm


def _layer(kind: str) -> tuple[nn.Module, int]:
    if kind == "conv":
        return nn.Conv2d(3, 5, (2, 3)), 0
    return nn.ConvTranspose2d(3, 5, (2, 2), stride=2), 1


@pytest.mark.parametrize("kind", ["conv", "transposed"])
def test_weight_norm_matches_pytorchs_and_keeps_the_weight(kind: str) -> None:
    torch.manual_seed(0)
    ours, dim = _layer(kind)
    plain = _layer(kind)[0]
    plain.load_state_dict(ours.state_dict())
    ours, original = ours.double(), ours.weight.detach().double()
    weight_norm(ours, dim=dim)
    theirs = torch_weight_norm(plain.double(), dim=dim)
    torch.testing.assert_close(ours.weight, original, rtol=1e-14, atol=1e-15)
    # the same parameters under the same names, so checkpoints load either way
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_()
    theirs.load_state_dict(ours.state_dict())
    torch.testing.assert_close(ours.weight, theirs.weight, rtol=1e-14, atol=1e-15)
    g = ours.parametrizations.weight.original0
    v = ours.parametrizations.weight.original1
    axes = tuple(a for a in range(4) if a != dim)
    exact = g * v / v.pow(2).sum(dim=axes, keepdim=True).sqrt()
    torch.testing.assert_close(ours.weight, exact, rtol=1e-15, atol=1e-16)


def test_weight_norm_gradients() -> None:
    """Gradients with respect to ``g`` and ``v`` through a convolution (float64 gradcheck)."""
    torch.manual_seed(1)
    layer = weight_norm(nn.Conv2d(2, 3, (2, 2)).double())
    weights = layer.parametrizations.weight
    norm = weights[0]  # the parametrization: (g, v) -> weight
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    g = weights.original0.detach().requires_grad_()
    v = weights.original1.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda g, v: nn.functional.conv2d(x, norm(g, v)), (g, v))
