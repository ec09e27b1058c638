"""Counting host synchronisations (issue 36): the calls that make a device wait for the host.

On a GPU a kernel launch returns at once; a call that needs a value on the host (``.item()``,
``bool(t)``, ``int(t)``, ``.tolist()``, ``.numpy()``, ``.cpu()``, ``nonzero``, a boolean-mask
index, ``torch.where(cond)``, ``masked_select``, ``unique``) waits for every queued kernel. Their
number per update, not the arithmetic, bounds the update's speed on a device when the tensors are
small. ``HostSyncs`` counts them on any device, the CPU included, so the bound is tested where no
GPU is (``tests/test_syncs.py``, ``benchmarks/bench_syncs.py``): a proxy, not a timing.

    with HostSyncs() as syncs:
        loss, state, info = est.loss(model, v, state, g)
    syncs.count, syncs.by_name
"""
from __future__ import annotations

from collections import Counter

import torch
from torch.overrides import TorchFunctionMode

__all__ = ["HostSyncs"]

_ALWAYS = {"item", "__bool__", "__int__", "__float__", "__index__", "tolist", "numpy", "cpu", "nonzero", "argwhere",
           "masked_select", "unique", "unique_consecutive", "nonzero_static"}
_INDEXING = {"__getitem__", "__setitem__", "index_put", "index_put_"}


def _bool_tensor_in(obj) -> bool:
    if isinstance(obj, torch.Tensor):
        return obj.dtype == torch.bool
    if isinstance(obj, (tuple, list)):
        return any(_bool_tensor_in(o) for o in obj)
    return False


def _to_host(args, kwargs) -> bool:
    """``t.to(...)`` that moves data from a device to the host."""
    dev = kwargs.get("device") if kwargs else None
    for a in args[1:]:
        if isinstance(a, (str, torch.device)):
            dev = a
    return dev is not None and torch.device(dev).type == "cpu" and isinstance(args[0], torch.Tensor) \
        and args[0].device.type != "cpu"


class HostSyncs(TorchFunctionMode):
    """A torch function mode that counts host synchronisations (see the module docstring):
    ``count`` in all, ``by_name`` per call. Counts what *would* synchronise on a device, so a
    CPU run gives the device path's count."""

    def __init__(self):
        super().__init__()
        self.count, self.by_name = 0, Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        hit = (name in _ALWAYS or (name in _INDEXING and _bool_tensor_in(args[1:]))
               or (name == "where" and len(args) + len(kwargs) == 1) or (name == "to" and _to_host(args, kwargs)))
        if hit:
            self.count += 1
            self.by_name[name] += 1
        return func(*args, **kwargs)
