"""The optional compiled kernels: the setting, the fallback when a build fails, the error
when the build is required."""

from __future__ import annotations

import pytest
import torch
import torch.utils.cpp_extension

from pixelrnn import native


def test_native_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.NATIVE_ENV_VAR, "yes")
    with pytest.raises(ValueError, match="PIXELRNN_NATIVE must be auto, 0 or 1, not 'yes'"):
        native.native_available()
    monkeypatch.setenv(native.NATIVE_ENV_VAR, "0")
    assert native.native_available() is False


def test_a_failed_build_falls_back_with_a_warning_or_raises_when_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken_load(**kwargs: object) -> None:
        raise OSError("no compiler here")

    # as on a machine where nothing was built yet
    monkeypatch.setattr(native, "_registered", lambda: False)
    monkeypatch.setattr(torch.utils.cpp_extension, "load", broken_load)
    with pytest.warns(RuntimeWarning, match=r"no compiler here.*slower Python loops"):
        assert native._load(required=False) is False
    with pytest.raises(RuntimeError, match=r"PIXELRNN_NATIVE=1.*no compiler here"):
        native._load(required=True)


def test_build_flags_follow_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    name, flags = native.build_flags()
    assert name.endswith("avx2") and "-mavx2" in flags
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")
    name, flags = native.build_flags()
    assert not name.endswith("avx2") and "-mavx2" not in flags
