"""Real-data training, run on purpose: ``python -m pytest -m slow``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixelrnn.cli import main


@pytest.mark.slow
def test_pixelcnn_mnist_learns_digits_in_three_minutes(tmp_path: Path, data_dir: Path) -> None:
    """Three CPU minutes of the paper's PixelCNN on binarized MNIST beat 100 nats/image on the
    whole test set (a uniform model has 543.4, an independent-pixel model about 206)."""
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "--preset",
            "pixelcnn-mnist",
            "--time-budget-minutes",
            "3",
            "--run-dir",
            str(run),
            "--data-dir",
            str(data_dir),
            "--num-samples",
            "16",
            "--num-completions",
            "1",
        ]
    )
    assert code == 0
    result = json.loads((run / "results.json").read_text())
    assert result["num_images"] == 10_000
    assert result["nats_per_image"] < 100.0, result
