"""Run the command line under tcmalloc when it is installed (Linux).

Training these networks allocates and frees many activation tensors of a few MB every step.
With glibc's malloc each fresh block is page-faulted in again, which on the 2-core benchmark
machine costs about a third of the step time; tcmalloc keeps the blocks mapped (see
``docs/benchmarks.md`` for the measurement). An allocator can only be swapped before the
process starts, so the ``pixelrnn`` command re-executes itself once with ``LD_PRELOAD`` set.
This is the same technique PyTorch's own CPU launcher (``torch.backends.xeon.run_cpu``) uses.

Without tcmalloc, the command tunes glibc's malloc instead (:func:`tune_glibc_malloc`: freed
blocks of up to 32 MiB stay in the heap), which measured as fast as tcmalloc for a small
PixelCNN++ (62 vs 62 images/s on one thread; 45 untuned).

Set ``PIXELRNN_ALLOCATOR=system`` to keep the system allocator untouched. ``import pixelrnn``
never does any of this; the console script does, and so does a :class:`pixelrnn.Trainer` (the
glibc tuning only, :func:`tune_for_training`), since training is what allocates this way.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

ALLOCATOR_ENV_VAR = "PIXELRNN_ALLOCATOR"
_REEXEC_MARK = "PIXELRNN_ALLOCATOR_REEXEC"
_tuned = False
# glibc's mallopt parameters (malloc.h) and the largest mmap threshold it accepts on 64-bit
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024
TCMALLOC_NAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")


def find_tcmalloc() -> Path | None:
    """Path of an installed tcmalloc shared library, or None."""
    for folder in LIBRARY_DIRS:
        for name in TCMALLOC_NAMES:
            candidate = Path(folder) / name
            if candidate.is_file():
                return candidate
    return None


def active_allocator() -> str:
    """``"tcmalloc"`` when it is preloaded into this process, ``"glibc-tuned"`` after
    :func:`tune_glibc_malloc`, else ``"system"``."""
    if "tcmalloc" in os.environ.get("LD_PRELOAD", ""):
        return "tcmalloc"
    return "glibc-tuned" if _tuned else "system"


def tune_glibc_malloc() -> bool:
    """Make glibc keep freed blocks of up to 32 MiB in the heap (``mallopt``: mmap threshold
    32 MiB, trim threshold 1 GiB), so the activations freed each training step are reused
    instead of being unmapped and page-faulted in again. Process-wide; returns whether it took.

    Written with ``ctypes`` because no maintained package exposes ``mallopt``.
    """
    global _tuned
    if not sys.platform.startswith("linux") or "tcmalloc" in os.environ.get("LD_PRELOAD", ""):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    mmap_ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) == 1
    trim_ok = libc.mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1
    _tuned = mmap_ok and trim_ok
    return _tuned


def tune_for_training() -> bool:
    """:func:`tune_glibc_malloc` unless ``PIXELRNN_ALLOCATOR=system`` (a no-op under tcmalloc)."""
    if os.environ.get(ALLOCATOR_ENV_VAR, "auto") == "system":
        return False
    return tune_glibc_malloc()


def reexec_with_tcmalloc(argv: list[str]) -> None:
    """Replace this process by ``python -m pixelrnn argv`` with tcmalloc preloaded, if possible.

    Returns without doing anything when not on Linux, when tcmalloc is already loaded, when
    ``PIXELRNN_ALLOCATOR=system``, or after one re-execution; when tcmalloc is missing it tunes
    glibc's malloc instead and returns.
    """
    if not sys.platform.startswith("linux") or os.environ.get(_REEXEC_MARK):
        return
    if os.environ.get(ALLOCATOR_ENV_VAR, "auto") == "system" or active_allocator() == "tcmalloc":
        return
    lib = find_tcmalloc()
    if lib is None:
        tune_glibc_malloc()
        return
    env = dict(os.environ)
    env["LD_PRELOAD"] = ":".join(filter(None, [str(lib), env.get("LD_PRELOAD", "")]))
    env[_REEXEC_MARK] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "pixelrnn", *argv], env)
