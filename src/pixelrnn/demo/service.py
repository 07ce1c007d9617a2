"""What the demo page asks of the library: its models, samples, completions and scores, with
the limits a shared page needs. No web code here (that is :mod:`pixelrnn.demo.app`).

Every request names a model; models load on first use and stay loaded. One request runs per
model at a time (:meth:`DemoModels.lock`); the others wait their turn. A request beyond the
limits, an upload that is not an image, is too large or has another size, gets a
:class:`DemoError` whose message the page shows as it is.
"""

from __future__ import annotations

import base64
import io
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixelrnn.data import ImageDataset, load_dataset
from pixelrnn.files import read_json
from pixelrnn.images import ImageBytes, image_grid, read_image, to_uint8
from pixelrnn.models import (
    CONFIG_NAME,
    AutoregressiveModel,
    find_pretrained_dir,
    load_pretrained,
)
from pixelrnn.models.pretrained import available_pretrained, pretrained_card
from pixelrnn.sampling import OCCLUSIONS, GenerationRequest, generate, occlusion_mask
from pixelrnn.units import bits_per_dim

MAX_SAMPLES = 64  # images per sample request
MAX_COMPLETIONS = 8  # completions per complete request
MAX_UPLOAD_BYTES = 2_000_000
MAX_TEMPERATURE = 5.0


class DemoError(ValueError):
    """A request the demo refuses; the message is written for the page."""


@dataclass(frozen=True)
class ModelChoice:
    """A model the page offers: its name in the picker and where it loads from."""

    name: str
    source: str  # a pretrained name or a folder
    description: str


