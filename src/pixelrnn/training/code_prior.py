"""The two-stage model of VQ-VAE (van den Oord et al. 2017 §3.3): a VQ-VAE, then an
autoregressive prior trained on its codes; sampling draws codes from the prior and decodes
them; the likelihood is the bound
``−log p(x) ≤ −log p(x | z_q(x)) − log p_prior(z_q(x))``.

A prior's run directory holds ``vqvae.json`` (where its VQ-VAE is, and the VQ-VAE's fingerprint:
SHA-256 of config and weights) and ``codes/`` (the code grids of the VQ-VAE's splits, a
``code-grids`` dataset, extracted once: the encoder is deterministic). A VQ-VAE of another
fingerprint is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pixelrnn.data import ImageDataset, load_dataset
from pixelrnn.files import atomic_write, read_json, write_json
from pixelrnn.models import AutoregressiveModel, find_pretrained_dir, load_pretrained
from pixelrnn.models.persistence import model_fingerprint
from pixelrnn.models.vqvae import VQVAE
from pixelrnn.sampling import sample
from pixelrnn.sampling.generation import generate_given_codes
from pixelrnn.sampling.request import GenerationRequest
from pixelrnn.training.evaluate import check_fits
from pixelrnn.units import bits_per_dim

VQVAE_RECORD = "vqvae.json"
CODES_DIR = "codes"


def load_vqvae(path: str | Path, device: torch.device | str = "cpu") -> VQVAE:
    """A VQ-VAE from a run directory, a checkpoint folder or a pretrained name."""
    model = load_pretrained(find_pretrained_dir(path), map_location=device)
    if not isinstance(model, VQVAE):
        raise ValueError(f"{path} holds a {model.model_name}, not a VQ-VAE")
    return model.eval()


@torch.no_grad()
def extract_codes(vqvae: VQVAE, data: ImageDataset, batch_size: int = 256) -> np.ndarray:
    """The code map of every image of ``data``. Returns int64 ``(N, h, w)``."""
    check_fits(data, vqvae)
    device = next(vqvae.parameters()).device
    parts = [
        vqvae.encode_codes(data.batch(slice(s, s + batch_size)).to(device)).cpu()
        for s in range(0, len(data), batch_size)
    ]
    return torch.cat(parts).numpy()


def write_code_splits(
    vqvae: VQVAE,
    vqvae_dir: str | Path,
    dataset: str,
    binarize: str | None,
    splits: list[str],
    data_dir: str | Path | None,
    run_dir: str | Path,
) -> Path:
    """Record the VQ-VAE in ``run_dir`` and write the codes of ``splits`` of its dataset into
    ``run_dir/codes`` (``<split>.npz``: codes, ``num_levels`` and the labels the images have),
    unless they are there for this very VQ-VAE. Returns the codes folder.

    Dynamically binarized data is binarized once, by the fixed ``threshold`` (codes must not
    change between epochs)."""
    run_dir = Path(run_dir)
    fingerprint = model_fingerprint(vqvae).hex()
    record = run_dir / VQVAE_RECORD
    if record.is_file() and read_json(record).get("fingerprint") != fingerprint:
        raise ValueError(
            f"{run_dir} holds the codes of another VQ-VAE ({record}); choose another --run-dir"
        )
    folder = run_dir / CODES_DIR
    binarize = "threshold" if binarize == "dynamic" else binarize
    for split in splits:
        path = folder / f"{split}.npz"
        if path.is_file():
            continue
        data = load_dataset(dataset, split, data_dir, binarize=binarize)  # type: ignore[arg-type]
        codes = extract_codes(vqvae, data)
        arrays = {"codes": codes, "num_levels": np.int64(vqvae.config.num_codes)}
        if data.labels is not None:
            arrays["labels"] = data.labels.numpy()
        atomic_write(path, lambda tmp, a=arrays: _save_npz(tmp, a))
    write_json(
        record,
        {
            "path": str(Path(vqvae_dir).resolve()),
            "fingerprint": fingerprint,
            "dataset": dataset,
            "binarize": binarize,
        },
    )
    return folder


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def is_code_prior(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` is the run of a prior over a VQ-VAE's codes."""
    return (Path(run_dir) / VQVAE_RECORD).is_file()


