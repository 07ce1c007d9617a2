"""What every benchmark JSON records about the machine and the software."""

from __future__ import annotations

import os
import platform
import resource
import time
from typing import Any

import torch

import pixelrnn
from pixelrnn.allocator import active_allocator


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "pixelrnn": pixelrnn.__version__,
        "python": platform.python_version(),
        "allocator": active_allocator(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Dense float32 matrix-product throughput of this process's threads, GFLOP/s: the compute
    ceiling against which the other figures are compared."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(2):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return repeats * 2 * size**3 / (time.perf_counter() - start) / 1e9
