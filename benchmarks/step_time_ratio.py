"""Training step time of models relative to a baseline, measured interleaved.

How much slower the PixelRNNs train than the PixelCNN at equal width. On
a shared machine whose speed drifts by 20-50 % over minutes, two throughputs measured one
after the other can disagree by more than the effect being measured. This script builds all
models in one process and alternates short timing windows between them (baseline, model,
baseline, model, ...), so each ratio compares windows taken seconds apart; it reports the
median and the spread of the per-round ratios, beside each model's median step time.

RMSprop steps on random binary (or 8-bit) images of each preset's shape, batch 32, like
``train_throughput.py``; glibc's malloc is tuned as the ``pixelrnn`` command does (run under
``LD_PRELOAD=libtcmalloc_minimal.so.4`` for tcmalloc instead).

    python benchmarks/step_time_ratio.py --baseline pixelcnn-mnist \
        --models diagonal-bilstm-mnist row-lstm-mnist --rounds 15 \
        --output benchmarks/results/step_time_ratio.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import torch

from configs import build
from machine import machine_info
from pixelrnn.allocator import tune_glibc_malloc
from pixelrnn.training.cuda_graph import GraphedTrainStep


def make_step(
    name: str,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
    cuda_graph: bool = False,
) -> Callable[[], None]:
    """One optimizer step of the preset ``name`` on a fixed random batch (on a GPU: waits for
    the step to finish, so that a window times the work and not its queueing; with
    ``cuda_graph``, replays the step recorded as ``pixelrnn train --cuda-graph true`` does)."""
    torch.manual_seed(0)
    model = build(name).to(device)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-4, capturable=cuda_graph)
    x = torch.randint(0, model.num_levels, (batch_size, *model.image_shape), device=device)
    num_dims = x[0].numel()
    bf16 = precision == "bf16"

    def loss_and_update(x: torch.Tensor, _: torch.Tensor | None = None) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):
            loss = -model.log_prob(x).mean() / num_dims
        loss.backward()
        optimizer.step()
        return loss.detach()

    graphed = GraphedTrainStep(loss_and_update, model, optimizer, x, None) if cuda_graph else None

    def step() -> None:
        if graphed is not None:
            graphed(x, None)
        else:
            optimizer.zero_grad(set_to_none=True)
            loss_and_update(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return step


def window(step: Callable[[], None], steps: int) -> float:
    """Seconds per step over ``steps`` steps."""
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="pixelcnn-mnist")
    parser.add_argument("--models", nargs="+", default=["diagonal-bilstm-mnist"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=3, help="steps per timing window")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for a GPU")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument(
        "--cuda-graph", action="store_true", help="replay each step from a CUDA graph"
    )
    parser.add_argument("--output", help="write the results as JSON here")
    args = parser.parse_args()
    device = torch.device(args.device)
    tcmalloc = "tcmalloc" in os.environ.get("LD_PRELOAD", "")
    if not tcmalloc:
        tune_glibc_malloc()
    names = [args.baseline, *args.models]
    steps = {
        name: make_step(name, args.batch_size, device, args.precision, args.cuda_graph)
        for name in names
    }
    for step in steps.values():  # warm-up: allocator, caches, compiled kernels
        window(step, 3)
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            times[name].append(window(steps[name], args.steps))
    base = times[args.baseline]
    result = {
        "benchmark": "step_time_ratio",
        "baseline": args.baseline,
        "batch_size": args.batch_size,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": args.precision,
        "cuda_graph": args.cuda_graph,
        "rounds": args.rounds,
        "steps_per_window": args.steps,
        "threads": torch.get_num_threads(),
        "allocator": "tcmalloc" if tcmalloc else "glibc-tuned",
        "step_ms_median": {name: 1e3 * statistics.median(t) for name, t in times.items()},
        "ratio": {},
        "machine": machine_info(),
    }
    print(f"{args.baseline:<28} {result['step_ms_median'][args.baseline]:7.1f} ms/step")
    for name in args.models:
        ratios = sorted(m / b for m, b in zip(times[name], base, strict=True))
        quartiles = statistics.quantiles(ratios, n=4)
        result["ratio"][name] = {
            "median": statistics.median(ratios),
            "quartiles": [quartiles[0], quartiles[2]],
            "min": ratios[0],
            "max": ratios[-1],
        }
        print(
            f"{name:<28} {result['step_ms_median'][name]:7.1f} ms/step   "
            f"{statistics.median(ratios):.2f}x the baseline "
            f"(quartiles {quartiles[0]:.2f}-{quartiles[2]:.2f}, {args.rounds} rounds)"
        )
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