class DemoModels:
    """The models of the picker: the pretrained ones and the run directories given.

    Args:
        sources: run directories or saved-model folders (or pretrained names) to offer first.
        device: where the models run.
        data_dir: the data root for test images (None: ``$PIXELRNN_DATA`` or the cache).
    """

    def __init__(
        self, sources: list[str], device: torch.device, data_dir: str | None = None
    ) -> None:
        self.device, self.data_dir = device, data_dir
        choices: dict[str, ModelChoice] = {}
        for source in [*sources, *available_pretrained()]:
            if not Path(source).exists() and source in available_pretrained():
                card = pretrained_card(source)
                about = (
                    f"pretrained on {card.dataset}: test NLL {card.nats_per_image:.2f} nats, "
                    f"{card.bits_per_dim:.3f} bits/dim"
                )
                choices.setdefault(source, ModelChoice(source, source, about))
            else:
                folder = find_pretrained_dir(source)  # refuses what does not exist, by name
                name = Path(source).resolve().name
                choices.setdefault(name, ModelChoice(name, source, f"local: {folder}"))
        self.choices = choices
        self._models: dict[str, AutoregressiveModel] = {}
        self._locks: dict[str, threading.Lock] = {name: threading.Lock() for name in choices}
        self._test_sets: dict[str, ImageDataset] = {}
        self._loading = threading.Lock()

    def get(self, name: str) -> AutoregressiveModel:
        """The model called ``name``, loaded once."""
        if name not in self.choices:
            raise DemoError(f"no model called {name!r}; choose one of {sorted(self.choices)}")
        with self._loading:
            if name not in self._models:
                folder = find_pretrained_dir(self.choices[name].source)
                self._models[name] = load_pretrained(folder, map_location=self.device).eval()
            return self._models[name]

    def lock(self, name: str) -> threading.Lock:
        """Held while a request runs the model ``name``: one at a time per model."""
        self.get(name)
        return self._locks[name]

    def describe(self, name: str) -> dict[str, object]:
        """What the page needs to know to build its controls for a model."""
        model = self.get(name)
        c, h, w = model.image_shape
        return {
            "name": name,
            "description": self.choices[name].description,
            "channels": c,
            "height": h,
            "width": w,
            "num_levels": model.num_levels,
            "num_classes": model.num_classes,
            "has_test_images": self._dataset_name(name) is not None,
        }

    def _dataset_name(self, name: str) -> tuple[str, str | None] | None:
        folder = find_pretrained_dir(self.choices[name].source)
        config = read_json(folder / CONFIG_NAME) if (folder / CONFIG_NAME).is_file() else {}
        training = config.get("training") or {}
        if "dataset" in training:
            return training["dataset"], training.get("binarize")
        if self.choices[name].source in available_pretrained():
            card = pretrained_card(self.choices[name].source)
            return card.dataset, card.binarize
        return None

    def test_image(self, name: str, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Image ``index`` of the model's test split ``(C, H, W)`` and its label."""
        found = self._dataset_name(name)
        if found is None:
            raise DemoError(f"{name} does not say which data set it was trained on")
        if name not in self._test_sets:
            dataset, binarize = found
            try:
                self._test_sets[name] = load_dataset(
                    dataset, "test", self.data_dir, binarize=binarize
                )
            except (OSError, ValueError) as e:
                message = f"the test images of {dataset} are not available here ({e})"
                raise DemoError(message) from None
        data = self._test_sets[name]
        if not 0 <= index < len(data):
            raise DemoError(f"test image index must lie in 0..{len(data) - 1}, got {index}")
        label = None if data.labels is None else data.labels_at(slice(index, index + 1))[0]
        return data.batch(slice(index, index + 1))[0], label


def read_upload(model: AutoregressiveModel, data: bytes) -> torch.Tensor:
    """An uploaded image file as the model's levels ``(C, H, W)``, or a :class:`DemoError`."""
    if not data:
        raise DemoError("the upload is empty: choose an image file")
    if len(data) > MAX_UPLOAD_BYTES:
        raise DemoError(
            f"the upload is {len(data):,} bytes; the demo takes files up to "
            f"{MAX_UPLOAD_BYTES:,} bytes"
        )
    _, height, width = model.image_shape
    try:
        with Image.open(io.BytesIO(data)) as img:
            size = img.size
    except (OSError, ValueError, Image.DecompressionBombError):
        raise DemoError("the upload is not an image file Pillow can read") from None
    if size != (width, height):
        raise DemoError(
            f"the upload is {size[0]}x{size[1]} pixels (width x height); this model takes "
            f"{width}x{height} images"
        )
    try:
        return read_image(ImageBytes(data, "the upload"), model.image_shape, model.num_levels)
    except ValueError as e:
        raise DemoError(str(e)) from None


def parse_erase_mask(model: AutoregressiveModel, erase: str) -> torch.Tensor:
    """The page's brush strokes, one ``0``/``1`` character per pixel in raster order (1: erase),
    as the ``known`` mask ``(C, H, W)`` (True: keep)."""
    c, h, w = model.image_shape
    if len(erase) != h * w or set(erase) - {"0", "1"}:
        raise DemoError(f"the erase mask must be {h * w} characters 0/1, one per pixel")
    erased = torch.tensor([ch == "1" for ch in erase]).reshape(h, w)
    if not erased.any():
        raise DemoError("nothing is erased: paint over the part to complete, or pick an occlusion")
    return (~erased).expand(c, h, w).clone()


def occlusion_known(model: AutoregressiveModel, occlusion: str) -> torch.Tensor:
    """The ``known`` mask ``(C, H, W)`` of a named occlusion."""
    if occlusion not in OCCLUSIONS:
        raise DemoError(f"occlusion must be one of {list(OCCLUSIONS)}, got {occlusion!r}")
    return occlusion_mask((1, *model.image_shape), occlusion)[0]


def check_label(model: AutoregressiveModel, label: int | None) -> torch.Tensor | None:
    """A label as the model needs it: required by a conditional model, refused otherwise."""
    if model.num_classes is None:
        if label is not None:
            raise DemoError("this model takes no class label")
        return None
    if label is None or not 0 <= label < model.num_classes:
        raise DemoError(f"choose a class label in 0..{model.num_classes - 1}")
    return torch.tensor(label)


def check_count(n: int, limit: int, what: str) -> None:
    if not 1 <= n <= limit:
        raise DemoError(f"{what} must lie in 1..{limit}, got {n}")


def check_temperature(temperature: float) -> None:
    if not 0 < temperature <= MAX_TEMPERATURE:
        raise DemoError(f"temperature must lie in (0, {MAX_TEMPERATURE}], got {temperature}")


def generation(
    model: AutoregressiveModel,
    x: torch.Tensor,
    known: torch.Tensor,
    *,
    seed: int,
    temperature: float = 1.0,
    label: torch.Tensor | None = None,
    on_row: object = None,
) -> torch.Tensor:
    """Fill the unknown entries of ``x`` ``(B, C, H, W)`` with the cached sampler."""
    device = next(model.parameters()).device
    y = None if label is None else label.expand(len(x)).to(device)
    request = GenerationRequest(
        generator=torch.Generator(device=device).manual_seed(seed),
        temperature=temperature,
        y=y,
        on_row=on_row,  # type: ignore[arg-type]
    )
    return generate(model, x.to(device), known.to(device), request).cpu()


@torch.no_grad()
def score(
    model: AutoregressiveModel, x: torch.Tensor, label: torch.Tensor | None
) -> tuple[float, float, torch.Tensor]:
    """NLL of one image ``(C, H, W)``: nats, bits/dim, and nats per pixel ``(H, W)`` (a joint
    pixel's, or the sum over its channels)."""
    device = next(model.parameters()).device
    y = None if label is None else label[None].to(device)
    per_entry = -model.log_prob(x[None].to(device), y=y, reduction="none").double().cpu()
    per_pixel = per_entry[0].sum(0)  # (H, W)
    nats = float(per_pixel.sum())
    return nats, float(bits_per_dim(torch.tensor(nats), model.num_dims)), per_pixel


def heat_map(per_pixel: torch.Tensor, scale: int = 8) -> Image.Image:
    """Nats per pixel ``(H, W)`` as a picture: black (0) through red and yellow to white (the
    image's largest value), nearest-neighbour scaled by ``scale``."""
    values = per_pixel.numpy()
    t = values / max(float(values.max()), 1e-12)
    rgb = np.stack([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], -1)
    img = Image.fromarray((rgb * 255).round().astype(np.uint8), "RGB")
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)


def png_data_url(img: Image.Image) -> str:
    """A picture as a ``data:image/png;base64,…`` URL."""
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_picture(
    x: torch.Tensor, num_levels: int, hidden: torch.Tensor | None = None
) -> Image.Image:
    """One image ``(C, H, W)`` at its own size, 8-bit grey or RGB; ``hidden`` entries grey."""
    pixels = to_uint8(x[None], num_levels, None if hidden is None else hidden[None])[0]
    grey = x.shape[0] == 1
    return Image.fromarray(pixels[..., 0] if grey else pixels, "L" if grey else "RGB")


def grid_picture(x: torch.Tensor, num_levels: int) -> Image.Image:
    """A batch ``(B, C, H, W)`` as one near-square grid, drawn larger for small images."""
    scale = max(1, math.ceil(64 / x.shape[-1]))
    return image_grid(x, num_levels, scale=scale)
