"""Lossless compression: exact round trips for every family and output distribution, encoder
and decoder on bit-identical probabilities, code lengths at the model's NLL, and a clear error
for every kind of bad file."""

from __future__ import annotations

import json
import math
import struct
import zlib

import numpy as np
import pytest
import torch

import pixelrnn
from pixelrnn.compression import CompressedFile, CompressedFileError, compress, decompress
from pixelrnn.compression import coder as coder_module
from pixelrnn.compression.container import FORMAT_VERSION
from pixelrnn.models import conditional_models, model_fingerprint
from tests.helpers import random_images, random_labels, tiny_model

# (channels, levels, distribution): binary, K-way categorical, and the logistic mixture
OUTPUTS = [(1, 2, "auto"), (3, 4, "auto"), (1, 256, "auto"), (3, 256, "logistic_mixture:3")]
# the families whose likelihood is exact (a latent model needs bits-back coding)
FAMILIES = [
    n for n in pixelrnn.available_models() if pixelrnn.models.MODELS[n].likelihood_kind == "exact"
]


def _model(name: str, channels: int, levels: int, distribution: str, **extra: object):
    if name == "pixelcnnpp":  # PixelCNN++ has the mixture only
        extra["distribution"] = "logistic_mixture:3"
    elif distribution != "auto":
        extra["distribution"] = distribution
    return tiny_model(channels, levels, size=5, model=name, **extra).eval()


def _hard_cases(model: pixelrnn.AutoregressiveModel, n: int = 5) -> torch.Tensor:
    """Noise, with an all-zero and an all-maximum image first."""
    x = random_images(model, n, seed=7)
    x[0], x[1] = 0, model.num_levels - 1
    return x


def _cases() -> list[tuple[str, int, int, str]]:
    cases = []
    for name in FAMILIES:
        for channels, levels, distribution in OUTPUTS:
            mixture = distribution.startswith("logistic")
            if name == "pixelcnnpp" and not mixture and levels == 4:
                continue  # PixelCNN++ codes its own mixture: one 8-bit case per channel count
            if name != "pixelcnnpp" and mixture and name != "pixelcnn":
                continue  # the mixture on a plain family once (PixelCNN), the rest on its own
            cases.append((name, channels, levels, distribution))
    return cases


@pytest.mark.parametrize(("name", "channels", "levels", "distribution"), _cases())
def test_round_trip_is_exact(name: str, channels: int, levels: int, distribution: str) -> None:
    model = _model(name, channels, levels, distribution)
    x = _hard_cases(model)
    data = compress(model, x, batch_size=2)  # 3 streams, the last one short
    assert torch.equal(decompress(model, data), x)


@pytest.mark.parametrize("name", conditional_models())
def test_class_conditional_round_trip_codes_the_labels(name: str) -> None:
    model = _model(name, 1, 2, "auto", num_classes=3)
    x, y = _hard_cases(model, 4), random_labels(model, 4, seed=1)
    data = compress(model, x, y, batch_size=3)
    result = pixelrnn.compression.decode_file(model, CompressedFile.from_bytes(data))
    assert torch.equal(result.images, x) and torch.equal(result.labels, y)
    with pytest.raises(ValueError, match="class-conditional"):
        compress(model, x)


def test_real_images_round_trip(data_dir) -> None:
    """Binarized MNIST digits and CIFAR-10 photographs, with small random models."""
    from pixelrnn.data import load_dataset

    digits = load_dataset("binarized-mnist", "test", data_dir).batch(slice(0, 6))
    model = tiny_model(1, 2, size=28, model="gated_pixelcnn").eval()
    assert torch.equal(decompress(model, compress(model, digits, batch_size=4)), digits)
    photos = load_dataset("cifar10", "test", data_dir).batch(slice(0, 2))
    model = tiny_model(
        3, 256, size=32, model="pixelcnnpp", distribution="logistic_mixture:2"
    ).eval()
    assert torch.equal(decompress(model, compress(model, photos)), photos)


