"""Shared fixtures: no network, the staged data root, tiny seeded models."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

import pixelrnn
from tests.helpers import tiny_model

REPO = Path(__file__).resolve().parents[1]
# the compiled kernels must build here: a failed build fails the tests instead of falling back
os.environ.setdefault("PIXELRNN_NATIVE", "1")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never touch the network: any internet-family connection fails at once. (Unix
    sockets stay: DataLoader workers pass tensors through them.)"""
    connect = socket.socket.connect

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access is disabled in tests")

    def local_only(sock: socket.socket, address: object) -> None:
        if sock.family == socket.AF_UNIX:
            return connect(sock, address)
        refuse()

    monkeypatch.setattr(socket.socket, "connect", local_only)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The staged datasets: ``$PIXELRNN_DATA``, else ``../shared/data`` beside the repository."""
    path = Path(os.environ.get("PIXELRNN_DATA") or REPO.parent / "shared" / "data")
    if not (path / "binarized_mnist").is_dir():
        pytest.skip(f"staged datasets not found at {path}; set PIXELRNN_DATA")
    return path


@pytest.fixture
def binary_model() -> pixelrnn.AutoregressiveModel:
    return tiny_model(1, 2)


@pytest.fixture
def colour_model() -> pixelrnn.AutoregressiveModel:
    return tiny_model(3, 256, hidden_channels=9)
