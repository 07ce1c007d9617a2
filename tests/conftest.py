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


LOOPBACK = ("127.0.0.1", "::1", "localhost")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never touch the network: any connection to another machine fails at once. (Unix
    sockets stay: DataLoader workers pass tensors through them; so does loopback, where the
    demo's server and the browser driver listen.)"""
    connect, create_connection = socket.socket.connect, socket.create_connection

    def refuse(address: object) -> None:
        raise OSError(f"network access is disabled in tests (tried {address})")

    def is_local(sock_family: int, address: object) -> bool:
        if sock_family == socket.AF_UNIX:
            return True
        return isinstance(address, tuple) and address[0] in LOOPBACK

    def local_only(sock: socket.socket, address: object) -> None:
        if not is_local(sock.family, address):
            refuse(address)
        return connect(sock, address)

    def local_connection(address: tuple, *args: object, **kwargs: object) -> socket.socket:
        if address[0] not in LOOPBACK:
            refuse(address)
        return create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    monkeypatch.setattr(socket, "create_connection", local_connection)


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
