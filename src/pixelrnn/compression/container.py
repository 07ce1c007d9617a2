"""The ``.prnn`` file: a header that names the model and the images, then the coded streams.

Layout, little-endian, format version 1::

    magic "PRNN" · format version u16 · flags u16 (1: labels coded, 2: file names stored)
    model fingerprint: 32 bytes (SHA-256 of config and weights, models.model_fingerprint)
    C, H, W, K: u16 each · image count N: u32 · images per stream (batch) B: u32
    environment: u16 length + UTF-8 JSON (torch version, device, CPU capability, dtype,
        threads: what must match for the decoder to compute the encoder's probabilities)
    model reference: u16 length + UTF-8 (the name or path the file was made with)
    file names (flag 2): u32 length + zlib-compressed UTF-8, one name per line
    stream table: ceil(N / B) × (byte length u32, CRC-32 of the stream's decoded images u32)
    streams: the range coder's 32-bit words, one stream per batch of B images
    CRC-32 of every byte before it: u32

One stream per batch rather than per image: closing a range-coder stream costs up to 64 bits,
which would add about half again to a binarized MNIST digit (≈ 119 bits). The per-stream CRC
of the decoded images detects a decoder that computed other probabilities than the encoder
(another machine or library version), the final CRC a damaged file.

Every way a file can be wrong is a :class:`CompressedFileError` naming the problem.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field

MAGIC = b"PRNN"
FORMAT_VERSION = 1
FLAG_LABELS = 1
FLAG_NAMES = 2
FINGERPRINT_BYTES = 32
_FIXED = struct.Struct("<4sHH32sHHHHII")  # magic .. images per stream
_STREAM = struct.Struct("<II")  # byte length, CRC-32 of the decoded images
_CRC = struct.Struct("<I")


class CompressedFileError(ValueError):
    """A compressed file that cannot be decoded as it is: damaged, truncated, of another format
    version, or made with another model."""


@dataclass
class StreamEntry:
    """One batch's coded stream and the CRC-32 of its images (uint8 ``(B, C, H, W)`` bytes)."""

    words: bytes
    image_crc: int


@dataclass
class CompressedFile:
    """Everything a ``.prnn`` file holds (the module docstring)."""

    fingerprint: bytes
    image_shape: tuple[int, int, int]
    num_levels: int
    num_images: int
    batch_size: int
    environment: dict[str, object]
    model_reference: str
    streams: list[StreamEntry]
    labels_coded: bool = False
    names: list[str] | None = field(default=None)

    def to_bytes(self) -> bytes:
        """The file's bytes, final CRC included."""
        if len(self.fingerprint) != FINGERPRINT_BYTES:
            raise ValueError(f"a fingerprint has {FINGERPRINT_BYTES} bytes")
        flags = (FLAG_LABELS if self.labels_coded else 0) | (FLAG_NAMES if self.names else 0)
        c, h, w = self.image_shape
        parts = [
            _FIXED.pack(
                MAGIC,
                FORMAT_VERSION,
                flags,
                self.fingerprint,
                c,
                h,
                w,
                self.num_levels,
                self.num_images,
                self.batch_size,
            ),
            _short_text(json.dumps(self.environment, sort_keys=True)),
            _short_text(self.model_reference),
        ]
        if self.names:
            names = zlib.compress("\n".join(self.names).encode(), 9)
            parts.append(struct.pack("<I", len(names)) + names)
        parts += [_STREAM.pack(len(s.words), s.image_crc) for s in self.streams]
        parts += [s.words for s in self.streams]
        body = b"".join(parts)
        return body + _CRC.pack(zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "the compressed data") -> CompressedFile:
        """Parse and check a file: magic, version, sizes, then the final CRC."""
        reader = _Reader(data, source)
        magic = data[:4]
        if magic != MAGIC:
            raise CompressedFileError(
                f"{source} is not a pixelrnn compressed file (it starts with {magic!r}, "
                f"not {MAGIC!r})"
            )
        if len(data) >= 6:
            (version,) = struct.unpack_from("<H", data, 4)
            if version != FORMAT_VERSION:
                raise CompressedFileError(
                    f"{source} has format version {version}; this pixelrnn reads version "
                    f"{FORMAT_VERSION} (decompress it with the pixelrnn release that made it)"
                )
        fixed = reader.take(_FIXED.size, "header")
        _, _, flags, fingerprint, c, h, w, k, n, batch = _FIXED.unpack(fixed)
        if flags & ~(FLAG_LABELS | FLAG_NAMES):
            raise CompressedFileError(f"{source}: unknown header flags {flags:#x} (damaged?)")
        if min(c, h, w) < 1 or k < 2 or batch < 1:
            raise CompressedFileError(
                f"{source}: impossible header (image {c}x{h}x{w}, {k} levels, {batch} images "
                "per stream): the file is damaged"
            )
        environment_text = reader.short_text("environment")
        try:
            environment = json.loads(environment_text)
        except json.JSONDecodeError:
            raise CompressedFileError(f"{source}: damaged header (environment)") from None
        reference = reader.short_text("model reference")
        names = None
        if flags & FLAG_NAMES:
            (size,) = struct.unpack("<I", reader.take(4, "file names"))
            try:
                names = zlib.decompress(reader.take(size, "file names")).decode().split("\n")
            except (zlib.error, UnicodeDecodeError):
                raise CompressedFileError(f"{source}: damaged file names") from None
            if len(names) != n:
                raise CompressedFileError(f"{source}: {len(names)} file names for {n} images")
        num_streams = -(-n // batch)
        table = [
            _STREAM.unpack(reader.take(_STREAM.size, "stream table")) for _ in range(num_streams)
        ]
        streams = [StreamEntry(reader.take(size, "streams"), crc) for size, crc in table]
        reader.take(_CRC.size, "checksum")
        if reader.offset != len(data):
            raise CompressedFileError(
                f"{source} has {len(data) - reader.offset} bytes after its end: the file is "
                "damaged or two files were joined"
            )
        (stored,) = _CRC.unpack(data[-_CRC.size :])
        if zlib.crc32(data[: -_CRC.size]) != stored:
            raise CompressedFileError(
                f"{source} is corrupted: its checksum does not match its contents"
            )
        return cls(
            fingerprint=fingerprint,
            image_shape=(c, h, w),
            num_levels=k,
            num_images=n,
            batch_size=batch,
            environment=environment,
            model_reference=reference,
            streams=streams,
            labels_coded=bool(flags & FLAG_LABELS),
            names=names,
        )


def _short_text(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > 0xFFFF:
        raise ValueError(f"a header text has at most 65535 bytes, got {len(raw)}")
    return struct.pack("<H", len(raw)) + raw


class _Reader:
    """Sequential reads that name what is missing when the data ends early."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data, self.source, self.offset = data, source, 0

    def take(self, size: int, what: str) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            raise CompressedFileError(
                f"{self.source} is truncated: it ends after {len(self.data)} bytes, in its {what}"
            )
        chunk, self.offset = self.data[self.offset : end], end
        return chunk

    def short_text(self, what: str) -> str:
        (size,) = struct.unpack("<H", self.take(2, what))
        try:
            return self.take(size, what).decode()
        except UnicodeDecodeError:
            raise CompressedFileError(f"{self.source}: damaged header ({what})") from None
