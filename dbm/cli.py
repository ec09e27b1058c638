"""Command-line interface: ``dbm-suite <command>`` (after ``pip install``, from any folder), or
``python -m dbm <command>`` from the repository root.

Expected errors (bad settings, missing or corrupt data, a run folder that cannot be resumed or
is in use) print one line on stderr and exit with status 2; a diverged run exits with 3. Pass
``--debug`` (or set DBM_DEBUG=1) to see the traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import EXIT_DIVERGED, EXIT_USER_ERROR, CheckpointError, DivergenceError, UserError
from .limits import MAX_BATCH, MAX_COUNT

__all__ = ["main", "run_main"]


def run_main(fn, argv=None, debug: bool | None = None) -> int:
    """Call ``fn(argv)``; a ``UserError`` becomes one line on stderr and exit status 2, a
    ``DivergenceError`` exit status 3 (tracebacks with ``--debug`` or DBM_DEBUG=1)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if debug is None:
        debug = "--debug" in args or os.environ.get("DBM_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    try:
        return fn(args)
    except (UserError, DivergenceError) as e:
        if debug:
            raise
        kind = "training diverged" if isinstance(e, DivergenceError) else "error"
        print(f"{kind}: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_DIVERGED if isinstance(e, DivergenceError) else EXIT_USER_ERROR


def _int_in(low: int, high: int):
    """An argparse type: an integer in [low, high] (the bounds of ``dbm.config``)."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            n = None
        if n is None or not low <= n <= high:
            raise argparse.ArgumentTypeError(f"expected an integer in [{low}, {high:.0e}], got {text!r}")
        return n
    return parse


_positive_int = _int_in(1, MAX_BATCH)          # chains, images
_steps = _int_in(1, MAX_COUNT)
_nonneg_int = _int_in(0, MAX_COUNT)            # sweeps
_seed = _int_in(-(2 ** 63) + 1, 2 ** 63 - 1)


def _step_size(text: str) -> float:
    """--eps: a finite step size >= 0 (0: the training eps)."""
    try:
        x = float(text)
    except ValueError:
        x = float("nan")
    if not (x >= 0 and x < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite step size >= 0 (0: the training eps), got {text!r}")
    return x


def _check_sizes(text: str) -> list[int]:
    """--sizes of ``check``: two or more positive widths whose even block can be enumerated."""
    from . import exact
    from .errors import ConfigError
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        sizes = []
    if len(sizes) < 2 or min(sizes) < 1:
        raise ConfigError(f"--sizes must be two or more positive layer widths like 3,3,3; got {text!r}")
    even = sum(sizes[0::2])
    if even > exact.MAX_ENUM_BITS or sum(sizes) > 4096:
        raise ConfigError(f"--sizes {text}: the exact gradient enumerates 2^{even} even-block states; at most "
                          f"2^{exact.MAX_ENUM_BITS} (and 4096 units in all) are allowed")
    return sizes


def _check(args) -> int:
    """Compare an estimator with the exact gradient on a random enumerable DBM."""
    import torch
    from . import exact
    from .model import DBM
    from .presets import build
    sizes = _check_sizes(args.sizes)
    g = torch.Generator().manual_seed(args.seed)
    m = DBM(sizes, init="gaussian", sigma=1.0, generator=g)
    with torch.no_grad():
        for b in m.biases:
            b.copy_(0.5 * torch.randn(b.shape, generator=g))
    v = torch.randint(0, 2, (1, sizes[0]), generator=g).float().repeat(args.chains, 1)
    try:
        est = build(args.estimator, **json.loads(args.options))
    except (TypeError, ValueError) as e:
        from .errors import ConfigError
        raise ConfigError(f"--options {args.options!r}: {e}") from None
    est_g, _, info = est.chain_estimates(m, v, None, g)
    se = est_g.std(0) / args.chains ** 0.5
    z = (est_g.mean(0) - exact.exact_gradient(m, v[:1])) / se
    print(f"{est!r} on {sizes}, {args.chains} chains: max |z| = {z.abs().max():.2f} "
          f"over {z.numel()} parameters")
    print(json.dumps({k: round(v, 4) for k, v in info.summary().items()}))
    return 0


def _train(args, config_cls, trainer_cls) -> int:
    from .config import config_from_args
    from .run import RunDir
    cfg = config_from_args(args, config_cls)            # validated: ConfigError before any work
    if args.resume and args.force:
        raise CheckpointError("--resume and --force contradict each other; pick one")
    if args.resume and not RunDir(cfg.out_dir, trainer_cls.WEIGHTS).checkpoints():     # before anything is created
        raise CheckpointError(f"--resume: {cfg.out_dir} holds no checkpoint to resume; run without --resume")
    if args.force:
        run_dir = RunDir(cfg.out_dir, trainer_cls.WEIGHTS)
        with run_dir.locked():
            run_dir.clear()
    if args.download and cfg.dataset in ("mnist", "fashion-mnist"):
        from .data import load_images
        load_images(cfg.dataset, "train", cfg.data_dir, download=True)
    trainer = trainer_cls(cfg)
    if args.resume:
        if not trainer.resume():
            raise CheckpointError(f"--resume: {cfg.out_dir} holds no checkpoint to resume; run without --resume")
        print(f"resumed {cfg.out_dir} at update {trainer.step}")
    trainer.run()
    print(f"wrote the checkpoint and metrics.csv in {cfg.out_dir}")
    return 0


def _sample_ebm(args) -> int:
    """Long-run sampling from an EBM checkpoint: final states (.pt), the per-step trace (CSV) and,
    for images, a PNG grid."""
    import torch
    from .ebm.train import fresh_start, long_run, load_ebm
    from .provenance import write_csv
    path = Path(args.run) / "net.safetensors"
    if not path.is_file():
        raise CheckpointError(f"{path} not found: pass the folder of an EBM run (python -m dbm train-ebm --out-dir ...)")
    net, cfg = load_ebm(path, args.device)
    g = torch.Generator(device=args.device).manual_seed(args.seed)
    x0 = fresh_start(cfg, args.n, g, kind=args.init)
    x, trace = long_run(net.eval(), x0, args.steps, args.eps or cfg.eps, g, mala=args.mala,
                        record_every=max(1, args.steps // 1000))
    out = Path(args.out or Path(args.run) / f"long_run_{args.steps}")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(x.cpu(), out.with_suffix(".pt"))
    write_csv(trace, out.with_suffix(".csv"))
    if len(net.shape) == 3:
        from torchvision.utils import save_image
        save_image((x[:64].cpu() + 1) / 2, out.with_suffix(".png"), nrow=8)
    print(f"final mean energy {trace.energy.iloc[-1]:.4g}, acceptance {trace.accept.mean():.3f}; "
          f"wrote {out}.pt/.csv" + ("/.png" if len(net.shape) == 3 else ""))
    return 0


def _sample(args) -> int:
    """``python -m dbm sample RUN_DIR``: samples of a trained DBM by kind (``dbm.metrics.samples``:
    local modes, one sweep after them, and block-Gibbs chains of --sweeps from noise and from the
    mode), each kind as a PNG grid and as a folder of PNG images that ``python -m pytorch_fid``
    reads, plus their statistics against the test set when the data set is found."""
    import torch
    from .metrics.samples import gibbs_chains, modes
    from .train import load_model
    path = Path(args.run) / "model.safetensors"
    if not path.is_file():
        raise CheckpointError(f"{path} not found: pass the folder of a DBM run (python -m dbm train --out-dir ...)")
    model, meta = load_model(path, args.device)
    side = int(round(model.layer_sizes[0] ** 0.5))
    if side * side != model.layer_sizes[0]:
        raise CheckpointError(f"{path}: {model.layer_sizes[0]} visible units are not a square image")
    g = torch.Generator(device=args.device).manual_seed(args.seed)
    mode, swept, _ = modes(model, args.n, g)
    kinds = {"mode": mode[0], "mode+1": swept[0]}
    for start, xs in (("noise", model.random_state(args.n, g)), ("mode", mode)):
        if args.sweeps:
            vs, _ = gibbs_chains(model, xs, (args.sweeps,), g)
            kinds[f"gibbs-{args.sweeps}-{start}"] = vs[args.sweeps]
    out = Path(args.out or Path(args.run) / "samples")
    for kind, v in kinds.items():
        _save_folder(v.reshape(-1, 1, side, side).float().cpu(), out / kind, out / f"{kind}.png")
    dataset = json.loads(meta.get("config", "{}")).get("dataset", "mnist")
    print(f"wrote {len(kinds)} kinds x {args.n} images under {out} ('mode' and 'mode+1' are local modes and "
          f"one sweep after them, not MCMC samples; 'gibbs-*' are block-Gibbs chains); FID against the "
          f"binarised test set: dbm-suite export-images --dataset {dataset} --out {out / 'reference'} && "
          f"python -m pytorch_fid {out / next((k for k in kinds if k.startswith('gibbs-')), 'mode')} "
          f"{out / 'reference'}")
    return 0


def _save_folder(images, folder: Path, grid: Path | None = None) -> None:
    """(N, C, H, W) images in [0, 1] as folder/00000.png ... (the folder that pytorch_fid reads),
    and the first 64 as one grid PNG."""
    from torchvision.utils import save_image
    folder.mkdir(parents=True, exist_ok=True)
    if grid is not None:
        save_image(images[:64], grid, nrow=8)
    for i, img in enumerate(images):
        save_image(img, folder / f"{i:05d}.png")


def _export_images(args) -> int:
    """``export-images``: a data set split as a folder of PNG images, binarised as the DBMs see it
    (pixel / 255 > 0.5) unless --no-binarize: the reference folder for ``python -m pytorch_fid``."""
    from .data import load_images
    from .encoding import encode_binary
    x = load_images(args.dataset, args.split, args.data_dir)
    x = x[:args.n] if args.n else x
    side = x.shape[-1]
    imgs = encode_binary(x).reshape(-1, 1, side, side) if args.binarize else x.reshape(-1, 1, side, side) / 255.0
    _save_folder(imgs.float(), Path(args.out))
    print(f"wrote {len(imgs)} {'binarised ' if args.binarize else ''}{args.dataset} {args.split} images to {args.out}")
    return 0


def main(argv=None, prog: str = "python -m dbm") -> int:
    return run_main(lambda a: _main(a, prog), argv)


COMMANDS = {                   # name -> help; a command's arguments (and torch) load only when it is run
    "estimators": "list the gradient estimator presets (--estimator of train and check)",
    "check": "z-scores of an estimator against the exact gradient",
    "train": "train a DBM (checkpoints, --resume)",
    "train-gan": "train a WGAN-GP / WGAN baseline (checkpoints, --resume)",
    "train-ebm": "train an EBM by short-run Langevin ML (EBM anatomy) (checkpoints, --resume)",
    "sample": "samples of a trained DBM by kind: PNG grids and image folders (pytorch_fid)",
    "sample-ebm": "long-run Langevin / MALA sampling from an EBM checkpoint",
    "export-images": "a data set split as a folder of PNG images: the FID reference for `sample`",
}
_TRAINERS = {"train": ("dbm.train", "TrainConfig", "Trainer"), "train-gan": ("dbm.baselines.train_gan", "GANConfig",
             "GANTrainer"), "train-ebm": ("dbm.ebm.train", "EBMConfig", "EBMTrainer")}


def _trainer(command: str):
    import importlib
    module, config, trainer = _TRAINERS[command]
    mod = importlib.import_module(module)
    return getattr(mod, config), getattr(mod, trainer)


def _arguments(name: str, c: argparse.ArgumentParser) -> None:
    """Add command ``name``'s arguments to its parser ``c``."""
    if name == "check":
        from .presets import PRESETS
        c.add_argument("--estimator", default="ucd-mh-lmi", choices=list(PRESETS), help="the preset")
        c.add_argument("--options", default="{}", help='JSON over the preset\'s options, e.g. \'{"marginalize": true}\'')
        c.add_argument("--sizes", default="3,3,3", help="layer widths, visible first")
        c.add_argument("--chains", type=_positive_int, default=20000, help="chains (per-chain estimates)")
        c.add_argument("--seed", type=_seed, default=0, help="seed of the model and the chains")
    elif name in _TRAINERS:
        from .config import add_config_args
        add_config_args(c, _trainer(name)[0])
        c.add_argument("--resume", action="store_true",
                       help="continue the run in --out-dir from its newest checkpoint (an error if there is none)")
        c.add_argument("--force", action="store_true",
                       help="delete the checkpoints and metrics in --out-dir and start again")
        c.add_argument("--download", action="store_true", help="let torchvision download the data set")
    elif name == "sample-ebm":
        c.add_argument("run", help="the run folder holding net.safetensors")
        c.add_argument("--n", type=_positive_int, default=64, help="chains")
        c.add_argument("--steps", type=_steps, default=10000, help="Langevin steps")
        c.add_argument("--eps", type=_step_size, default=0.0, help="step size (0: the training eps)")
        c.add_argument("--init", default="uniform", choices=("uniform", "gaussian"), help="the chains' start")
        c.add_argument("--mala", action="store_true", help="Metropolis-adjusted (records acceptance rates)")
        c.add_argument("--seed", type=_seed, default=0, help="seed of the chains")
        c.add_argument("--device", default="cpu", help="torch device")
        c.add_argument("--out", default=None, help="output path without suffix (None: <run>/long_run_<steps>)")
    elif name == "sample":
        c.add_argument("run", help="the run folder holding model.safetensors")
        c.add_argument("--n", type=_positive_int, default=64, help="images per kind")
        c.add_argument("--sweeps", type=_nonneg_int, default=1000, help="block-Gibbs sweeps of the MCMC kinds (0: none)")
        c.add_argument("--seed", type=_seed, default=0, help="seed of the chains")
        c.add_argument("--device", default="cpu", help="torch device")
        c.add_argument("--out", default=None, help="output folder (None: <run>/samples)")
    elif name == "export-images":
        c.add_argument("--dataset", default="mnist", choices=("mnist", "fashion-mnist"), help="the data set")
        c.add_argument("--split", default="test", choices=("train", "test"), help="its split")
        c.add_argument("--n", type=_positive_int, default=None, help="the first n images (None: all)")
        c.add_argument("--binarize", action=argparse.BooleanOptionalAction, default=True,
                       help="threshold at pixel / 255 > 0.5, the DBMs' domain")
        c.add_argument("--data-dir", default=None, help="where the IDX files are (None: $DBM_DATA_DIR, ../shared/data)")
        c.add_argument("--out", required=True, help="the folder to write")


def _parser(prog: str, command: str | None) -> argparse.ArgumentParser:
    """The parser, with the arguments of ``command`` only (None: the list of commands)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show tracebacks of expected errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in COMMANDS.items():
        fmt = argparse.HelpFormatter if name in _TRAINERS else argparse.ArgumentDefaultsHelpFormatter
        c = sub.add_parser(name, help=text, description=text, formatter_class=fmt)
        if name == command:
            _arguments(name, c)
    return p


def _main(argv, prog: str = "python -m dbm") -> int:
    args = _parser(prog, next((a for a in argv if a in COMMANDS), None)).parse_args(argv)
    if args.command == "sample":
        return _sample(args)
    if args.command == "sample-ebm":
        return _sample_ebm(args)
    if args.command == "export-images":
        return _export_images(args)
    if args.command in _TRAINERS:
        return _train(args, *_trainer(args.command))
    if args.command == "estimators":
        from .presets import PRESETS
        for name, p in PRESETS.items():
            opts = json.dumps(p.options) if p.options else ""
            print(f"{name:24s} {p.summary}" + (f"  [{p.estimator} {opts}]" if name != p.estimator else ""))
        return 0
    return _check(args)
