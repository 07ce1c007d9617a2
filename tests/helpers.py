"""Helpers shared by the tests: tiny seeded models, random images, dependency probing."""

from __future__ import annotations

from pathlib import Path

import torch

import pixelrnn
from pixelrnn.files import read_json
from pixelrnn.models.persistence import CHECKSUMS_NAME, write_checksums
from pixelrnn.nn import channel_groups
from pixelrnn.sampling import generation_rank


def tiny_preset(model: str) -> str:
    """Name of a model's tiny test preset: ``diagonal_bilstm`` → ``diagonal-bilstm-tiny``."""
    return model.replace("_", "-") + "-tiny"


# the shared tests size every model with the PixelCNN's knobs; PixelCNN++ names them its own way
SIZE_ALIASES = {"pixelcnnpp": {"hidden_channels": "nr_filters", "num_layers": "nr_resnet"}}


def tiny_model(
    channels: int = 1,
    levels: int = 2,
    size: int = 5,
    seed: int = 0,
    model: str = "pixelcnn",
    **overrides: object,
) -> pixelrnn.AutoregressiveModel:
    """The model's tiny preset, re-sized, with seeded random weights."""
    aliases = SIZE_ALIASES.get(model, {})
    overrides = {aliases.get(k, k): v for k, v in overrides.items()}
    torch.manual_seed(seed)
    return pixelrnn.create_model(
        preset=tiny_preset(model),
        image_shape=(channels, size, size),
        num_levels=levels,
        **overrides,
    )


