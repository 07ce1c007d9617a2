"""The latent encoder and upsampler of latent-variable models: shapes for vector and spatial
latents (and a global level above a spatial one) on square, CIFAR-sized and odd images, and
gradients from the conditioning map back to the encoder through a reparameterised sample."""

from __future__ import annotations

import pytest
import torch

from pixelrnn.distributions.gaussian import reparameterised_sample
from pixelrnn.nn import LatentEncoder, LatentUpsampler


@pytest.mark.parametrize("image_shape", [(1, 28, 28), (3, 32, 32), (1, 7, 9), (1, 1, 32)])
@pytest.mark.parametrize("spatial", [False, True])
def test_shapes_and_gradients(image_shape: tuple[int, int, int], spatial: bool) -> None:
    torch.manual_seed(0)
    encoder = LatentEncoder(image_shape, latent_dim=4, spatial=spatial, hidden_channels=8)
    upsampler = LatentUpsampler(
        4, encoder.map_shape, image_shape[1:], out_channels=5, spatial=spatial, hidden_channels=8
    )
    x = torch.randn(3, *image_shape)
    [(mean, log_var)] = encoder(x)
    expected = (3, 4, *encoder.map_shape) if spatial else (3, 4)
    assert mean.shape == log_var.shape == expected
    s = upsampler(reparameterised_sample(mean, log_var, generator=torch.Generator().manual_seed(1)))
    assert s.shape == (3, 5, *image_shape[1:])
    s.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())


def test_a_top_level_reads_the_same_features() -> None:
    torch.manual_seed(0)
    encoder = LatentEncoder((1, 28, 28), 2, spatial=True, hidden_channels=8, top_latent_dim=3)
    (bottom_mean, bottom_log_var), (top_mean, top_log_var) = encoder(torch.randn(4, 1, 28, 28))
    assert bottom_mean.shape == bottom_log_var.shape == (4, 2, 7, 7)
    assert top_mean.shape == top_log_var.shape == (4, 3)
    top_mean.sum().backward()
    assert encoder.features[0].weight.grad is not None
    assert encoder.head.weight.grad is None  # the bottom head plays no part in the top level
    # p(z_bottom | z_top): the upsampler with the latent map's size as its output size
    prior = LatentUpsampler(3, encoder.map_shape, encoder.map_shape, 2 * 2, hidden_channels=8)
    assert prior(top_mean).shape == (4, 4, 7, 7)
