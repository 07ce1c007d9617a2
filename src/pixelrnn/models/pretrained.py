"""Trained models shipped inside the package, by name.

Each lives in ``pixelrnn/pretrained/<name>/``: ``config.json`` and ``model.safetensors`` (as
:func:`~pixelrnn.models.persistence.save_pretrained` writes them, with the training run's data
settings) and ``card.json``, the model card: the data set and split, the test NLL on the full
test split (nats per image and bits per dimension) and on its first 500 images (what the test
suite recomputes), the command and budget that trained it, the machine, the library version and
the sha256 of the weights, checked on every load.

A prior over a VQ-VAE's codes ships beside its VQ-VAE: its folder also holds ``vqvae.json``
(as a prior's run directory does), naming the shipped VQ-VAE and its fingerprint, and its card's
figures are the two-stage bound on the VQ-VAE's images.
"""

from __future__ import annotations

import hashlib
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from pixelrnn.config_io import DictConfig
from pixelrnn.files import read_json

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"
CARD_NAME = "card.json"
# how a card's check figure is computed, by tools/package_pretrained.py and recomputed by the
# tests: the NLL of the test split's first CHECK_IMAGES images, CHECK_BATCH at a time
CHECK_IMAGES = 500
CHECK_BATCH = 250


@dataclass(frozen=True)
class ModelCard(DictConfig):
    """What a shipped model is and how well it does (the fields of ``card.json``).

    Attributes:
        name: the name it loads by (``pixelrnn.load_pretrained(name)``).
        preset: the preset it was trained from.
        dataset: the data set it was trained and tested on; binarize: its binarization.
        test_split: the split of the test figures; num_test_images: its size.
        nats_per_image: test NLL, nats per image; bits_per_dim: the same per dimension.
        first_500_nats_per_image: test NLL of the split's first 500 images (the test suite's
            check of the shipped weights).
        paper_nats_per_image: the paper's figure for this model and data set, or None.
        command: the command that trained it; budget: its training time and images seen.
        hardware: where it was trained; pixelrnn_version: the library version.
        sha256: of ``model.safetensors``.
        likelihood: what the figures are: ``"exact"``, or the bound they are (a VQ-VAE's and
            a code prior's).
    """

    name: str
    preset: str
    dataset: str
    binarize: str | None
    test_split: str
    num_test_images: int
    nats_per_image: float
    bits_per_dim: float
    first_500_nats_per_image: float
    paper_nats_per_image: float | None
    command: str
    budget: str
    hardware: str
    pixelrnn_version: str
    sha256: str
    likelihood: str = "exact"

    @classmethod
    def from_dict(cls, data: Any, source: str | None = None) -> ModelCard:
        """A card's fields, each checked (other keys are ignored: newer cards may add some)."""
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING}
        if not isinstance(data, dict):
            raise ValueError(f"{source or 'model card'}: expected an object of fields")
        missing = sorted(required - set(data))
        if missing:
            raise ValueError(f"{source or 'model card'}: missing field(s) {missing}")
        known = {k: v for k, v in data.items() if k in names}
        return super().from_dict(known, source)


def available_pretrained() -> list[str]:
    """The names of the shipped models."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / CARD_NAME).is_file())


def pretrained_card(name: str) -> ModelCard:
    """The model card of the shipped model ``name``."""
    if name not in available_pretrained():
        raise ValueError(f"no pretrained model {name!r}; available: {available_pretrained()}")
    path = PRETRAINED_DIR / name / CARD_NAME
    return ModelCard.from_dict(read_json(path), str(path))


def sha256_of(path: Path) -> str:
    """The sha256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pretrained_dir(name: str, weights_name: str) -> Path:
    """The folder of the shipped model ``name``, its weights checked against the card's sha256
    (a clear error for a damaged or replaced file)."""
    card = pretrained_card(name)
    folder = PRETRAINED_DIR / name
    found = sha256_of(folder / weights_name)
    if found != card.sha256:
        raise ValueError(
            f"{folder / weights_name}: sha256 {found} differs from the model card's "
            f"{card.sha256}; the file is damaged or was replaced (reinstall pixelrnn)"
        )
    return folder
