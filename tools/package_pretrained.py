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
from pixelrnn.models.pretrained import (
    CARD_NAME,
    CHECK_BATCH,
    CHECK_IMAGES,
    PRETRAINED_DIR,
    sha256_of,
)
from pixelrnn.training import evaluate_nll, make_generator


def first_images_nll(
    model: pixelrnn.AutoregressiveModel, dataset: str, binarize: str | None
) -> float:
    """Test NLL (nats per image) of the first ``CHECK_IMAGES`` test images, float64 sums."""
    data = load_dataset(dataset, "test", binarize=binarize)  # type: ignore[arg-type]
    result = evaluate_nll(
        model,
        data,
        CHECK_BATCH,
        generator=make_generator(0, "eval", "test"),
        max_images=CHECK_IMAGES,
    )
    return result.nats_per_image


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
    args = parser.parse_args()

    folder = find_pretrained_dir(args.run_dir)
    config = read_json(folder / CONFIG_NAME)
    training = config["training"]
    results = read_json(args.run_dir / "results.json")
    state = read_json(args.run_dir / "last" / "trainer_state.json")
    images_seen = state["global_step"] * training["batch_size"]
    target = PRETRAINED_DIR / args.name
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / WEIGHTS_NAME, target / WEIGHTS_NAME)
    write_json(target / CONFIG_NAME, config)
    torch.set_num_threads(1)
    model = load_pretrained(target)
    card = {
        "name": args.name,
        "preset": args.preset or args.name,
        "dataset": training["dataset"],
        "binarize": training.get("binarize"),
        "test_split": args.test_split or results["split"],
        "num_test_images": results["num_images"],
        "nats_per_image": results["nats_per_image"],
        "bits_per_dim": results["bits_per_dim"],
        "first_500_nats_per_image": first_images_nll(
            model, training["dataset"], training.get("binarize")
        ),
        "paper_nats_per_image": args.paper,
        "command": args.command,
        "budget": f"{args.budget}: {state['global_step']:,} steps of {training['batch_size']}, "
        f"{images_seen:,} training images ({state['epoch']} full epoch"
        f"{'' if state['epoch'] == 1 else 's'})",
        "hardware": f"{cpu_name()}, torch {torch.__version__}",
        "pixelrnn_version": pixelrnn.__version__,
        "sha256": sha256_of(target / WEIGHTS_NAME),
    }
    write_json(target / CARD_NAME, card)
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
