"""Optional compiled kernels (``csrc``), built on first use with PyTorch's extension loader.

Places where PyTorch's per-operation overhead dominated and no library has the operation: the
Diagonal BiLSTM's column loops (PixelRNN §3.2; one C++ call per pass instead of a dozen
Python-level operations per column), the Row LSTM's row loops (§3.1, ``csrc/row_scan.cpp``),
cached sampling steps (``native/csrc/*_step.cpp``: a PixelCNN, Gated PixelCNN or PixelCNN++ pixel
in one call instead of 100-150 tiny operations) and the logistic-mixture draw at a pixel
(``csrc/logistic_mixture_sample.cpp``). The measurements are in ``docs/benchmarks.md``.

This package is the ground floor: it imports nothing else of ``pixelrnn``. Each operator's
Python twin lives with the layer or sampler that calls it, and so does the operator's FLOP
formula (:func:`flop_formula`), registered here once the operators are loaded.

They are compiled the first time they are needed, by ``torch.utils.cpp_extension.load`` (a C++
compiler and ``ninja``; about 30 s, then cached in ``TORCH_EXTENSIONS_DIR`` or
``~/.cache/torch_extensions``). Where that fails, a warning says why and the equivalent Python
code runs instead.

``PIXELRNN_NATIVE``: ``auto`` (default: build, fall back with a warning), ``0`` (never build:
the Python loops), ``1`` (build, and raise if that fails — what the test suite uses, so a
broken build cannot hide behind the fallback).
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import flop_registry, register_flop_formula

NATIVE_ENV_VAR = "PIXELRNN_NATIVE"
SOURCES = sorted((Path(__file__).resolve().parent / "csrc").glob("*.cpp"))
_state: dict[str, bool] = {}
# operator name → (formula, whether it takes the raw arguments rather than their shapes)
_flop_formulas: dict[str, tuple[Callable[..., int], bool]] = {}


def native_setting() -> str:
    """``auto``, ``0`` or ``1`` from ``PIXELRNN_NATIVE`` (a clear error for anything else)."""
    value = os.environ.get(NATIVE_ENV_VAR, "auto").strip().lower()
    if value not in ("auto", "0", "1"):
        raise ValueError(f"{NATIVE_ENV_VAR} must be auto, 0 or 1, not {value!r}")
    return value


def native_available() -> bool:
    """Whether the compiled kernels are loaded (building them on the first call)."""
    setting = native_setting()
    if setting == "0":
        return False
    if "loaded" not in _state:
        _state["loaded"] = _load(required=setting == "1")
    return _state["loaded"]


def build_flags() -> tuple[str, list[str]]:
    """Extension name and compiler flags for this CPU: ATen's vector type compiles to the
    instruction set PyTorch itself reports it uses (AVX-512: 16 float32 lanes, AVX2: 8);
    otherwise to its portable scalar fallback (the same computation, slower)."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability == "AVX512":
        avx512 = ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma"]
        defines = ["-DCPU_CAPABILITY_AVX512", "-DCPU_CAPABILITY=AVX512"]
        return "pixelrnn_native_avx512", ["-O3", *avx512, *defines]
    if capability == "AVX2":
        avx2 = ["-mavx2", "-mfma", "-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=AVX2"]
        return "pixelrnn_native_avx2", ["-O3", *avx2]
    return "pixelrnn_native", ["-O3"]


def _registered() -> bool:
    """Whether the operators are registered in this process already."""
    return hasattr(torch.ops.pixelrnn, "diagonal_scan_forward")


def _built(name: str) -> bool:
    """Whether a build of ``name`` is cached (only decides whether to announce a build)."""
    try:
        from torch.utils.cpp_extension import _get_build_directory  # private: may change

        return (Path(_get_build_directory(name, verbose=False)) / f"{name}.so").exists()
    except Exception:
        return True  # unknown: say nothing


def _find_ninja() -> None:
    """Put the ``ninja`` that pip installed on ``PATH`` if it is not there (a virtual
    environment's interpreter run without activating it): the extension loader runs it."""
    if shutil.which("ninja") is None:
        try:
            import ninja

            os.environ["PATH"] = os.pathsep.join([ninja.BIN_DIR, os.environ.get("PATH", "")])
        except ImportError:
            pass  # the build reports what is missing


def _load(required: bool) -> bool:
    loaded = _build(required)
    if loaded:
        _register_flop_formulas()  # so FlopCounterMode sees the compiled operators' work
    return loaded


def flop_formula(
    op_name: str, *, raw: bool = False
) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorator: ``formula`` counts the floating-point operations of the compiled operator
    ``torch.ops.pixelrnn.<op_name>`` for ``torch.utils.flop_counter.FlopCounterMode``, which
    sees a custom operator's work only through such a formula.

    Convention of PyTorch's own formulas: 2 operations per multiply-add, element-wise work
    (gates, non-linearities, draws) not counted, so a measurement sees the same work whether a
    step ran compiled or as the equivalent PyTorch operations (tested in
    ``tests/test_native.py``). The formula gets the arguments' shapes, or the arguments
    themselves with ``raw=True``.
    """

    def record(formula: Callable[..., int]) -> Callable[..., int]:
        _flop_formulas[op_name] = (formula, raw)
        if _state.get("loaded"):
            _register_flop_formulas()
        return formula

    return record


def _register_flop_formulas() -> None:
    """Register every recorded formula whose operator has none yet (once per process)."""
    for name, (formula, raw) in _flop_formulas.items():
        op = getattr(torch.ops.pixelrnn, name)
        if op not in flop_registry:
            register_flop_formula(op, get_raw=raw)(formula)


def _build(required: bool) -> bool:
    if _registered():
        return True
    try:
        _find_ninja()
        import torch.utils.cpp_extension as cpp_extension

        name, flags = build_flags()
        if not _built(name):
            print(f"pixelrnn: compiling {name} (first use only)...", file=sys.stderr)
        cpp_extension.load(
            name=name,
            sources=[str(path) for path in SOURCES],
            extra_cflags=[*flags, "-fopenmp"],  # at::parallel_for's threads (PyTorch's OpenMP)
            extra_ldflags=["-fopenmp"],
            is_python_module=False,
            verbose=False,
        )
    except Exception as error:  # no compiler, no ninja, a failed build: all mean "fall back"
        if required:
            raise RuntimeError(
                f"building the compiled kernels failed ({NATIVE_ENV_VAR}=1): {error}"
            ) from error
        warnings.warn(
            f"pixelrnn's compiled kernels could not be built ({error}); using the slower "
            f"Python loops. Set {NATIVE_ENV_VAR}=0 to skip the attempt.",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    return True
