"""The two-stage model of VQ-VAE (van den Oord et al. 2017 §3.3): a VQ-VAE, then an
autoregressive prior trained on its codes; sampling draws codes from the prior and decodes
them; the likelihood is the bound
``−log p(x) ≤ −log p(x | z_q(x)) − log p_prior(z_q(x))``.

A two-level VQ-VAE (VQ-VAE-2, Razavi et al. 2019) has two priors, each a run of its own: one
over the top codes (``level="top"``) and one over the bottom codes given the top ones, which it
reads as a conditioning code map (``level="bottom"``; the codes files carry the top codes as
their ``context``). Sampling draws the top codes, then the bottom codes given them; the bound
adds both priors' nats.

A prior's run directory holds ``vqvae.json`` (where its VQ-VAE is, and the VQ-VAE's fingerprint:
SHA-256 of config and weights) and ``codes/`` (the code grids of the VQ-VAE's splits, a
``code-grids`` dataset, extracted once: the encoder is deterministic). A VQ-VAE of another
fingerprint is refused. A shipped prior (:mod:`pixelrnn.models.pretrained`) keeps its
``vqvae.json`` in its package folder, naming a shipped VQ-VAE.
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
from pixelrnn.models.pretrained import PRETRAINED_DIR, available_pretrained
from pixelrnn.models.vqvae import VQVAE
from pixelrnn.nn import code_map
from pixelrnn.sampling import sample
from pixelrnn.sampling.generation import generate_given_codes
from pixelrnn.sampling.request import GenerationRequest
from pixelrnn.training.evaluate import check_fits
from pixelrnn.units import bits_per_dim

VQVAE_RECORD = "vqvae.json"
CODES_DIR = "codes"
LEVELS = ("bottom", "top")  # the code levels of a VQ-VAE, bottom first


def load_vqvae(path: str | Path, device: torch.device | str = "cpu") -> VQVAE:
    """A VQ-VAE from a run directory, a checkpoint folder or a pretrained name."""
    model = load_pretrained(find_pretrained_dir(path), map_location=device)
    if not isinstance(model, VQVAE):
        raise ValueError(f"{path} holds a {model.model_name}, not a VQ-VAE")
    return model.eval()


@torch.no_grad()
def extract_codes(vqvae: VQVAE, data: ImageDataset, batch_size: int = 256) -> list[np.ndarray]:
    """The code maps of every image of ``data``, per level (bottom first). Returns int64
    ``(N, h, w)`` each."""
    check_fits(data, vqvae)
    device = next(vqvae.parameters()).device
    parts = [
        vqvae.encode_codes(data.batch(slice(s, s + batch_size)).to(device))
        for s in range(0, len(data), batch_size)
    ]
    return [torch.cat(level).cpu().numpy() for level in zip(*parts, strict=True)]


def write_code_splits(
    vqvae: VQVAE,
    vqvae_dir: str | Path,
    dataset: str,
    binarize: str | None,
    splits: list[str],
    data_dir: str | Path | None,
    run_dir: str | Path,
    level: str = "bottom",
) -> Path:
    """Record the VQ-VAE in ``run_dir`` and write the codes of ``splits`` of its dataset into
    ``run_dir/codes`` (``<split>.npz``: codes of ``level``, ``num_levels`` and the labels the
    images have; for the bottom level of a two-level VQ-VAE the top codes as ``context``),
    unless they are there for this very VQ-VAE. Returns the codes folder.

    Dynamically binarized data is binarized once, by the fixed ``threshold`` (codes must not
    change between epochs)."""
    run_dir = Path(run_dir)
    if level not in LEVELS or (level == "top" and len(vqvae.code_shapes) == 1):
        raise ValueError(
            f"code level {level!r}: this VQ-VAE has the levels "
            f"{', '.join(LEVELS[: len(vqvae.code_shapes)])}"
        )
    fingerprint = model_fingerprint(vqvae).hex()
    record = run_dir / VQVAE_RECORD
    if record.is_file():
        stored = read_record(run_dir)
        if stored.get("fingerprint") != fingerprint:
            raise ValueError(
                f"{run_dir} holds the codes of another VQ-VAE ({record}); choose another --run-dir"
            )
        if stored["level"] != level:
            raise ValueError(
                f"{run_dir} holds the VQ-VAE's {stored['level']} codes, not its "
                f"{level} codes; choose another --run-dir"
            )
    folder = run_dir / CODES_DIR
    binarize = "threshold" if binarize == "dynamic" else binarize
    for split in splits:
        path = folder / f"{split}.npz"
        if path.is_file():
            continue
        data = load_dataset(dataset, split, data_dir, binarize=binarize)  # type: ignore[arg-type]
        codes = extract_codes(vqvae, data)
        k = np.int64(vqvae.config.num_codes)
        arrays = {"codes": codes[LEVELS.index(level)], "num_levels": k}
        if level == "bottom" and len(codes) > 1:
            arrays |= {"context": codes[1], "context_levels": k}
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
            "level": level,
        },
    )
    return folder


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def record_file(run_dir: str | Path) -> Path:
    """Where the VQ-VAE record of ``run_dir`` is: in the run directory, or, for the name of a
    shipped model where no such folder exists, in its package folder."""
    folder = Path(run_dir)
    if not folder.exists() and str(run_dir) in available_pretrained():
        folder = PRETRAINED_DIR / str(run_dir)
    return folder / VQVAE_RECORD


def is_code_prior(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` (a run directory or a shipped model's name) is a prior over a
    VQ-VAE's codes."""
    return record_file(run_dir).is_file()


