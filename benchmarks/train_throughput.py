"""Training throughput (images/s) and peak memory of presets on this machine.

Each configuration runs in a fresh subprocess (so its peak memory is its own): a few warm-up
steps, then ``--repeats`` timed windows of ``--steps`` optimizer steps (RMSProp, batch
``--batch-size``, random binary or 8-bit images of the preset's shape); the median window is
reported. Also: evaluation images/s (forward passes without gradients, same batch), the
floating-point work of one training step (``FlopCounterMode``) and the rate it is done at,
beside the process's dense matmul rate (``machine.matmul_gflops``): how close to the hardware
each model trains. ``--reference`` adds the conventional implementation in
``reference_pixelcnn.py``.

Besides presets, ``--preset`` takes the names in ``configs.SAME_SIZE``: the library's Gated PixelCNN
built at the size of the conventional one in ``reference_gated_pixelcnn.py``
(``gated-5x64-class``), and that conventional one (``reference-gated-5x64-class``); and the
small PixelCNN++ ``pixelcnnpp-1x32-mix5`` (1 layer per resolution, 32 filters,
5 logistics, 1x28x28).

    python benchmarks/train_throughput.py --preset pixelcnn-mnist --reference \
        --output benchmarks/results/train_throughput.json
    python benchmarks/train_throughput.py --preset gated-5x64-class reference-gated-5x64-class
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from configs import build
from pixelrnn.allocator import find_tcmalloc, tune_glibc_malloc

HERE = Path(__file__).resolve().parent
TUNE_ENV = "BENCHMARK_TUNE_GLIBC"  # tells a child process to tune glibc's malloc first


def measure(
    preset: str, batch_size: int, steps: int, warmup: int, repeats: int, precision: str
) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from machine import machine_info, matmul_gflops, peak_rss_mib

    if os.environ.get(TUNE_ENV):
        tune_glibc_malloc()  # what the `pixelrnn` command does where tcmalloc is missing
    torch.manual_seed(0)
    rss_before = peak_rss_mib()
    sys.path.insert(0, str(HERE))
    num_classes = None
    if preset == "reference":
        from reference_pixelcnn import ReferencePixelCNN

        model = ReferencePixelCNN()
        shape, levels = (1, 28, 28), 2
    elif preset == "reference-gated-5x64-class":
        from reference_gated_pixelcnn import ReferenceGatedPixelCNN

        model = ReferenceGatedPixelCNN()
        shape, levels, num_classes = (1, 28, 28), 256, 10
    else:
        model = build(preset)
        shape, levels, num_classes = model.image_shape, model.num_levels, model.num_classes
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, levels, (batch_size, *shape), generator=g)
    y = None if num_classes is None else torch.randint(0, num_classes, (batch_size,), generator=g)
    num_dims = shape[0] * shape[1] * shape[2]

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            lp = model.log_prob(x) if y is None else model.log_prob(x, y=y)
        loss = -lp.mean() / num_dims
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def evaluate() -> None:
        model.log_prob(x) if y is None else model.log_prob(x, y=y)

    for _ in range(warmup):
        step()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps * batch_size / (time.perf_counter() - start))
    peak_rss = peak_rss_mib()  # of training; the measurements below allocate little
    # (the steps above loaded any compiled kernels, so the counter has their formulas)
    with FlopCounterMode(display=False) as counter:
        step()
    step_gflop = counter.get_total_flops() / 1e9
    evaluate()
    eval_rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            evaluate()
        eval_rates.append(steps * batch_size / (time.perf_counter() - start))
    rate = statistics.median(rates)
    return {
        "benchmark": "train_throughput",
        "preset": preset,
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch_size": batch_size,
        "precision": precision,
        "steps_per_window": steps,
        "images_per_second_median": rate,
        "images_per_second_windows": rates,
        "eval_images_per_second_median": statistics.median(eval_rates),
        "gflop_per_step": step_gflop,
        "achieved_gflops": step_gflop * rate / batch_size,
        "matmul_gflops": matmul_gflops(),
        "peak_rss_mib": peak_rss,
        "peak_rss_mib_before_model": rss_before,
        "machine": machine_info(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", nargs="+", default=["pixelcnn-mnist"])
    parser.add_argument("--reference", action="store_true", help="also time reference_pixelcnn")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--allocator",
        choices=("system", "tcmalloc", "glibc-tuned", "both", "all"),
        default="both",
        help="malloc for the measured process: tcmalloc is what the `pixelrnn` command uses, "
        "glibc-tuned what it uses without tcmalloc; both = system + tcmalloc; all = the three",
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "both"),
        default="fp32",
        help="bf16: forward passes under bfloat16 autocast, as `pixelrnn train --precision bf16`",
    )
    parser.add_argument("--output", help="write the results as JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        r = measure(
            args.child, args.batch_size, args.steps, args.warmup, args.repeats, args.precision
        )
        print(json.dumps(r))
        return
    tcmalloc = find_tcmalloc()
    allocators = {
        "both": ["system", "tcmalloc"],
        "all": ["system", "glibc-tuned", "tcmalloc"],
    }.get(args.allocator, [args.allocator])
    if tcmalloc is None and "tcmalloc" in allocators:
        print("tcmalloc is not installed (apt install libtcmalloc-minimal4): left out")
        allocators.remove("tcmalloc")
    results = []
    for allocator in allocators:
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        if allocator == "tcmalloc":
            env["LD_PRELOAD"] = str(tcmalloc)
        env[TUNE_ENV] = "1" if allocator == "glibc-tuned" else ""
        precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]
        for preset in [*args.preset, *(["reference"] if args.reference else [])]:
            for precision in precisions if not preset.startswith("reference") else ["fp32"]:
                cmd = [sys.executable, __file__, "--child", preset, "--precision", precision]
                cmd += ["--batch-size", str(args.batch_size), "--steps", str(args.steps)]
                cmd += ["--warmup", str(args.warmup), "--repeats", str(args.repeats)]
                run = subprocess.run(
                    cmd, check=True, capture_output=True, text=True, cwd=HERE, env=env
                )
                r = json.loads(run.stdout.strip().splitlines()[-1])
                results.append(r)
                print(
                    f"{preset:28s} {precision} {r['images_per_second_median']:8.1f} img/s  "
                    f"eval {r['eval_images_per_second_median']:8.1f} img/s  "
                    f"{r['achieved_gflops']:6.1f} of {r['matmul_gflops']:.0f} GFLOP/s  "
                    f"peak {r['peak_rss_mib']:.0f} MiB  [{r['machine']['allocator']}]"
                )
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
