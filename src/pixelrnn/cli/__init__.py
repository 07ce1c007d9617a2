"""The ``pixelrnn`` command line (conventions §11): thin subcommands over the library.

Model and training flags are generated from the config dataclasses (:mod:`pixelrnn.cli.flags`),
so every field of every registered model config and of :class:`~pixelrnn.training.TrainConfig`
is a flag, with the field's docstring as its help. Nothing in the library imports this package.
"""

from pixelrnn.cli.flags import model_config_classes
from pixelrnn.cli.parser import build_parser, main

__all__ = ["build_parser", "main", "model_config_classes"]
