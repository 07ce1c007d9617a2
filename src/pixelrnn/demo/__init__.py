"""``pixelrnn demo``: a local web page to watch the models sample, complete and score."""

from pixelrnn.demo.app import create_app
from pixelrnn.demo.service import DemoError, DemoModels

__all__ = ["DemoError", "DemoModels", "create_app"]
