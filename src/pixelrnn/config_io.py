"""JSON round trip shared by the frozen config dataclasses (model and training settings)."""

from __future__ import annotations

import dataclasses
from typing import Any, Self


class DictConfig:
    """Mixin for frozen dataclasses: ``to_dict`` and a ``from_dict`` that names unknown keys."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (tuples become lists when dumped)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        """Build from a dict, rejecting unknown keys by name."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; valid: {sorted(names)}")
        return cls(**d)
