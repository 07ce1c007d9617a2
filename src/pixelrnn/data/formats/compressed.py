"""Read a file that may be gzip-compressed, telling the two apart by content, not by name."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from pixelrnn.data.errors import DataFormatError

GZIP_MAGIC = b"\x1f\x8b"


def read_maybe_gzip(path: str | Path) -> bytes:
    """All bytes of ``path``, decompressed if the file is gzip (checked by its magic bytes).

    Raises:
        FileNotFoundError: the file does not exist.
        DataFormatError: the gzip stream is truncated or corrupt.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    raw = path.read_bytes()
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DataFormatError(path, "gzip stream ends early: the file is truncated") from None
    except (OSError, zlib.error) as e:
        raise DataFormatError(path, f"corrupt gzip data ({e})") from None
