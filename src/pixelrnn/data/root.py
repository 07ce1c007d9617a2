"""Where datasets live: ``--data-dir``, else ``$PIXELRNN_DATA``, else a user cache folder."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV_VAR = "PIXELRNN_DATA"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pixelrnn/data`` (``~/.cache/pixelrnn/data`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pixelrnn" / "data"


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The data root: the argument, else ``$PIXELRNN_DATA``, else :func:`default_cache_dir`."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return default_cache_dir()
