"""Grids of discrete codes (e.g. the code maps of a VQ-VAE encoder) in NumPy files: the data a
prior over codes is trained on.

* ``.npy`` — one integer array, ``(N, H, W)`` or ``(N, C, H, W)``;
* ``.npz`` — ``codes`` as above; optional ``labels`` ``(N,)`` (class labels),
  ``num_levels`` (the number of codes ``K``, a scalar), and a conditioning code map per grid:
  ``context`` ``(N, h, w)`` integers (e.g. the top level of a two-level VQ-VAE) with
  ``context_levels`` (its number of codes, a scalar; else its largest code + 1).

NumPy's own reader is used with ``allow_pickle=False``: nothing in a file runs code.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pixelrnn.data.errors import DataFormatError


@dataclass(frozen=True)
class CodeGrids:
    """The contents of a code file.

    Attributes:
        codes: int64 ``(N, C, H, W)``.
        labels: int64 ``(N,)`` or None.
        num_levels: ``K`` as the file states it, or None.
        context: int64 ``(N, h, w)`` conditioning code maps, or None.
        context_levels: their number of codes (stated, else the largest + 1), or None.
    """

    codes: np.ndarray
    labels: np.ndarray | None
    num_levels: int | None
    context: np.ndarray | None = None
    context_levels: int | None = None


def read_code_grids(path: str | Path, num_levels: int | None = None) -> CodeGrids:
    """Read and check a ``.npy`` / ``.npz`` file of code grids.

    Args:
        num_levels: ``K`` the codes must lie below (default: the file's ``num_levels``, when it
            has one); a file stating another ``K`` is refused.

    Raises:
        DataFormatError: not readable, not integers, wrong shape, or a code outside ``[0, K)``
            (the message names the grid index and the value).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    labels = stated = context = context_stated = None
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                if "codes" not in npz.files:
                    raise DataFormatError(path, f"no 'codes' array (keys: {npz.files})")
                codes = npz["codes"]
                labels = npz["labels"] if "labels" in npz.files else None
                stated = npz["num_levels"] if "num_levels" in npz.files else None
                context = npz["context"] if "context" in npz.files else None
                context_stated = npz["context_levels"] if "context_levels" in npz.files else None
        else:
            codes = np.load(path, allow_pickle=False)
    except DataFormatError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataFormatError(path, f"not a readable {path.suffix} file ({e})") from None
    if not np.issubdtype(codes.dtype, np.integer) or codes.ndim not in (3, 4):
        raise DataFormatError(
            path,
            f"codes must be integers shaped (N, H, W) or (N, C, H, W), got {codes.ndim}-D "
            f"{codes.dtype}",
        )
    if codes.ndim == 3:
        codes = codes[:, None]
    if 0 in codes.shape:
        raise DataFormatError(path, f"no codes (shape {codes.shape})")
    stated = _levels(path, "num_levels", stated)
    if num_levels is not None and stated is not None and stated != num_levels:
        raise DataFormatError(path, f"holds codes of K = {stated}, expected K = {num_levels}")
    _check_range(path, "code", codes, num_levels if num_levels is not None else stated)
    context_levels = None
    if context is not None:
        if not np.issubdtype(context.dtype, np.integer) or context.shape[:1] != codes.shape[:1]:
            raise DataFormatError(
                path,
                f"context must be integers shaped (N, h, w) with N = {len(codes)}, got "
                f"{context.dtype} {context.shape}",
            )
        if context.ndim != 3:
            raise DataFormatError(path, f"context must be (N, h, w), got {context.shape}")
        context_levels = _levels(path, "context_levels", context_stated)
        _check_range(path, "context code", context, context_levels)
        context = context.astype(np.int64)
        if context_levels is None:
            context_levels = max(2, int(context.max()) + 1)
    if labels is not None:
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataFormatError(path, f"labels must be integers, got {labels.dtype}")
        labels = labels.astype(np.int64).reshape(-1)
        if len(labels) != len(codes):
            raise DataFormatError(path, f"{len(labels)} labels for {len(codes)} grids")
        if labels.min() < 0:
            raise DataFormatError(path, f"labels must be >= 0, got {int(labels.min())}")
    return CodeGrids(codes.astype(np.int64), labels, stated, context, context_levels)


def _levels(path: Path, name: str, stated: np.ndarray | None) -> int | None:
    """A stated number of codes: one integer >= 2."""
    if stated is None:
        return None
    if stated.shape != () or not np.issubdtype(stated.dtype, np.integer) or int(stated) < 2:
        raise DataFormatError(path, f"{name} must be one integer >= 2, got {stated!r}")
    return int(stated)


def _check_range(path: Path, what: str, codes: np.ndarray, limit: int | None) -> None:
    """Refuse a code outside ``[0, limit)`` (``>= 0`` without a limit), naming where."""
    bad = codes < 0 if limit is None else (codes < 0) | (codes >= limit)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        allowed = "be >= 0" if limit is None else f"lie in [0, {limit})"
        raise DataFormatError(
            path,
            f"{what} {int(codes[index])} at grid {index[0]}, position {index[1:]}: "
            f"{what}s must {allowed}",
        )
