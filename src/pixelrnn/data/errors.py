"""Errors raised by the data readers; every message names the file and the problem."""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """A data file is corrupt, truncated or not in the expected format."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


class DatasetNotFoundError(FileNotFoundError):
    """The files of a dataset are not in the data folder and could not be downloaded."""