def _recorded_tables(monkeypatch, model, x) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every probability table the encoder and then the decoder handed the coder."""
    seen: dict[str, list[np.ndarray]] = {"StepEncoder": [], "StepDecoder": []}
    table = coder_module._StepCoder.table

    def recording(self, params, channel, earlier):
        out = table(self, params, channel, earlier)
        seen[type(self).__name__].append(out.copy())
        return out

    monkeypatch.setattr(coder_module._StepCoder, "table", recording)
    assert torch.equal(decompress(model, compress(model, x, batch_size=3)), x)
    return seen["StepEncoder"], seen["StepDecoder"]


@pytest.mark.parametrize("name", ["diagonal_bilstm", "pixelcnnpp", "multiscale"])
def test_encoder_and_decoder_see_identical_probabilities(monkeypatch, name: str) -> None:
    model = _model(name, 3, 256, "auto")
    encoded, decoded = _recorded_tables(monkeypatch, model, _hard_cases(model, 3))
    c, h, w = model.image_shape
    assert len(encoded) == len(decoded) == c * h * w  # one table per sub-pixel
    for a, b in zip(encoded, decoded, strict=True):
        assert a.dtype == np.float64 and np.array_equal(a, b)


def test_a_decoder_with_other_probabilities_is_caught(monkeypatch) -> None:
    """The per-stream CRC turns a decoder that computes other probabilities (another machine
    setup) into an error, never into wrong images."""
    model = _model("pixelcnn", 1, 256, "auto")
    x = _hard_cases(model, 3)
    data = compress(model, x)
    table = coder_module._StepCoder.table

    def skewed(self, params, channel, earlier):
        out = table(self, params, channel, earlier)
        out[:, 0] += 0.5  # a decoder whose arithmetic differs
        return out

    monkeypatch.setattr(coder_module._StepCoder, "table", skewed)
    with pytest.raises(CompressedFileError, match=r"stream 0 .*(other images|does not decode)"):
        decompress(model, data)


@pytest.mark.parametrize(("channels", "levels", "distribution"), OUTPUTS)
def test_level_probabilities_are_the_models_conditionals(
    channels: int, levels: int, distribution: str
) -> None:
    """The product of the per-sub-pixel tables is exp(log_prob) of the image (the logistic
    mixture's exact bin masses against log_prob's official numerics, which run in float32:
    within 1e-5 nats per sub-pixel)."""
    name = "pixelcnnpp" if distribution.startswith("logistic") else "pixelcnn"
    model = _model(name, channels, levels, distribution).double()
    x = random_images(model, 4, seed=3)
    with torch.no_grad():
        params = model(x)  # (B, P, H, W)
        expected = model.log_prob(x).double()
    total = torch.zeros(len(x), dtype=torch.float64)
    _, h, w = model.image_shape
    for i in range(h):
        for j in range(w):
            for ch in range(channels):
                table = model.distribution.level_probabilities(
                    params[:, :, i, j], ch, x[:, :ch, i, j]
                )
                assert torch.allclose(table.sum(1), torch.ones(len(x), dtype=torch.float64))
                total += table.gather(1, x[:, ch, i, j, None]).log()[:, 0]
    assert torch.allclose(total, expected, atol=1e-5 * channels * h * w, rtol=0)


def test_code_length_is_the_models_nll() -> None:
    """The payload is within 1 % of the model's NLL plus 64 bits per stream (the range coder's
    end); the rest of the file is a fixed header."""
    model = _model("gated_pixelcnn", 1, 256, "auto")
    x = random_images(model, 64, seed=5) // 32 * 32  # structured enough for a skewed model
    data = compress(model, x, batch_size=32)
    payload_bits = 8 * sum(len(s.words) for s in CompressedFile.from_bytes(data).streams)
    with torch.no_grad():
        nll_bits = -model.log_prob(x).double().sum().item() / math.log(2)
    assert nll_bits <= payload_bits <= 1.01 * nll_bits + 64 * 2


def test_threads_are_recorded_and_restored() -> None:
    model = _model("row_lstm", 1, 2, "auto")
    x = _hard_cases(model, 3)
    before = torch.get_num_threads()
    data = compress(model, x, threads=1)
    assert torch.get_num_threads() == before
    assert CompressedFile.from_bytes(data).environment["threads"] == 1
    assert torch.equal(decompress(model, data), x)
    assert torch.get_num_threads() == before


# --- bad files ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coded() -> tuple[pixelrnn.AutoregressiveModel, bytes]:
    model = _model("pixelcnn", 1, 2, "auto")
    return model, compress(model, _hard_cases(model, 4), model_reference="tiny")


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def test_corrupted_byte(coded) -> None:
    model, data = coded
    damaged = bytearray(data)
    damaged[-8] ^= 0x10  # a bit of the last stream
    with pytest.raises(CompressedFileError, match="corrupted: its checksum"):
        decompress(model, bytes(damaged))


@pytest.mark.parametrize("keep", [3, 20, 60, -5])
def test_truncated(coded, keep: int) -> None:
    model, data = coded
    with pytest.raises(CompressedFileError, match=r"truncated|not a pixelrnn"):
        decompress(model, data[:keep])


def test_trailing_bytes(coded) -> None:
    model, data = coded
    with pytest.raises(CompressedFileError, match="bytes after its end"):
        decompress(model, data + b"\0\0")


def test_not_a_compressed_file(coded) -> None:
    model, _ = coded
    with pytest.raises(CompressedFileError, match="not a pixelrnn compressed file"):
        decompress(model, b"\x89PNG\r\n\x1a\n" + bytes(40))


def test_other_format_version(coded) -> None:
    model, data = coded
    newer = data[:4] + struct.pack("<H", FORMAT_VERSION + 1) + data[6:-4]
    with pytest.raises(CompressedFileError, match=f"format version {FORMAT_VERSION + 1}"):
        decompress(model, _with_crc(newer))


def test_other_model(coded) -> None:
    model, data = coded
    other = tiny_model(1, 2, size=5, seed=9)
    assert model_fingerprint(other) != model_fingerprint(model)
    with pytest.raises(CompressedFileError, match=r"another model \(tiny\)"):
        decompress(other.eval(), data)


def test_other_device_is_refused_before_decoding(coded) -> None:
    model, data = coded
    parsed = CompressedFile.from_bytes(data)
    parsed.environment = {**parsed.environment, "device": "cuda"}
    with pytest.raises(CompressedFileError, match="coded on cuda; decode it there"):
        pixelrnn.compression.decode_file(model, parsed)


def test_bad_inputs_are_refused() -> None:
    model = _model("pixelcnn", 1, 2, "auto")
    with pytest.raises(ValueError, match="no images"):
        compress(model, torch.zeros(0, 1, 5, 5, dtype=torch.long))
    with pytest.raises(ValueError):
        compress(model, torch.full((1, 1, 5, 5), 2))  # a level the model does not have
    with pytest.raises(ValueError, match="batch_size"):
        compress(model, torch.zeros(1, 1, 5, 5, dtype=torch.long), batch_size=0)


def test_header_is_plain_json_and_names_round_trip(coded) -> None:
    model, _ = coded
    x = _hard_cases(model, 2)
    parsed = CompressedFile.from_bytes(compress(model, x, names=["a.png", "b.png"]))
    assert parsed.names == ["a.png", "b.png"] and parsed.num_images == 2
    assert json.loads(json.dumps(parsed.environment))["torch"] == torch.__version__