def read_record(run_dir: str | Path) -> dict[str, str]:
    """The VQ-VAE record of a prior: ``path`` (a run directory or a shipped model's name),
    ``fingerprint``, the image ``dataset`` and its ``binarize``, the code ``level``."""
    return {"level": "bottom", **read_json(record_file(run_dir))}


def recorded_vqvae(
    run_dir: str | Path, override: str | Path | None = None, device: torch.device | str = "cpu"
) -> VQVAE:
    """The VQ-VAE a prior was trained on (or ``override``, which must be the same one)."""
    record = read_record(run_dir)
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


def recorded_level(run_dir: str | Path) -> str:
    """The code level a prior models (``"bottom"`` for runs that do not say)."""
    return read_record(run_dir)["level"]


def top_prior_for(
    run_dir: str | Path,
    vqvae: VQVAE,
    top_run: str | Path | None,
    device: torch.device | str = "cpu",
) -> AutoregressiveModel | None:
    """The top-level prior a bottom prior of a two-level VQ-VAE samples and scores with
    (``top_run``, checked to model the same VQ-VAE's top codes); None for one level."""
    level = recorded_level(run_dir)
    if level == "top":
        raise ValueError(
            f"{run_dir} is a prior over the top codes: sample and evaluate the bottom codes' "
            f"prior, with --top-prior {run_dir}"
        )
    if len(vqvae.code_shapes) == 1:
        if top_run is not None:
            raise ValueError("--top-prior: this VQ-VAE has one code level")
        return None
    if top_run is None:
        raise ValueError(
            f"{run_dir} models the bottom codes of a two-level VQ-VAE given its top codes: "
            "pass --top-prior RUN, a prior trained with --code-level top"
        )
    if not is_code_prior(top_run) or recorded_level(top_run) != "top":
        raise ValueError(f"{top_run} is not a prior over a VQ-VAE's top codes")
    if read_record(top_run)["fingerprint"] != model_fingerprint(vqvae).hex():
        raise ValueError(f"{top_run} models the top codes of another VQ-VAE")
    top = load_pretrained(find_pretrained_dir(top_run), map_location=device).eval()
    check_prior_fits(top, vqvae, "top")
    return top


def check_prior_fits(prior: AutoregressiveModel, vqvae: VQVAE, level: str = "bottom") -> None:
    """Raise unless ``prior`` models ``vqvae``'s code grids of ``level`` (the bottom ones of a
    two-level VQ-VAE given a map of the top ones)."""
    h, w = vqvae.code_shapes[LEVELS.index(level)]
    k = vqvae.config.num_codes
    if prior.image_shape != (1, h, w) or prior.num_levels != k:
        raise ValueError(
            f"the prior models {prior.image_shape} grids of {prior.num_levels} levels; the "
            f"VQ-VAE's {level} codes are (1, {h}, {w}) grids of {k}"
        )
    wanted = k if level == "bottom" and len(vqvae.code_shapes) > 1 else None
    if prior.config.context_channels != wanted:
        raise ValueError(
            f"the prior reads a conditioning map of {prior.config.context_channels} channels; "
            f"the VQ-VAE's {level} codes need {wanted}"
        )


