"""PixelCNN++: causality through the down/up path, no blind spot, the layers, the presets."""

from __future__ import annotations

import pytest
import torch

import pixelrnn
from pixelrnn.models import pixelcnn_pp
from pixelrnn.nn import (
    GatedResNet,
    ShiftedConv2d,
    ShiftedConvTranspose2d,
    concat_elu,
    data_dependent_init,
)
from pixelrnn.nn.dropout import Dropout
from tests.helpers import assert_causal, dependency_matrix, strictly_earlier, tiny_model


def pp(channels: int = 1, size: int = 5, **overrides: object) -> pixelrnn.AutoregressiveModel:
    levels = 2 if channels == 1 else 4
    return tiny_model(channels, levels, size=size, model="pixelcnnpp", **overrides)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(
    "overrides",
    [
        dict(num_classes=3),
        dict(distribution="auto"),  # a sub-pixel head: the network still sees no current pixel
        dict(num_resolutions=3, nr_resnet=2),  # 7 -> 4 -> 2 and back up, cropped
    ],
    ids=["class-conditional", "softmax-head", "three-resolutions"],
)
def test_causal_through_the_down_and_up_path(channels: int, overrides: dict) -> None:
    assert_causal(pp(channels, size=7, **overrides), whole_pixel_context=True)


def test_the_causality_check_fails_without_the_down_shift(monkeypatch: pytest.MonkeyPatch) -> None:
    """The streams' first maps are the only place the current pixel is excluded: without the
    down-shift the ``u`` stream sees the current row, and the check must say so."""
    monkeypatch.setattr(pixelcnn_pp, "down_shift", lambda x: x)
    with pytest.raises(AssertionError, match="changed with input"):
        assert_causal(pp(1, size=5))


@pytest.mark.parametrize(("channels", "resolutions"), [(1, 2), (3, 2), (1, 3)])
def test_no_blind_spot(channels: int, resolutions: int) -> None:
    """8x8: the prediction at every pixel depends on every earlier pixel, and on nothing else —
    not even the current pixel's channels (the distribution is joint over a pixel). Two
    layers per resolution reach 8 columns (each gated layer adds two shifted convolutions)."""
    model = pp(channels, size=8, nr_resnet=2, num_resolutions=resolutions, num_classes=2)
    measured = dependency_matrix(model)
    expected = strictly_earlier(8, 8)
    missing = (expected & ~measured).nonzero().tolist()
    assert not missing, f"{len(missing)} (pixel, earlier pixel) pairs unseen, e.g. {missing[:3]}"
    assert torch.equal(measured, expected)


def test_a_shallow_network_sees_less_but_never_later_pixels() -> None:
    """One layer per resolution does not reach across an 8-pixel row: pixel (1, 0) misses the
    end of row 0 and (1, 7) the start of row 1 — the reach is a matter of depth, and the same
    test that passes above can fail."""
    matrix = dependency_matrix(pp(1, size=8, nr_resnet=1, num_resolutions=2))
    assert not matrix[1 * 8 + 0, 0 * 8 + 7] and not matrix[1 * 8 + 7, 1 * 8 + 0]
    assert matrix[1 * 8 + 0, 0 * 8 + 1]
    assert not (matrix & ~strictly_earlier(8, 8)).any()


def reach(module: torch.nn.Module, height: int, width: int, out: tuple[int, int]) -> torch.Tensor:
    """Which input positions the output at ``out`` depends on (gradients). bool ``(H, W)``."""
    x = torch.randn(1, module_in(module), height, width, dtype=torch.float64, requires_grad=True)
    module.double()(x)[0, :, out[0], out[1]].sum().backward()
    return x.grad[0].abs().sum(0) > 0


def module_in(module: torch.nn.Module) -> int:
    return module.conv.in_channels


def window(height: int, width: int, rows: range, cols: range) -> torch.Tensor:
    out = torch.zeros(height, width, dtype=torch.bool)
    for i in rows:
        for j in cols:
            if 0 <= i < height and 0 <= j < width:
                out[i, j] = True
    return out


def test_shifted_convolutions_reach_what_they_claim() -> None:
    torch.manual_seed(0)
    down = ShiftedConv2d(2, 3, (2, 3), "down", use_weight_norm=False)
    assert torch.equal(reach(down, 6, 6, (3, 2)), window(6, 6, range(2, 4), range(1, 4)))
    right = ShiftedConv2d(2, 3, (2, 2), "down_right")
    assert torch.equal(reach(right, 6, 6, (3, 2)), window(6, 6, range(2, 4), range(1, 3)))
    # stride 2: output (a, b) reads rows 2a-1..2a (and columns up to 2b for down-right)
    down2 = ShiftedConv2d(2, 3, (2, 3), "down", stride=2)
    assert torch.equal(reach(down2, 7, 7, (2, 1)), window(7, 7, range(3, 5), range(1, 4)))
    right2 = ShiftedConv2d(2, 3, (2, 2), "down_right", stride=2)
    assert torch.equal(reach(right2, 7, 7, (2, 3)), window(7, 7, range(3, 5), range(5, 7)))
    assert down2(torch.randn(1, 2, 7, 5, dtype=torch.float64)).shape[-2:] == (4, 3)


