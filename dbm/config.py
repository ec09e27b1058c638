"""Frozen-dataclass configs on the command line: one --flag per field (tuples comma-separated)."""
from __future__ import annotations

import argparse
import dataclasses

__all__ = ["add_config_args", "config_from_args"]


def parse_value(kind, text: str):
    """Parse a command-line string as a field of annotated type ``kind`` (annotations are str)."""
    kind = str(kind)
    if kind.startswith("tuple"):
        items = [s for s in text.split(",") if s]
        return tuple(int(s) if s.lstrip("-").isdigit() else s for s in items)
    if text.lower() == "none" and "None" in kind:
        return None
    if kind.startswith("int"):
        return int(text)
    if kind.startswith("float"):
        return float(text)
    if kind.startswith("bool"):
        if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")
        return text.lower() in ("1", "true", "yes")
    return text


def add_config_args(parser: argparse.ArgumentParser, cls, skip=()) -> None:
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        parser.add_argument("--" + f.name.replace("_", "-"), dest="cfg_" + f.name, default=None,
                            metavar=f.name.upper(), help=f"default {f.default!r}")


def config_from_args(args, cls, base=None, **fixed):
    """The config: ``base`` (or the defaults), then every flag given on the command line."""
    over = {}
    for f in dataclasses.fields(cls):
        text = getattr(args, "cfg_" + f.name, None)
        if text is not None:
            over[f.name] = parse_value(f.type, text)
    return dataclasses.replace(base or cls(), **over, **fixed)