def random_images(model: pixelrnn.AutoregressiveModel, n: int, seed: int = 0) -> torch.Tensor:
    """Uniformly random integer images for ``model``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.num_levels, (n, *model.image_shape), generator=g)


def random_labels(
    model: pixelrnn.AutoregressiveModel, n: int, seed: int = 0
) -> torch.Tensor | None:
    """Random class labels ``(n,)`` for a conditional model, None for an unconditional one."""
    if model.num_classes is None:
        return None
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.num_classes, (n,), generator=g)


@torch.no_grad()
def pixel_dependencies(
    model: pixelrnn.AutoregressiveModel, row: int, col: int, num_images: int = 4
) -> torch.Tensor:
    """Which input pixels change the distribution parameters predicted at ``(row, col)``.

    Every sub-pixel of every input pixel is changed in turn, on ``num_images`` random images
    (float64 model), and the parameters at ``(row, col)`` are compared exactly.

    Returns:
        bool ``(H, W)``.
    """
    model = model.double().eval()
    _, h, w = model.image_shape
    x = random_images(model, num_images, seed=1)
    y = random_labels(model, num_images)
    base = model(x, y)[:, :, row, col]
    depends = torch.zeros(h, w, dtype=torch.bool)
    for c in range(model.image_shape[0]):
        for i in range(h):
            for j in range(w):
                changed = x.clone()
                changed[:, c, i, j] = (changed[:, c, i, j] + 1) % model.num_levels
                if not torch.equal(model(changed, y)[:, :, row, col], base):
                    depends[i, j] = True
    return depends


def earlier_pixels(h: int, w: int, row: int, col: int) -> torch.Tensor:
    """bool ``(H, W)``: True on every pixel before ``(row, col)`` in raster order."""
    idx = torch.arange(h * w).reshape(h, w)
    return idx < row * w + col


def _output_index(
    model: pixelrnn.AutoregressiveModel, rank: torch.Tensor, ch: int, i: int, j: int
) -> int:
    """Order of an entry of ``log_prob(reduction="none")``: a pixel for joint distributions
    (its last channel's rank), in the order ``rank`` ``(C, H, W)``."""
    if model.distribution.joint_channels:
        return int(rank[:, i, j].max())
    return int(rank[ch, i, j])


@torch.no_grad()
def assert_causal(
    model: pixelrnn.AutoregressiveModel,
    whole_pixel_context: bool = False,
    rank: torch.Tensor | None = None,
) -> None:
    """Raise AssertionError unless ``model`` is autoregressive in raster, then R→G→B, order.

    Every input sub-pixel of image 0 is changed in turn (float64 model, exact comparisons):
    no log-probability and no conditional's parameters of an earlier-or-same sub-pixel may
    change, nothing of image 1 may change, and some later log-probability must change.

    Args:
        whole_pixel_context: the network sees only whole earlier pixels (PixelCNN++) while the
            distribution is per sub-pixel, so the last pixel's channels influence nothing.
        rank: the order to hold the model to, ``(C, H, W)`` (default: its generation order,
            :func:`pixelrnn.sampling.generation_rank`).
    """
    model = model.double().eval()
    device = next(model.parameters()).device
    c_img, h, w = model.image_shape
    if rank is None:
        rank = generation_rank(model)  # raster, then R→G→B, unless the model says otherwise
    x = random_images(model, 2).to(device)
    y = random_labels(model, 2)
    y = None if y is None else y.to(device)
    # the conditionals (a latent model's given its bound latent, the prior mean here)
    base_params = model(x, y)
    base_lp = model.log_prob_from_params(base_params, x, reduction="none")
    n_out, n_params = base_lp.shape[1], base_params.shape[1]
    # which channel's conditional every parameter map belongs to (joint: all channels at once)
    param_channel = (
        torch.full((n_params,), c_img - 1)
        if model.distribution.joint_channels
        else channel_groups(n_params, c_img)
    ).to(device)
    for c in range(c_img):
        for i in range(h):
            for j in range(w):
                p = int(rank[c, i, j])
                changed = x.clone()
                changed[0, c, i, j] = (changed[0, c, i, j] + 1) % model.num_levels
                params = model(changed, y)
                lp = model.log_prob_from_params(params, changed, reduction="none")
                # never across the batch
                assert torch.equal(lp[1], base_lp[1]) and torch.equal(params[1], base_params[1])
                later_changed = False
                for i2 in range(h):
                    for j2 in range(w):
                        for oc in range(n_out):
                            q = _output_index(model, rank, oc, i2, j2)
                            same = lp[0, oc, i2, j2] == base_lp[0, oc, i2, j2]
                            if q < p:
                                assert same, f"log p of sub-pixel {q} changed with input {p}"
                            elif q > p and not same:
                                later_changed = True
                        for pc in range(c_img):
                            q = _output_index(model, rank, pc, i2, j2)
                            maps = param_channel == pc
                            same = torch.equal(
                                params[0, maps, i2, j2], base_params[0, maps, i2, j2]
                            )
                            if q <= p:  # a sub-pixel's own conditional may not see itself either
                                assert same, f"conditional of sub-pixel {q} changed with input {p}"
                last = p == c_img * h * w - 1 or (whole_pixel_context and p >= c_img * (h * w - 1))
                assert later_changed or last, f"input sub-pixel {p} influences nothing later"


@torch.no_grad()
def dependency_matrix(model: pixelrnn.AutoregressiveModel, num_images: int = 4) -> torch.Tensor:
    """Which input pixels change the distribution parameters at which output pixels.

    Every sub-pixel of every input pixel is changed in turn (float64 model, random images,
    exact comparison of every parameter map).

    Returns:
        bool ``(H·W, H·W)``: entry ``[p, q]`` is True when input pixel ``q`` (raster index)
        influences the prediction at pixel ``p``.
    """
    model = model.double().eval()
    c, h, w = model.image_shape
    x = random_images(model, num_images, seed=1)
    y = random_labels(model, num_images)
    base = model(x, y)
    matrix = torch.zeros(h * w, h * w, dtype=torch.bool)
    for ch in range(c):
        for i in range(h):
            for j in range(w):
                changed = x.clone()
                changed[:, ch, i, j] = (changed[:, ch, i, j] + 1) % model.num_levels
                diff = (model(changed, y) != base).any(dim=1).any(dim=0)  # (H, W)
                matrix[:, i * w + j] |= diff.flatten()
    return matrix


def strictly_earlier(h: int, w: int) -> torch.Tensor:
    """bool ``(H·W, H·W)``: ``[p, q]`` True when pixel ``q`` precedes pixel ``p``."""
    idx = torch.arange(h * w)
    return idx[None, :] < idx[:, None]


def reseal(folder: str | Path) -> None:
    """Record the current bytes of a checkpoint folder's files in its ``checksums.json``: a test
    that edits a file on purpose (a file written wrongly, not damaged on disk) reseals it."""
    folder = Path(folder)
    write_checksums(folder, sorted(read_json(folder / CHECKSUMS_NAME)))