def test_transposed_convolutions_read_only_the_row_above_them() -> None:
    """Output row r of a stride-2 transposed convolution reads input row r // 2 only: never a
    later row (down-right: never a later column either)."""
    torch.manual_seed(0)
    up = ShiftedConvTranspose2d(2, 3, (2, 3), "down")
    up_right = ShiftedConvTranspose2d(2, 3, (2, 2), "down_right")
    for r in range(8):
        for c in range(8):
            field = reach(up, 4, 4, (r, c))
            assert field.nonzero()[:, 0].unique().tolist() == [r // 2]
            assert torch.equal(
                reach(up_right, 4, 4, (r, c)),
                window(4, 4, range(r // 2, r // 2 + 1), range(c // 2, c // 2 + 1)),
            )
    assert up(torch.randn(1, 2, 4, 4, dtype=torch.float64), (7, 7)).shape[-2:] == (7, 7)
    with pytest.raises(ValueError, match="exceeds"):
        up(torch.randn(1, 2, 4, 4, dtype=torch.float64), (9, 8))
    with pytest.raises(ValueError, match="later rows"):
        ShiftedConvTranspose2d(2, 3, (3, 3), "down")
    with pytest.raises(ValueError, match="odd width"):
        ShiftedConv2d(2, 3, (2, 2), "down")


def test_gated_resnet_is_the_documented_formula() -> None:
    torch.manual_seed(0)
    layer = GatedResNet(4, "down_right", aux_channels=3, num_classes=5).double().eval()
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    a = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    h = torch.nn.functional.one_hot(torch.tensor([1, 4]), 5).double()
    c1 = layer.conv_in(concat_elu(x)) + layer.aux(concat_elu(a))
    c2 = layer.conv_out(concat_elu(c1)) + layer.class_bias(h)[:, :, None, None]
    expected = x + c2[:, :4] * torch.sigmoid(c2[:, 4:])
    torch.testing.assert_close(layer(x, a, h), expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="auxiliary input"):
        layer(x)


def test_dropout_keeps_the_expectation_and_is_off_in_evaluation() -> None:
    torch.manual_seed(0)
    drop = Dropout(0.5)
    x = torch.ones(200, 50, 10, 10)
    y = drop(x)
    assert set(y.unique().tolist()) == {0.0, 2.0}
    assert (y == 0).float().mean().item() == pytest.approx(0.5, abs=0.005)
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)
    y = Dropout(0.3)(x.contiguous(memory_format=torch.channels_last))
    assert (y == 0).float().mean().item() == pytest.approx(0.3, abs=0.005)
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.0)


def test_dropout_is_active_in_training_only() -> None:
    model = pp(1, size=6, dropout=0.5)
    x = torch.randint(0, 2, (2, 1, 6, 6))
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_data_dependent_init_normalises_every_layer() -> None:
    """After the pass, every weight-normalised convolution's outputs on the batch have zero
    mean and standard deviation ``init_scale`` (0.1 on a residual branch's second convolution)."""
    model = pp(3, size=8, nr_filters=6, num_resolutions=2).double()
    x = torch.randint(0, 4, (16, 3, 8, 8))
    assert model.config.weight_norm
    n = data_dependent_init(model, lambda: model(x))
    assert n == sum(
        1 for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
    )
    stats: list[tuple[float, torch.Tensor, torch.Tensor]] = []

    def record(module: torch.nn.Module, inputs: object, out: torch.Tensor) -> None:
        scale = getattr(module, "init_scale", 1.0)
        stats.append((scale, out.mean(dim=(0, 2, 3)), out.std(dim=(0, 2, 3), unbiased=False)))

    convs = [
        m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
    ]
    handles = [m.register_forward_hook(record) for m in convs]
    model.eval()
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    assert len(stats) == len(convs) and {s for s, _, _ in stats} == {0.1, 1.0}
    for scale, mean, std in stats:
        torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-9, rtol=0)
        torch.testing.assert_close(std, torch.full_like(std, scale), atol=1e-9, rtol=0)
    # the method on the model does the same, and refuses a model without weight norm
    model.initialize_from_data(x)
    with pytest.raises(ValueError, match="weight_norm"):
        pp(1, weight_norm=False).initialize_from_data(torch.zeros(1, 1, 5, 5, dtype=torch.long))


def test_paper_preset_and_the_mnist_sizes() -> None:
    """pixelcnnpp-cifar10 is the official default (5 layers x 3 resolutions, 160 filters, 10
    logistics: 30 up-pass and 34 down-pass gated layers, ~53.7M parameters); pixelcnnpp-mnist
    runs 28 -> 14 -> 7 and back."""
    cifar = pixelrnn.create_model(preset="pixelcnnpp-cifar10")
    cfg = cifar.config
    assert (cfg.nr_resnet, cfg.nr_filters, cfg.num_resolutions, cfg.dropout) == (5, 160, 3, 0.5)
    assert cfg.distribution == "logistic_mixture:10" and cifar.num_params_out == 100
    assert sum(len(level) for level in [*cifar.up_u, *cifar.up_ul]) == 30
    assert sum(len(level) for level in [*cifar.down_u, *cifar.down_ul]) == 34
    assert 53_000_000 < sum(p.numel() for p in cifar.parameters()) < 54_000_000
    assert pixelrnn.models.get_preset("pixelcnnpp-cifar10").training["ema_decay"] == 0.9995
    mnist = pixelrnn.create_model(preset="pixelcnnpp-mnist").eval()
    assert mnist.image_shape == (1, 28, 28) and mnist.num_params_out == 15
    sizes: list[tuple[int, int]] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[-2:])))
        for m in [*mnist.downsample_ul, *mnist.upsample_ul]
    ]
    with torch.no_grad():
        out = mnist(torch.randint(0, 256, (2, 1, 28, 28)))
    for h in hooks:
        h.remove()
    assert out.shape == (2, 15, 28, 28) and sizes == [(14, 14), (7, 7), (14, 14), (28, 28)]


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="dropout"):
        pp(dropout=1.0)
    with pytest.raises(ValueError, match="num_classes"):
        pp(num_classes=0)
    with pytest.raises(ValueError, match="nr_filters"):
        pp(nr_filters=0)