def recorded_vqvae(
    run_dir: str | Path, override: str | Path | None = None, device: torch.device | str = "cpu"
) -> VQVAE:
    """The VQ-VAE a prior was trained on (or ``override``, which must be the same one)."""
    record = read_json(Path(run_dir) / VQVAE_RECORD)
    path = override or record["path"]
    vqvae = load_vqvae(path, device)
    found = model_fingerprint(vqvae).hex()
    if found != record["fingerprint"]:
        raise ValueError(
            f"the VQ-VAE at {path} is not the one the prior in {run_dir} was trained on "
            f"(fingerprint {found[:16]}…, the prior's {record['fingerprint'][:16]}…): its codes "
            "mean other things"
        )
    return vqvae


def check_prior_fits(prior: AutoregressiveModel, vqvae: VQVAE) -> None:
    """Raise unless ``prior`` models ``vqvae``'s code grids."""
    h, w = vqvae.code_shape
    if prior.image_shape != (1, h, w) or prior.num_levels != vqvae.config.num_codes:
        raise ValueError(
            f"the prior models {prior.image_shape} grids of {prior.num_levels} levels; the "
            f"VQ-VAE's codes are (1, {h}, {w}) grids of {vqvae.config.num_codes}"
        )


@torch.no_grad()
def sample_two_stage(
    prior: AutoregressiveModel,
    vqvae: VQVAE,
    n: int,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    y: torch.Tensor | int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes from the prior (cached sampler, ``temperature``), then images from the VQ-VAE's
    decoder given them. Returns codes int64 ``(n, h, w)`` and images int64 ``(n, C, H, W)``."""
    check_prior_fits(prior, vqvae)
    codes = sample(prior, n, generator=generator, temperature=temperature, y=y)[:, 0]
    x = torch.zeros((n, *vqvae.image_shape), dtype=torch.long, device=codes.device)
    request = GenerationRequest(generator=generator)
    images = generate_given_codes(vqvae, codes, x, torch.zeros_like(x, dtype=torch.bool), request)
    return codes, images


@dataclass(frozen=True)
class TwoStageResult:
    """The two-stage bound on a split, in nats per image unless named otherwise.

    Attributes:
        reconstruction_nats_per_image: ``−log p(x | z_q(x))``.
        prior_nats_per_grid: ``−log p_prior(z_q(x))``.
        prior_bits_per_code: the same per code, in bits.
        nats_per_image: the bound, their sum.
        bits_per_dim: the bound per sub-pixel of the image, in bits.
    """

    dataset: str
    split: str
    num_images: int
    reconstruction_nats_per_image: float
    prior_nats_per_grid: float
    prior_bits_per_code: float
    nats_per_image: float
    bits_per_dim: float
    likelihood: str = "upper bound on the NLL (VQ-VAE reconstruction + prior over its codes)"


@torch.no_grad()
def evaluate_two_stage(
    prior: AutoregressiveModel,
    vqvae: VQVAE,
    data: ImageDataset,
    batch_size: int = 256,
    max_images: int | None = None,
) -> TwoStageResult:
    """The bound ``−log p(x | z_q(x)) − log p_prior(z_q(x))`` over the images of ``data``
    (a class-conditional prior given each image's label), sums in float64."""
    check_fits(data, vqvae)
    check_prior_fits(prior, vqvae)
    n = len(data) if max_images is None else min(max_images, len(data))
    if n == 0:
        raise ValueError(f"{data.name}/{data.split} has no images to evaluate")
    device = next(vqvae.parameters()).device
    prior_was_training = prior.training
    prior.eval()
    reconstruction = coded = 0.0
    try:
        for start in range(0, n, batch_size):
            index = slice(start, min(start + batch_size, n))
            x = data.batch(index).to(device)
            y = None if prior.num_classes is None else data.labels_at(index).to(device)
            reconstruction -= float(vqvae.reconstruction_log_prob(x).double().sum())
            codes = vqvae.encode_codes(x)[:, None]
            coded -= float(prior.log_prob(codes, y=y).double().sum())
    finally:
        prior.train(prior_was_training)
    nats = (reconstruction + coded) / n
    return TwoStageResult(
        data.name,
        data.split,
        n,
        reconstruction / n,
        coded / n,
        coded / n / (math.prod(vqvae.code_shape) * math.log(2)),
        nats,
        float(bits_per_dim(nats, vqvae.num_dims)),
    )
