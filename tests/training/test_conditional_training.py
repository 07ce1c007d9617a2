"""Class conditioning learns something real: after a short run on MNIST digits, the label moves
the likelihood the right way and samples drawn for a label look like that digit to a simple
classifier trained here on the same data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import pixelrnn
from pixelrnn.data import load_dataset

DIGITS = (0, 1, 7)  # three classes: chance is 1/3


def small_binary_digits(data_dir: Path, split: str, per_class: int) -> tuple[torch.Tensor, ...]:
    """MNIST digits of ``DIGITS``, thresholded and max-pooled to 14x14 binary images.

    Returns:
        images int64 ``(N, 1, 14, 14)`` and labels ``(N,)`` in ``[0, len(DIGITS))``.
    """
    data = load_dataset("mnist", split, data_dir, binarize="threshold")
    images, labels = [], []
    for k, digit in enumerate(DIGITS):
        index = (data.labels == digit).nonzero().flatten()[:per_class]
        x = data.batch(index).float()
        images.append(F.max_pool2d(x, 2).long())
        labels.append(torch.full((len(index),), k))
    return torch.cat(images), torch.cat(labels)


def nearest_centroid(train_x: torch.Tensor, train_y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Classify ``x`` by the closest class mean image (a deliberately simple classifier)."""
    centroids = torch.stack([train_x[train_y == k].float().mean(0) for k in range(len(DIGITS))])
    distances = torch.cdist(x.float().flatten(1), centroids.flatten(1))
    return distances.argmin(1)


@pytest.fixture(scope="module")
def trained(data_dir: Path) -> tuple[pixelrnn.AutoregressiveModel, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x, y = small_binary_digits(data_dir, "train", 600)
    model = pixelrnn.create_model(
        "gated_pixelcnn",
        image_shape=(1, 14, 14),
        num_levels=2,
        hidden_channels=16,
        num_layers=4,
        output_channels=32,
        num_classes=len(DIGITS),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        index = torch.randint(0, len(x), (32,), generator=g)
        loss = -model.log_prob(x[index], y=y[index]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), x, y


def test_the_true_label_makes_test_images_more_likely(trained, data_dir: Path) -> None:
    model, _, _ = trained
    x, y = small_binary_digits(data_dir, "test", 50)
    with torch.no_grad():
        scores = torch.stack(
            [model.log_prob(x, y=torch.full_like(y, k)) for k in range(len(DIGITS))], 1
        )  # (N, classes): log p(x | y = k)
    accuracy = (scores.argmax(1) == y).float().mean()
    assert accuracy > 0.9, f"the label of highest likelihood is right for only {accuracy:.0%}"


def test_samples_look_like_their_label(trained) -> None:
    model, train_x, train_y = trained
    classifier_accuracy = (nearest_centroid(train_x, train_y, train_x) == train_y).float().mean()
    assert classifier_accuracy > 0.85  # the classifier itself works on real digits
    labels = torch.arange(len(DIGITS)).repeat_interleave(10)
    samples = pixelrnn.sample(
        model, len(labels), generator=torch.Generator().manual_seed(1), y=labels
    )
    accuracy = (nearest_centroid(train_x, train_y, samples) == labels).float().mean()
    assert accuracy >= 0.6, f"only {accuracy:.0%} of the samples classified as their label"
