"""Golden masks and gradient behaviour of MaskedConv2d (PixelRNN §3.4)."""

from __future__ import annotations

import pytest
import torch

from pixelrnn.nn import MaskedConv2d, causal_mask, channel_groups


def test_single_group_golden_masks() -> None:
    a = causal_mask(1, 1, (5, 5), "A", 1)[0, 0]
    b = causal_mask(1, 1, (5, 5), "B", 1)[0, 0]
    golden_a = torch.tensor(
        [
            [1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1],
            [1, 1, 0, 0, 0],
            [0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0],
        ],
        dtype=torch.float32,
    )
    golden_b = golden_a.clone()
    golden_b[2, 2] = 1
    assert torch.equal(a, golden_a)
    assert torch.equal(b, golden_b)


def test_colour_groups_at_centre_tap() -> None:
    # 1x1 kernels: only the centre tap, so the mask is the colour rule itself.
    # Input channels R, G, B (groups 0, 1, 2); 6 outputs, two per group.
    a = causal_mask(3, 6, (1, 1), "A", 3)[:, :, 0, 0]
    b = causal_mask(3, 6, (1, 1), "B", 3)[:, :, 0, 0]
    golden_a = torch.tensor(
        [[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0]], dtype=torch.float32
    )
    golden_b = torch.tensor(
        [[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1]], dtype=torch.float32
    )
    assert torch.equal(a, golden_a)
    assert torch.equal(b, golden_b)


def test_colour_rule_only_at_centre() -> None:
    m = causal_mask(3, 3, (3, 3), "A", 3)
    # off-centre causal taps connect every group to every group
    assert torch.equal(m[:, :, 0, :], torch.ones(3, 3, 3))
    assert torch.equal(m[:, :, 1, 0], torch.ones(3, 3))
    assert torch.equal(m[:, :, 2, :], torch.zeros(3, 3, 3))
    assert torch.equal(m[:, :, 1, 2], torch.zeros(3, 3))


def test_channel_groups_contiguous_and_uneven() -> None:
    assert channel_groups(6, 3).tolist() == [0, 0, 1, 1, 2, 2]
    groups = channel_groups(256, 3)
    assert groups.tolist() == sorted(groups.tolist())
    assert [int((groups == g).sum()) for g in range(3)] == [86, 85, 85]
    with pytest.raises(ValueError, match="at least 3 channels"):
        channel_groups(2, 3)


def test_masked_weights_get_zero_gradient_and_stay_untouched() -> None:
    torch.manual_seed(0)
    conv = MaskedConv2d(2, 3, 3, "B", 1)
    before = conv.weight.detach().clone()
    conv(torch.randn(2, 2, 6, 6)).sum().backward()
    grad = conv.weight.grad
    assert grad is not None
    assert torch.all(grad[conv.mask == 0] == 0)
    assert torch.any(grad[conv.mask == 1] != 0)
    assert torch.equal(conv.weight.detach(), before)  # the forward pass never writes weights


def test_output_depends_only_on_causal_inputs() -> None:
    torch.manual_seed(0)
    conv = MaskedConv2d(1, 4, 5, "A", 1).double()
    x = torch.randn(1, 1, 7, 7, dtype=torch.float64, requires_grad=True)
    conv(x)[0, :, 3, 3].sum().backward()
    grad = x.grad[0, 0]
    support = torch.zeros(7, 7, dtype=torch.bool)
    support[1:3, 1:6] = True
    support[3, 1:3] = True
    assert torch.all(grad[~support] == 0)
    assert torch.all(grad[support] != 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(kernel_size=(2, 3), mask_type="A"), "odd kernel"),
        (dict(kernel_size=3, mask_type="C"), "mask_type"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MaskedConv2d(3, 3, num_groups=3, **kwargs)
