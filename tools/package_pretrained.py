"""Put a finished training run into the package as a pretrained model, with its model card.

Copies the run's best weights (``best/``, else ``last/``: ``config.json`` and
``model.safetensors``) into ``src/pixelrnn/pretrained/<name>/`` and writes ``card.json``: the
full test NLL from the run's ``results.json``, the NLL of the test split's first 500 images
(recomputed here exactly as ``tests/models/test_pretrained.py`` does), the command and budget,
the machine, the library version and the weights' sha256.

    PIXELRNN_DATA=../shared/data python tools/package_pretrained.py runs/pixelcnn-mnist \
        --name pixelcnn-mnist --paper 81.30 \
        --command "pixelrnn train --preset pixelcnn-mnist --time-budget-minutes 20" \
        --budget "20 min on one CPU thread"

A prior over a VQ-VAE's codes ships beside its VQ-VAE, packaged first: ``--vqvae-name`` names
the shipped VQ-VAE (which must be the one the prior was trained on, by fingerprint), and the
card's figures are the two-stage bound on the VQ-VAE's test images, computed here.
``--evaluate`` computes any model's test figures here, over the whole test split, instead of
reading the run's ``results.json`` (which may cover fewer images).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
from pathlib import Path

import torch

import pixelrnn
from pixelrnn.data import load_dataset
from pixelrnn.files import read_json, write_json
from pixelrnn.models import CONFIG_NAME, WEIGHTS_NAME, find_pretrained_dir, load_pretrained
from pixelrnn.models.persistence import model_fingerprint
from pixelrnn.models.pretrained import (
    CARD_NAME,
    CHECK_BATCH,
    CHECK_IMAGES,
    PRETRAINED_DIR,
    sha256_of,
)
from pixelrnn.models.vqvae import VQVAE
from pixelrnn.training import evaluate_nll, make_generator
from pixelrnn.training.code_prior import (
    VQVAE_RECORD,
    evaluate_two_stage,
    is_code_prior,
    load_vqvae,
    read_record,
)


def test_figures(
    model: pixelrnn.AutoregressiveModel,
    vqvae: VQVAE | None,
    dataset: str,
    binarize: str | None,
    max_images: int | None,
) -> dict[str, object]:
    """The test split's figures (of its first ``max_images`` images): the NLL or bound in nats
    per image and bits per dimension and what it is; with ``vqvae``, ``model`` is a prior over
    its codes and the figure is the two-stage bound. Float64 sums, ``CHECK_BATCH`` at a time,
    as the test suite recomputes them."""
    data = load_dataset(dataset, "test", binarize=binarize)  # type: ignore[arg-type]
    if vqvae is not None:
        bound = evaluate_two_stage(model, vqvae, data, CHECK_BATCH, max_images)
        return {
            "num_images": bound.num_images,
            "nats_per_image": bound.nats_per_image,
            "bits_per_dim": bound.bits_per_dim,
            "likelihood": bound.likelihood,
        }
    result = evaluate_nll(
        model,
        data,
        CHECK_BATCH,
        generator=make_generator(0, "eval", "test"),
        max_images=max_images,
    ).to_dict()
    keys = ("num_images", "nats_per_image", "bits_per_dim", "likelihood")
    return {key: result[key] for key in keys}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--preset", help="the preset it was trained from (default: --name)")
    parser.add_argument(
        "--test-split",
        help="how to name the test split in the card when it is not the whole of it "
        "(e.g. 'test[:1000]'; default: the run's)",
    )
    parser.add_argument("--paper", type=float, default=None, help="the paper's nats per image")
    parser.add_argument("--command", required=True, help="the command(s) that trained it")
    parser.add_argument("--budget", required=True, help="training time and where")
    parser.add_argument(
        "--vqvae-name", help="for a prior over codes: the shipped VQ-VAE it was trained on"
    )
    parser.add_argument(
        "--evaluate", action="store_true", help="compute the figures on the whole test split"
    )
    args = parser.parse_args()

    folder = find_pretrained_dir(args.run_dir)
    config = read_json(folder / CONFIG_NAME)
    training = config["training"]
    state = read_json(args.run_dir / "last" / "trainer_state.json")
    images_seen = state["global_step"] * training["batch_size"]
    target = PRETRAINED_DIR / args.name
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / WEIGHTS_NAME, target / WEIGHTS_NAME)
    write_json(target / CONFIG_NAME, config)
    torch.set_num_threads(1)
    model = load_pretrained(target)
    dataset, binarize, vqvae = training["dataset"], training.get("binarize"), None
    if is_code_prior(args.run_dir):
        if args.vqvae_name is None:
            parser.error(f"{args.run_dir} is a prior over codes: name its VQ-VAE, --vqvae-name")
        record = read_record(args.run_dir)
        vqvae = load_vqvae(args.vqvae_name)
        if model_fingerprint(vqvae).hex() != record["fingerprint"]:
            parser.error(f"{args.vqvae_name} is not the VQ-VAE {args.run_dir} was trained on")
        dataset, binarize = record["dataset"], record["binarize"]
        write_json(target / VQVAE_RECORD, {**record, "path": args.vqvae_name})
    if args.evaluate or vqvae is not None:
        results = test_figures(model, vqvae, dataset, binarize, None)
        results["split"] = "test"
    else:
        results = read_json(args.run_dir / "results.json")
    first = test_figures(model, vqvae, dataset, binarize, CHECK_IMAGES)
    card = {
        "name": args.name,
        "preset": args.preset or args.name,
        "dataset": dataset,
        "binarize": binarize,
        "test_split": args.test_split or results["split"],
        "num_test_images": results["num_images"],
        "nats_per_image": results["nats_per_image"],
        "bits_per_dim": results["bits_per_dim"],
        "first_500_nats_per_image": first["nats_per_image"],
        "paper_nats_per_image": args.paper,
        "command": args.command,
        "budget": f"{args.budget}: {state['global_step']:,} steps of {training['batch_size']}, "
        f"{images_seen:,} training images ({state['epoch']} full epoch"
        f"{'' if state['epoch'] == 1 else 's'})",
        "hardware": f"{cpu_name()}, torch {torch.__version__}",
        "pixelrnn_version": pixelrnn.__version__,
        "sha256": sha256_of(target / WEIGHTS_NAME),
        "likelihood": results.get("likelihood", "exact"),
    }
    write_json(target / CARD_NAME, card)
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
