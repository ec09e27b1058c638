"""Frozen-dataclass configs: validation (one ConfigError naming the flag) and the command line
(one --flag per field, tuples comma-separated)."""
from __future__ import annotations

import argparse
import dataclasses
import math

from .errors import ConfigError
from .validate import MAX_BATCH, MAX_COUNT, MAX_WIDTH

__all__ = ["add_config_args", "config_from_args", "check_config", "flag", "MAX_COUNT", "MAX_BATCH", "MAX_WIDTH",
           "upper_bound"]

# Upper bounds of the integer options (dbm.validate), checked before anything is created:
_BOUNDS = {"batch_size": MAX_BATCH, "eval_samples": MAX_BATCH, "eval_ais_runs": MAX_BATCH, "bank_size": MAX_BATCH,
           "fd_n": MAX_BATCH, "correction_window": MAX_BATCH, "toy_groups": 10 ** 4, "n_f": MAX_WIDTH,
           "width": MAX_WIDTH, "hidden": MAX_WIDTH}


def upper_bound(name: str) -> int:
    """The largest value the integer option ``name`` accepts."""
    return _BOUNDS.get(name, MAX_COUNT)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_config(cfg, *, positive_int=(), nonneg_int=(), positive=(), nonneg=(), fraction=(),
                 choices: dict | None = None) -> None:
    """ConfigError for the first field out of range: ``positive_int`` >= 1, ``nonneg_int`` >= 0,
    each at most ``upper_bound(name)``, ``positive`` finite > 0, ``nonneg`` finite >= 0,
    ``fraction`` finite in [0, 1], ``choices`` {field: allowed values}."""
    for name in positive_int + nonneg_int:
        v = getattr(cfg, name)
        low = 1 if name in positive_int else 0
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"{flag(name)} must be an integer >= {low}, got {v!r}")
        if v > upper_bound(name):
            raise ConfigError(f"{flag(name)} must be at most {upper_bound(name):,} (this suite's bound for it), "
                              f"got {v:.3g}")
    ranges = [(positive, lambda v: v > 0, "finite and > 0"), (nonneg, lambda v: v >= 0, "finite and >= 0"),
              (fraction, lambda v: 0 <= v <= 1, "in [0, 1]")]
    for names, ok, what in ranges:
        for name in names:
            v = getattr(cfg, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not ok(v):
                raise ConfigError(f"{flag(name)} must be {what}, got {v!r}")
    for name, allowed in (choices or {}).items():
        v = getattr(cfg, name)
        if v not in allowed:
            raise ConfigError(f"{flag(name)} must be one of {', '.join(map(str, allowed))}; got {v!r}")


def check_device(device: str) -> None:
    import torch
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"--device {device!r} is not a device ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine")


def parse_value(kind, text: str):
    """Parse a command-line string as a field of annotated type ``kind`` (annotations are str)."""
    kind = str(kind)
    if kind.startswith("dict"):
        import json
        try:
            value = json.loads(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"must be a JSON object, got {text!r} ({e})") from None
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError(f"must be a JSON object, got {text!r}")
        return value
    if kind.startswith("tuple"):
        items = [s.strip() for s in text.split(",") if s.strip()]
        return tuple(int(s) if s.lstrip("-").isdigit() else s for s in items)
    if text.lower() == "none" and "None" in kind:
        return None
    try:
        if kind.startswith("int"):
            return int(text)
        if kind.startswith("float"):
            return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {kind.split()[0]}, got {text!r}") from None
    if kind.startswith("bool"):
        if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")
        return text.lower() in ("1", "true", "yes")
    return text


def _field_help(cls) -> dict[str, str]:
    """The comment after each field in the class source: its explanation for --help."""
    import inspect
    import re
    out = {}
    for klass in reversed(cls.__mro__[:-1]):         # inherited fields keep their explanation
        try:
            src = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        out.update({m.group(1): m.group(2).strip() for m in re.finditer(r"^\s+(\w+):[^#\n]*#\s*(.*)$", src, re.M)})
    return out


def add_config_args(parser: argparse.ArgumentParser, cls, skip=()) -> None:
    """One --flag per field with its explanation, default and choices (``cls.CHOICES``)."""
    helps, choices = _field_help(cls), getattr(cls, "CHOICES", {})
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        text = helps.get(f.name, "")
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        if str(f.type).startswith("bool"):               # a real switch: --flag / --no-flag
            parser.add_argument(flag(f.name), dest="cfg_" + f.name, default=None,
                                action=argparse.BooleanOptionalAction,
                                help=f"{text + '; ' if text else ''}default {'on' if default else 'off'}")
            continue
        kw = ({"choices": [str(c) for c in choices[f.name]]} if f.name in choices   # matched as typed text
              else {"metavar": f.name.upper()})
        parser.add_argument(flag(f.name), dest="cfg_" + f.name, default=None,
                            help=f"{text + '; ' if text else ''}default {default!r}", **kw)


def config_from_args(args, cls, base=None, **fixed):
    """The config: ``base`` (or the defaults), then every flag given on the command line."""
    over = {}
    for f in dataclasses.fields(cls):
        text = getattr(args, "cfg_" + f.name, None)
        if isinstance(text, bool):                      # a switch
            over[f.name] = text
        elif text is not None:
            try:
                over[f.name] = parse_value(f.type, text)
            except argparse.ArgumentTypeError as e:
                raise ConfigError(f"{flag(f.name)}: {e}") from None
    return dataclasses.replace(base or cls(), **over, **fixed)
