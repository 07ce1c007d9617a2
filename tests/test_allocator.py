"""The console script's tcmalloc re-execution: when it happens and what it runs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pixelrnn import allocator


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list:
    calls: list = []
    lib = tmp_path / "libtcmalloc_minimal.so.4"
    lib.write_bytes(b"")
    monkeypatch.setattr(allocator, "find_tcmalloc", lambda: lib)
    monkeypatch.setattr(os, "execve", lambda *args: calls.append(args))
    monkeypatch.setattr(sys, "platform", "linux")
    for var in ("LD_PRELOAD", "PIXELRNN_ALLOCATOR", "PIXELRNN_ALLOCATOR_REEXEC"):
        monkeypatch.delenv(var, raising=False)
    return calls


def test_reexecutes_once_with_tcmalloc_preloaded(captured: list) -> None:
    allocator.reexec_with_tcmalloc(["train", "--preset", "pixelcnn-mnist"])
    ((executable, argv, env),) = captured
    assert executable == sys.executable
    assert argv == [sys.executable, "-m", "pixelrnn", "train", "--preset", "pixelcnn-mnist"]
    assert env["LD_PRELOAD"].endswith("libtcmalloc_minimal.so.4")
    assert env["PIXELRNN_ALLOCATOR_REEXEC"] == "1"


@pytest.mark.parametrize(
    "env",
    [
        {"PIXELRNN_ALLOCATOR": "system"},
        {"LD_PRELOAD": "/usr/lib/libtcmalloc.so.4"},
        {"PIXELRNN_ALLOCATOR_REEXEC": "1"},
    ],
)
def test_does_not_reexecute(captured: list, monkeypatch: pytest.MonkeyPatch, env: dict) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    allocator.reexec_with_tcmalloc(["train"])
    assert captured == []


def test_without_tcmalloc_glibc_is_tuned_in_place(
    captured: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(allocator, "find_tcmalloc", lambda: None)
    monkeypatch.setattr(allocator, "_tuned", False)
    tuned: list = []
    monkeypatch.setattr(allocator, "tune_glibc_malloc", lambda: tuned.append(1) or True)
    allocator.reexec_with_tcmalloc(["train"])
    assert captured == [] and tuned == [1]


def test_tuning_glibc_sets_its_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list = []

    class FakeLibc:
        def mallopt(self, param: int, value: int) -> int:
            calls.append((param, value))
            return 1

    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: FakeLibc())
    monkeypatch.setattr(allocator, "_tuned", False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    assert allocator.tune_glibc_malloc()
    assert calls == [(-3, 32 * 1024 * 1024), (-1, 1 << 30)]
    assert allocator.active_allocator() == "glibc-tuned"


def test_training_tunes_glibc_unless_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    tuned: list = []
    monkeypatch.setattr(allocator, "tune_glibc_malloc", lambda: tuned.append(1) or True)
    monkeypatch.delenv("PIXELRNN_ALLOCATOR", raising=False)
    assert allocator.tune_for_training() and tuned == [1]
    monkeypatch.setenv("PIXELRNN_ALLOCATOR", "system")
    assert not allocator.tune_for_training() and tuned == [1]
