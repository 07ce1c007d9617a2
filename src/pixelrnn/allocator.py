"""Run the command line under tcmalloc when it is installed (Linux).

Training these networks allocates and frees many activation tensors of a few MB every step.
With glibc's malloc each fresh block is page-faulted in again, which on the 2-core benchmark
machine costs about a third of the step time; tcmalloc keeps the blocks mapped (see
``docs/benchmarks.md`` for the measurement). An allocator can only be swapped before the
process starts, so the ``pixelrnn`` command re-executes itself once with ``LD_PRELOAD`` set.
This is the same technique PyTorch's own CPU launcher (``torch.backends.xeon.run_cpu``) uses.

Set ``PIXELRNN_ALLOCATOR=system`` to keep the system allocator. The library itself (``import
pixelrnn``) never does this; only the console script does.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ALLOCATOR_ENV_VAR = "PIXELRNN_ALLOCATOR"
_REEXEC_MARK = "PIXELRNN_ALLOCATOR_REEXEC"
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
    """``"tcmalloc"`` when it is preloaded into this process, else ``"system"``."""
    return "tcmalloc" if "tcmalloc" in os.environ.get("LD_PRELOAD", "") else "system"


def reexec_with_tcmalloc(argv: list[str]) -> None:
    """Replace this process by ``python -m pixelrnn argv`` with tcmalloc preloaded, if possible.

    Returns without doing anything when not on Linux, when tcmalloc is missing or already
    loaded, when ``PIXELRNN_ALLOCATOR=system``, or after one re-execution.
    """
    if not sys.platform.startswith("linux") or os.environ.get(_REEXEC_MARK):
        return
    if os.environ.get(ALLOCATOR_ENV_VAR, "auto") == "system" or active_allocator() == "tcmalloc":
        return
    lib = find_tcmalloc()
    if lib is None:
        return
    env = dict(os.environ)
    env["LD_PRELOAD"] = ":".join(filter(None, [str(lib), env.get("LD_PRELOAD", "")]))
    env[_REEXEC_MARK] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "pixelrnn", *argv], env)