def _top_map(codes: torch.Tensor, vqvae: VQVAE, prior: AutoregressiveModel) -> torch.Tensor:
    """The conditioning map of top codes for the bottom prior (:func:`code_map`)."""
    dtype = next(prior.parameters()).dtype
    return code_map(codes, vqvae.config.num_codes, vqvae.code_shape, dtype)


@torch.no_grad()
def sample_two_stage(
    prior: AutoregressiveModel,
    vqvae: VQVAE,
    n: int,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    y: torch.Tensor | int | None = None,
    top_prior: AutoregressiveModel | None = None,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Codes from the priors (cached sampler, ``temperature``; a two-level VQ-VAE's top codes
    from ``top_prior`` first, then the bottom ones given them), then images from the VQ-VAE's
    decoder given them. Returns the codes, int64 ``(n, h, w)`` per level (bottom first), and
    the images, int64 ``(n, C, H, W)``."""
    check_prior_fits(prior, vqvae)
    options = {"generator": generator, "temperature": temperature, "y": y}
    top, context = [], None
    if len(vqvae.code_shapes) > 1:
        if top_prior is None:
            raise ValueError("a two-level VQ-VAE samples its top codes first: pass top_prior")
        check_prior_fits(top_prior, vqvae, "top")
        top = [sample(top_prior, n, **options)[:, 0]]
        context = _top_map(top[0], vqvae, prior)
    with prior.conditioned_on(context):
        codes = [sample(prior, n, **options)[:, 0], *top]
    x = torch.zeros((n, *vqvae.image_shape), dtype=torch.long, device=codes[0].device)
    request = GenerationRequest(generator=generator)
    images = generate_given_codes(vqvae, codes, x, torch.zeros_like(x, dtype=torch.bool), request)
    return codes, images


@dataclass(frozen=True)
class TwoStageResult:
    """The two-stage bound on a split, in nats per image unless named otherwise.

    Attributes:
        reconstruction_nats_per_image: ``−log p(x | z_q(x))``.
        prior_nats_per_grid: ``−log p_prior(z_q(x))`` (the top and bottom priors' together for
            a two-level VQ-VAE).
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
    top_prior: AutoregressiveModel | None = None,
) -> TwoStageResult:
    """The bound ``−log p(x | z_q(x)) − log p_prior(z_q(x))`` over the images of ``data``
    (a class-conditional prior given each image's label; a two-level VQ-VAE's bottom prior
    given the top codes, which ``top_prior`` scores), sums in float64."""
    check_fits(data, vqvae)
    check_prior_fits(prior, vqvae)
    two_level = len(vqvae.code_shapes) > 1
    if two_level:
        if top_prior is None:
            raise ValueError("a two-level VQ-VAE's bound needs the top codes' prior: top_prior")
        check_prior_fits(top_prior, vqvae, "top")
    n = len(data) if max_images is None else min(max_images, len(data))
    if n == 0:
        raise ValueError(f"{data.name}/{data.split} has no images to evaluate")
    device = next(vqvae.parameters()).device
    priors = [m for m in (prior, top_prior) if m is not None]
    was_training = [m.training for m in priors]
    for m in priors:
        m.eval()
    reconstruction = coded = 0.0
    try:
        for start in range(0, n, batch_size):
            index = slice(start, min(start + batch_size, n))
            x = data.batch(index).to(device)
            y = None if prior.num_classes is None else data.labels_at(index).to(device)
            reconstruction -= float(vqvae.reconstruction_log_prob(x).double().sum())
            codes = vqvae.encode_codes(x)
            context = _top_map(codes[1], vqvae, prior) if two_level else None
            with prior.conditioned_on(context):
                coded -= float(prior.log_prob(codes[0][:, None], y=y).double().sum())
            if top_prior is not None:
                y_top = None if top_prior.num_classes is None else y
                coded -= float(top_prior.log_prob(codes[1][:, None], y=y_top).double().sum())
    finally:
        for m, training in zip(priors, was_training, strict=True):
            m.train(training)
    nats = (reconstruction + coded) / n
    num_codes = sum(math.prod(shape) for shape in vqvae.code_shapes)
    return TwoStageResult(
        data.name,
        data.split,
        n,
        reconstruction / n,
        coded / n,
        coded / n / (num_codes * math.log(2)),
        nats,
        float(bits_per_dim(nats, vqvae.num_dims)),
    )
