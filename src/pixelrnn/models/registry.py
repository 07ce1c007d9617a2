"""Model registry and named presets (conventions §3).

Presets are append-only once published: a preset name always rebuilds the same network.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.models.gated_pixelcnn import GatedPixelCNN
from pixelrnn.models.memory import check_fits_memory
from pixelrnn.models.multiscale import MultiScalePixelRNN
from pixelrnn.models.pixelcnn import PixelCNN
from pixelrnn.models.pixelcnn_pp import PixelCNNPP
from pixelrnn.models.pixelrnn import DiagonalBiLSTMPixelRNN, RowLSTMPixelRNN
from pixelrnn.models.pixelvae import PixelVAE
from pixelrnn.models.vqvae import VQVAE

MODELS: dict[str, type[AutoregressiveModel]] = {
    m.model_name: m
    for m in (
        PixelCNN,
        RowLSTMPixelRNN,
        DiagonalBiLSTMPixelRNN,
        GatedPixelCNN,
        PixelCNNPP,
        MultiScalePixelRNN,
        PixelVAE,
        VQVAE,
    )
}


@dataclass(frozen=True)
class Preset:
    """A named model configuration.

    Attributes:
        model: registry name of the model.
        config: config fields (image shape, levels and hyper-parameters).
        dataset: the dataset the preset is sized for (the default of ``pixelrnn train``).
        description: one line, with the paper section it follows.
        binarize: binarization of grey MNIST-type data the preset trains on by default.
        training: training settings the preset trains with by default (e.g. EMA), which
            command-line flags override.
    """

    model: str
    config: dict[str, Any]
    dataset: str
    description: str
    binarize: str | None = None
    training: dict[str, Any] = field(default_factory=dict)


def _binarized_mnist(model: str, description: str, **config: Any) -> Preset:
    """A preset for 28x28 binary images (binarized MNIST)."""
    return Preset(
        model,
        {"image_shape": (1, 28, 28), "num_levels": 2, **config},
        "binarized-mnist",
        description,
    )


def _tiny(model: str, description: str, **config: Any) -> Preset:
    """A few-thousand-parameter preset for tests and smoke runs (8x8 binary images)."""
    sizes = dict(hidden_channels=6, num_layers=2, output_channels=8) | config
    return Preset(
        model, {"image_shape": (1, 8, 8), "num_levels": 2, **sizes}, "binarized-mnist", description
    )


def _colour(
    model: str,
    dataset: str,
    size: int,
    description: str,
    training: dict[str, Any] | None = None,
    **config: Any,
) -> Preset:
    """A preset for 8-bit RGB images of ``size`` x ``size`` pixels (``training``: its default
    training settings)."""
    return Preset(
        model,
        {"image_shape": (3, size, size), "num_levels": 256, **config},
        dataset,
        description,
        training=dict(training or {}),
    )


# Gated PixelCNN sizes. The paper's large models (§3): 20 layers, p = 384, 5x5 filters. It has
# no binarized-MNIST model; this one has the width (16) and 15 layers of pixelcnn-mnist and a 5x5
# reach, so its field covers all of a 28x28 image (3 + 14 · 2 >= 27 columns right of the row above).
GATED_MNIST = dict(hidden_channels=16, num_layers=15, kernel_size=5, output_channels=32)
GATED_MNIST_DESCRIPTION = (
    "Gated PixelCNN for binarized MNIST: 15 layers, p=16, 5x5 stacks, no blind spot, "
    "Bernoulli output"
)
GATED_CIFAR = dict(hidden_channels=384, num_layers=20, kernel_size=5, output_channels=1024)
GATED_CIFAR_DESCRIPTION = (
    "Gated PixelCNN for CIFAR-10: 20 layers, p=384, 5x5 stacks (Gated PixelCNN §3; "
    "3.03 bits/dim), 256-way softmax per colour"
)

# PixelCNN++ (§3.1, official train.py): Adam at 1e-3 and Polyak averaging of the weights (0.9995)
# for evaluation and sampling. NOTE: the official Adam uses β = (0.95, 0.9995) and decays the
# rate by 0.999995 per step; these presets keep torch's Adam defaults and a constant rate.
PIXELCNNPP_TRAINING = {"optimizer": "adam", "lr": 1e-3, "ema_decay": 0.9995}
PIXELCNNPP_CIFAR = dict(
    distribution="logistic_mixture:10", nr_resnet=5, nr_filters=160, num_resolutions=3, dropout=0.5
)

PRESETS: dict[str, Preset] = {
    "pixelcnn-tiny": _tiny(
        "pixelcnn", "a small PixelCNN for tests and smoke runs (not a paper size)"
    ),
    "pixelcnn-mnist": _binarized_mnist(
        "pixelcnn",
        "PixelCNN for binarized MNIST: h=16, 15 residual blocks, 32 output maps "
        "(PixelRNN §4), Bernoulli output",
        hidden_channels=16,
        num_layers=15,
        output_channels=32,
    ),
    "pixelcnn-cifar10": _colour(
        "pixelcnn",
        "cifar10",
        32,
        "PixelCNN for CIFAR-10: h=128, 15 residual blocks, 1024 output maps "
        "(PixelRNN §4), 256-way softmax per colour",
        hidden_channels=128,
        num_layers=15,
        output_channels=1024,
    ),
    "gated-pixelcnn-tiny": _tiny(
        "gated_pixelcnn",
        "a small Gated PixelCNN for tests and smoke runs (not a paper size)",
        # 3 hidden and 8 output units per colour group: with fewer, a random ReLU head can be
        # dead for a whole colour group and hide live dependencies from the shared tests
        hidden_channels=9,
        output_channels=24,
    ),
    "gated-pixelcnn-mnist": _binarized_mnist(
        "gated_pixelcnn",
        GATED_MNIST_DESCRIPTION,
        **GATED_MNIST,
    ),
    "gated-pixelcnn-mnist-class": Preset(
        "gated_pixelcnn",
        {"image_shape": (1, 28, 28), "num_levels": 2, **GATED_MNIST, "num_classes": 10},
        "mnist",
        "class-conditional " + GATED_MNIST_DESCRIPTION + "; trains on MNIST with labels, "
        "dynamically binarized (Larochelle's binarized MNIST has no labels)",
        binarize="dynamic",
    ),
    "gated-pixelcnn-cifar10": _colour(
        "gated_pixelcnn",
        "cifar10",
        32,
        GATED_CIFAR_DESCRIPTION,
        **GATED_CIFAR,
    ),
    "gated-pixelcnn-cifar10-class": _colour(
        "gated_pixelcnn",
        "cifar10",
        32,
        "class-conditional " + GATED_CIFAR_DESCRIPTION,
        **GATED_CIFAR,
        num_classes=10,
    ),
    "row-lstm-tiny": _tiny(
        "row_lstm", "a small Row LSTM for tests and smoke runs (not a paper size)"
    ),
    "diagonal-bilstm-tiny": _tiny(
        "diagonal_bilstm", "a small Diagonal BiLSTM for tests and smoke runs (not a paper size)"
    ),
    "diagonal-bilstm-mnist": _binarized_mnist(
        "diagonal_bilstm",
        "Diagonal BiLSTM for binarized MNIST: 7 layers, h=16, 32 output maps "
        "(PixelRNN §4; 79.20 nats in Table 4)",
        hidden_channels=16,
        num_layers=7,
        output_channels=32,
    ),
    "diagonal-bilstm-mnist-1layer": _binarized_mnist(
        "diagonal_bilstm",
        "Diagonal BiLSTM for binarized MNIST: 1 layer, h=32 (PixelRNN Table 4: 80.75)",
        hidden_channels=32,
        num_layers=1,
        output_channels=32,
    ),
    "row-lstm-mnist": _binarized_mnist(
        "row_lstm",
        "Row LSTM for binarized MNIST: 7 layers, h=16, 32 output maps (size as the "
        "Diagonal BiLSTM's; the paper gives none; Table 4: 80.54)",
        hidden_channels=16,
        num_layers=7,
        output_channels=32,
    ),
    "row-lstm-cifar10": _colour(
        "row_lstm",
        "cifar10",
        32,
        "Row LSTM for CIFAR-10: 12 layers, h=128, 1024 output maps (PixelRNN §4)",
        hidden_channels=128,
        num_layers=12,
        output_channels=1024,
    ),
    "diagonal-bilstm-cifar10": _colour(
        "diagonal_bilstm",
        "cifar10",
        32,
        "Diagonal BiLSTM for CIFAR-10: 12 layers, h=128, 1024 output maps "
        "(PixelRNN §4; 3.00 bits/dim)",
        hidden_channels=128,
        num_layers=12,
        output_channels=1024,
    ),
    "row-lstm-imagenet32": _colour(
        "row_lstm",
        "imagenet32",
        32,
        "Row LSTM for ImageNet 32x32: 12 layers, h=384 (PixelRNN §4; 3.86 bits/dim)",
        hidden_channels=384,
        num_layers=12,
        output_channels=1024,
    ),
    "row-lstm-imagenet64": _colour(
        "row_lstm",
        "imagenet64",
        64,
        "Row LSTM for ImageNet 64x64: 4 layers, h=512, no residual connections "
        "(PixelRNN §4; 3.63 bits/dim)",
        hidden_channels=512,
        num_layers=4,
        output_channels=1024,
        residual=False,
    ),
    "pixelvae-tiny": _tiny(
        "pixelvae",
        "a small PixelVAE for tests and smoke runs (not a paper size)",
        latent_dim=4,
        latent_channels=8,
        conditioning_channels=4,
        kernel_size=3,
        input_kernel_size=7,
        eval_samples=4,
    ),
    "pixelvae-mnist": Preset(
        "pixelvae",
        {
            "image_shape": (1, 28, 28),
            "num_levels": 2,
            "latent_dim": 16,
            "hidden_channels": 16,
            "num_layers": 12,
            "kernel_size": 5,
            "input_kernel_size": 5,
            "eval_samples": 100,
        },
        "binarized-mnist",
        "PixelVAE (Gulrajani et al. 2017), the released MNIST recipe: a 16-dimensional latent, "
        "a 12-layer 5x5 PixelCNN decoder with 16 channels",
    ),
    "pixelvae-mnist-hierarchical": Preset(
        "pixelvae",
        {
            "image_shape": (1, 28, 28),
            "num_levels": 2,
            "latent_dim": 2,
            "spatial_latent": True,
            "top_latent_dim": 16,
            "hidden_channels": 16,
            "num_layers": 12,
            "kernel_size": 5,
            "input_kernel_size": 5,
            "eval_samples": 100,
        },
        "binarized-mnist",
        "two-level PixelVAE (Gulrajani et al. 2017 §3.2; not a paper size): a 16-dimensional "
        "global top latent, a 2x7x7 spatial bottom latent with a learned p(z_bottom | z_top), "
        "the released recipe's 12-layer 5x5 PixelCNN decoder with 16 channels",
    ),
    "pixelvae-cifar10": Preset(
        "pixelvae",
        {
            "image_shape": (3, 32, 32),
            "num_levels": 256,
            "latent_dim": 8,
            "spatial_latent": True,
            "latent_channels": 64,
            "conditioning_channels": 32,
            "decoder": "gated_pixelcnn",
            "hidden_channels": 64,
            "num_layers": 6,
            "kernel_size": 5,
            "input_kernel_size": 7,
            "output_channels": 256,
            "eval_samples": 100,
        },
        "cifar10",
        "PixelVAE for CIFAR-10 (not a paper size): an 8x8x8 spatial latent, a 6-layer Gated "
        "PixelCNN decoder",
    ),
    "vqvae-tiny": Preset(
        "vqvae",
        {
            "image_shape": (1, 8, 8),
            "num_levels": 2,
            "num_codes": 8,
            "code_dim": 4,
            "hidden_channels": 8,
            "residual_channels": 4,
            "num_residual_blocks": 1,
            "downsamplings": 1,
        },
        "binarized-mnist",
        "a small VQ-VAE for tests and smoke runs (not a paper size)",
    ),
    "vqvae-mnist": Preset(
        "vqvae",
        {
            "image_shape": (1, 28, 28),
            "num_levels": 2,
            "num_codes": 64,
            "code_dim": 16,
            "hidden_channels": 64,
            "residual_channels": 32,
            "num_residual_blocks": 2,
            "downsamplings": 2,
        },
        "binarized-mnist",
        "VQ-VAE for binarized MNIST (not a paper size): 7x7 codes, K = 64, D = 16, a Bernoulli "
        "decoder",
    ),
    "vqvae-cifar10": Preset(
        "vqvae",
        {
            "image_shape": (3, 32, 32),
            "num_levels": 256,
            "num_codes": 512,
            "code_dim": 64,
            "hidden_channels": 128,
            "residual_channels": 32,
            "num_residual_blocks": 2,
            "downsamplings": 2,
            "distribution": "logistic_mixture",
        },
        "cifar10",
        "VQ-VAE for CIFAR-10 (van den Oord et al. 2017 §4.1 sizes, halved width): 8x8 codes, "
        "K = 512, D = 64, a discretized logistic mixture decoder",
    ),
    "vqvae2-mnist": Preset(
        "vqvae",
        {
            "image_shape": (1, 28, 28),
            "num_levels": 2,
            "num_codes": 64,
            "code_dim": 16,
            "hidden_channels": 64,
            "residual_channels": 32,
            "num_residual_blocks": 2,
            "downsamplings": 2,
            "top_downsamplings": 1,
        },
        "binarized-mnist",
        "two-level VQ-VAE after VQ-VAE-2 (Razavi et al. 2019; not a paper size): 7x7 bottom and "
        "4x4 top codes, K = 64; priors: vqvae-prior-mnist with --code-level top, then bottom",
    ),
    "vqvae2-cifar10": Preset(
        "vqvae",
        {
            "image_shape": (3, 32, 32),
            "num_levels": 256,
            "num_codes": 512,
            "code_dim": 64,
            "hidden_channels": 128,
            "residual_channels": 32,
            "num_residual_blocks": 2,
            "downsamplings": 2,
            "top_downsamplings": 1,
            "distribution": "logistic_mixture",
        },
        "cifar10",
        "two-level VQ-VAE after VQ-VAE-2 for CIFAR-10 (halved width): 8x8 bottom and 4x4 top "
        "codes, K = 512, a discretized logistic mixture decoder",
    ),
    "vqvae-prior-tiny": Preset(
        "gated_pixelcnn",
        {
            "image_shape": (1, 4, 4),
            "num_levels": 8,
            "input_encoding": "embedding",
            "embedding_dim": 4,
            "hidden_channels": 8,
            "num_layers": 2,
            "output_channels": 16,
            "kernel_size": 3,
            "input_kernel_size": 3,
        },
        "code-grids",
        "a small prior over vqvae-tiny's codes, for tests and smoke runs (train with --vqvae)",
    ),
    "vqvae-prior-mnist": Preset(
        "gated_pixelcnn",
        {
            "image_shape": (1, 7, 7),
            "num_levels": 64,
            "input_encoding": "embedding",
            "embedding_dim": 32,
            "hidden_channels": 64,
            "num_layers": 6,
            "output_channels": 128,
            "kernel_size": 3,
            "input_kernel_size": 3,
        },
        "code-grids",
        "Gated PixelCNN prior over vqvae-mnist's 7x7 codes (K = 64, embedded inputs; train "
        "with --vqvae)",
    ),
    "vqvae-prior-cifar10": Preset(
        "gated_pixelcnn",
        {
            "image_shape": (1, 8, 8),
            "num_levels": 512,
            "input_encoding": "embedding",
            "embedding_dim": 64,
            "hidden_channels": 128,
            "num_layers": 8,
            "output_channels": 512,
            "kernel_size": 3,
            "input_kernel_size": 3,
        },
        "code-grids",
        "Gated PixelCNN prior over vqvae-cifar10's 8x8 codes (K = 512, embedded inputs; train "
        "with --vqvae)",
    ),
    "pixelcnnpp-tiny": Preset(
        "pixelcnnpp",
        {
            "image_shape": (1, 8, 8),
            "num_levels": 2,
            "distribution": "logistic_mixture:2",
            "nr_resnet": 1,
            "nr_filters": 8,
            "num_resolutions": 2,
            "dropout": 0.0,
        },
        "binarized-mnist",
        "a small PixelCNN++ for tests and smoke runs (not a paper size): 2 resolutions",
    ),
    "pixelcnnpp-mnist": Preset(
        "pixelcnnpp",
        {
            "image_shape": (1, 28, 28),
            "num_levels": 256,
            "distribution": "logistic_mixture:5",
            "nr_resnet": 2,
            "nr_filters": 64,
            "num_resolutions": 3,
            "dropout": 0.1,
        },
        "mnist",
        "PixelCNN++ for grey 8-bit MNIST (not a paper size): 28 -> 14 -> 7, 2 layers per "
        "resolution, 64 filters, 5 logistics (1-channel mixture)",
        training=PIXELCNNPP_TRAINING,
    ),
    "pixelcnnpp-cifar10": _colour(
        "pixelcnnpp",
        "cifar10",
        32,
        "PixelCNN++ for CIFAR-10: 5 layers per resolution, 160 filters, 10 logistics, "
        "dropout 0.5 (PixelCNN++ §3.1, official defaults; 2.92 bits/dim)",
        training=PIXELCNNPP_TRAINING,
        **PIXELCNNPP_CIFAR,
    ),
    "pixelcnnpp-cifar10-class": _colour(
        "pixelcnnpp",
        "cifar10",
        32,
        "class-conditional PixelCNN++ for CIFAR-10 (PixelCNN++ §3.2; 2.94 bits/dim)",
        training=PIXELCNNPP_TRAINING,
        **PIXELCNNPP_CIFAR,
        num_classes=10,
    ),
    "multiscale-tiny": _tiny(
        "multiscale",
        "a small Multi-Scale PixelCNN for tests and smoke runs (not a paper size): 4x4 then 8x8",
        family="pixelcnn",
    ),
    "multiscale-pixelcnn-mnist": _binarized_mnist(
        "multiscale",
        "Multi-Scale PixelCNN for binarized MNIST (PixelRNN §3.4; not a paper size): a 14x14 "
        "PixelCNN, then the 28x28 image given it; each stage the size of pixelcnn-mnist",
        family="pixelcnn",
        scale=2,
        hidden_channels=16,
        num_layers=15,
        output_channels=32,
        upsampling_channels=16,
    ),
    "multiscale-row-lstm-cifar10": _colour(
        "multiscale",
        "cifar10",
        32,
        "Multi-Scale Row LSTM for CIFAR-10 (PixelRNN §3.4): a 16x16 Row LSTM, then the 32x32 "
        "image given it; each stage the size of row-lstm-cifar10 (12 layers, h=128)",
        family="row_lstm",
        scale=2,
        hidden_channels=128,
        num_layers=12,
        output_channels=1024,
        upsampling_channels=32,
    ),
}


def available_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(MODELS)


def conditional_models() -> list[str]:
    """Names of the models that take class labels (their config has ``num_classes``)."""
    return sorted(
        name
        for name, cls in MODELS.items()
        if "num_classes" in {f.name for f in dataclasses.fields(cls.config_class)}
    )


def available_presets() -> list[str]:
    """Names accepted by ``create_model(preset=...)``."""
    return sorted(PRESETS)


def get_preset(name: str) -> Preset:
    """Look a preset up by name, with the valid names in the error."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available presets: {available_presets()}")
    return PRESETS[name]


def create_model(
    name: str | None = None, *, preset: str | None = None, **config: Any
) -> AutoregressiveModel:
    """Build a model from a registry name or a preset.

    ``create_model("pixelcnn", image_shape=(C, H, W), num_levels=K, **hyper_parameters)`` or
    ``create_model(preset="pixelcnn-mnist", **overrides)``.

    Raises:
        ValueError: unknown model, preset or config field, or an invalid value.
    """
    if preset is not None:
        p = get_preset(preset)
        if name is not None and name != p.model:
            raise ValueError(f"preset {preset!r} is a {p.model!r} model, not {name!r}")
        name = p.model
        config = {**p.config, **config}
    if name is None:
        raise ValueError("give a model name or a preset")
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available models: {available_models()}")
    cls = MODELS[name]
    model_config = cls.config_class.from_dict(config)
    check_fits_memory(cls, model_config, f"{name} config")  # before anything is allocated
    return cls(model_config)
