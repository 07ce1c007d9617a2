"""The package's layers hold: no import circle, no upward import, no function-level import."""

from __future__ import annotations

from pathlib import Path

import pixelrnn
from tests.import_graph import LAYERS, import_edges, import_problems

SRC = Path(pixelrnn.__file__).resolve().parents[1]


def test_the_package_has_no_circle_and_no_upward_or_hidden_import() -> None:
    assert import_edges(SRC, "pixelrnn")  # the reader sees the package's imports at all
    assert import_problems(SRC, "pixelrnn", LAYERS) == []


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


SCRATCH_LAYERS = {"pkg.low": 0, "pkg.high": 1, "pkg": 2}


def test_the_check_finds_an_upward_import(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low.py": "from pkg.high import thing\n",
            "pkg/high.py": "thing = 1\n",
        },
    )
    problems = import_problems(tmp_path, "pkg", SCRATCH_LAYERS)
    assert problems == ["pkg.low:1: pkg.low (layer 0) imports pkg.high (pkg.high, layer 1)"]


def test_the_check_finds_a_function_level_import(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low.py": "thing = 1\n",
            "pkg/high.py": "def f():\n    from pkg import low\n    return low.thing\n",
        },
    )
    problems = import_problems(tmp_path, "pkg", SCRATCH_LAYERS)
    assert problems == ["pkg.high:2: imports pkg.low inside a function or class"]


def test_the_check_finds_a_circle_inside_a_layer(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/high/__init__.py": "",
            "pkg/high/a.py": "from pkg.high.b import y\nx = 1\n",
            "pkg/high/b.py": "from pkg.high import a\ny = 2\n",
        },
    )
    problems = import_problems(tmp_path, "pkg", SCRATCH_LAYERS)
    assert problems == ["import circle: pkg.high.a -> pkg.high.b"]
