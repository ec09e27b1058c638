"""Command-line interface: ``python -m dbm <command>``."""
from __future__ import annotations

import argparse
import json

import torch

from . import exact
from .estimators import ESTIMATORS, estimator
from .model import DBM


def _check(args) -> int:
    """Compare an estimator with the exact gradient on a random enumerable DBM."""
    sizes = [int(s) for s in args.sizes.split(",")]
    g = torch.Generator().manual_seed(args.seed)
    m = DBM(sizes, init="gaussian", sigma=1.0, generator=g)
    with torch.no_grad():
        for b in m.biases:
            b.copy_(0.5 * torch.randn(b.shape, generator=g))
    v = torch.randint(0, 2, (1, sizes[0]), generator=g).float().repeat(args.chains, 1)
    est = estimator(args.estimator, **json.loads(args.options))
    est_g, info = est.chain_estimates(m, v, g)
    se = est_g.std(0) / args.chains ** 0.5
    z = (est_g.mean(0) - exact.exact_gradient(m, v[:1])) / se
    print(f"{est!r} on {sizes}, {args.chains} chains: max |z| = {z.abs().max():.2f} "
          f"over {z.numel()} parameters")
    print(json.dumps({k: round(v, 4) for k, v in info.summary().items()}))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dbm", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("estimators", help="list the gradient estimators")
    c = sub.add_parser("check", help="z-scores of an estimator against the exact gradient")
    c.add_argument("--estimator", default="ucd-mh-lmi", choices=sorted(ESTIMATORS))
    c.add_argument("--options", default="{}", help='JSON, e.g. \'{"marginalize": true}\'')
    c.add_argument("--sizes", default="3,3,3")
    c.add_argument("--chains", type=int, default=20000)
    c.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.command == "estimators":
        for name, cls in ESTIMATORS.items():
            print(f"{name:24s} {cls.__doc__.strip().splitlines()[0]}")
        return 0
    return _check(args)
