"""Command-line flags generated from the config dataclasses: every field of every registered
model config and of :class:`~pixelrnn.training.TrainConfig` is a flag, with the field's docstring
as its help."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any

from pixelrnn.models import (
    MODELS,
)


def _field_docs(cls: type) -> dict[str, str]:
    """``name: text`` entries of the ``Attributes:`` sections of ``cls`` and its bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        doc = inspect.getdoc(klass) or ""
        if "Attributes:" not in doc:
            continue
        section = doc.split("Attributes:", 1)[1]
        for m in re.finditer(r"^ {4}(\w+): (.+?)(?=^ {4}\w+: |\Z)", section, re.M | re.S):
            docs[m.group(1)] = " ".join(m.group(2).split())
    return docs


def _parse_optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_or_none(text: str) -> Any:
        return None if text.lower() == "none" else parse(text)

    return parse_or_none


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C,H,W (e.g. 1,28,28), got {text!r}") from None


def _parse_bool(text: str) -> bool:
    value = text.lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _value_parser(annotation: str) -> Callable[[str], Any]:
    base = annotation.replace(" | None", "")
    parse: Callable[[str], Any] = {
        "int": int,
        "float": float,
        "str": str,
        "bool": _parse_bool,
        "tuple[int, int, int]": _parse_shape,
    }[base]
    return _parse_optional(parse) if "None" in annotation else parse


def config_fields(classes: Sequence[type]) -> dict[str, dataclasses.Field[Any]]:
    """Fields of the given dataclasses by name (first one wins for shared names)."""
    fields: dict[str, dataclasses.Field[Any]] = {}
    for cls in classes:
        for f in dataclasses.fields(cls):
            fields.setdefault(f.name, f)
    return fields


def add_config_flags(group: argparse._ArgumentGroup, classes: Sequence[type]) -> list[str]:
    docs: dict[str, str] = {}
    for cls in classes:
        docs = {**_field_docs(cls), **docs}
    names = []
    for name, f in config_fields(classes).items():
        default = f.default if f.default is not dataclasses.MISSING else None
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=_value_parser(str(f.type)),
            default=argparse.SUPPRESS,  # absent unless given, so `--flag none` can override
            metavar=name.upper(),
            help=f"{docs.get(name, '')} (default: {default})",
        )
        names.append(name)
    return names


def model_config_classes() -> list[type]:
    return [cls.config_class for cls in MODELS.values()]


def given_flags(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The config flags given on the command line (``none`` included), by field name."""
    return {n: getattr(args, n) for n in names if hasattr(args, n)}
