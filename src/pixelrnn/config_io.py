"""JSON round trip shared by the frozen config dataclasses (model and training settings).

:meth:`DictConfig.from_dict` is the one place where every config read from a file (a run's
``config.json``, a model card) or from flags is checked: unknown keys, and each value against
its field's type annotation (integers, numbers, booleans, strings, ``None`` where allowed,
fixed-length tuples of integers), before the dataclass's own range checks run. Every problem is
one line naming the source, the field, what was expected and what was found. (The annotations
are a handful of plain types, so a short checker serves better than a validation library here.)
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, Self


class DictConfig:
    """Mixin for frozen dataclasses: ``to_dict`` and a checking ``from_dict``."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (tuples become lists when dumped)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: Any, source: str | None = None) -> Self:
        """Build from a dict, checking keys and types first (the module docstring).

        Args:
            d: the fields.
            source: where ``d`` comes from, for the messages (e.g. ``"run/config.json:
                config"``; default: the class name).

        Raises:
            ValueError: one line naming the source and the field.
        """
        where = source or cls.__name__
        if not isinstance(d, dict):
            raise ValueError(f"{where}: expected an object of fields, found {_shown(d)}")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown}; valid: {sorted(names)}")
        for name, value in d.items():
            if not matches(value, hints[name]):
                raise ValueError(
                    f"{where}: field {name!r}: expected {describe(hints[name])}, found "
                    f"{_shown(value)}"
                )
        try:
            return cls(**d)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{where}: {e}") from None


def matches(value: Any, annotation: Any) -> bool:
    """Whether a JSON value fits a field annotation (unchecked kinds match anything)."""
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        return any(matches(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and math.isfinite(value)
    if annotation is str:
        return isinstance(value, str)
    if origin is Literal:
        return value in typing.get_args(annotation)
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, list | tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(
            matches(v, a) for v, a in zip(value, args, strict=True)
        )
    return True


def describe(annotation: Any) -> str:
    """An annotation in words: ``int | None`` → ``an integer or null``."""
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(describe(a) for a in typing.get_args(annotation))
    words = {
        type(None): "null",
        bool: "true or false",
        int: "an integer",
        float: "a finite number",
        str: "a string",
    }
    if annotation in words:
        return words[annotation]
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin is tuple:
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {describe(args[0])}s"
        return f"a list of {len(args)} values ({', '.join(describe(a) for a in args)})"
    return str(annotation)


def _shown(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} ({type(value).__name__})"
