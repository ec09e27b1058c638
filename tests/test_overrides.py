"""An override of the zoo's training settings reaches every script that trains or loads the zoo's
models (issue 35, item 1): fig25, fig26, fig27 and the zoo's own command resolve the same
``ZooConfig`` from the same flags, and each asks ``zoo.train`` for models with it."""
from __future__ import annotations

import importlib

import pytest

from conftest import synthetic_mnist
from reproduce import zoo


class Asked(Exception):
    """Raised by the stand-in for ``zoo.train``: carries the settings a script asked for."""


def _stop_at_train(monkeypatch):
    def fake(cache, zcfg, dataset, method, seed, *args, **kwargs):
        raise Asked(zcfg)
    monkeypatch.setattr(zoo, "train", fake)


SCRIPTS = {
    "fig25": ("reproduce.fig25_end_to_end", ["--datasets", "mnist"]),
    "fig26": ("reproduce.fig26_fid", ["--datasets", "mnist", "--fid-extractor", "standin"]),
    "fig27": ("reproduce.fig27_inpainting", ["--datasets", "mnist"]),
}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_an_override_reaches_the_models_of_every_script(script, tmp_path, monkeypatch):
    data = synthetic_mnist(tmp_path / "data")
    module, extra = SCRIPTS[script]
    main = importlib.import_module(module).main
    _stop_at_train(monkeypatch)
    argv = ["--quick", "--updates", "7", "--hidden", "12,10", "--data-dir", str(data),
            "--work-dir", str(tmp_path / "runs"), "--out-dir", str(tmp_path / "out"), *extra]
    with pytest.raises(Asked) as asked:
        main(argv)
    zcfg = asked.value.args[0]
    quick = zoo.zoo_config(profile="quick")
    assert zcfg.updates == 7 and tuple(zcfg.hidden) == (12, 10)
    assert zcfg.train_limit == quick.train_limit and zcfg.evals == quick.evals   # the rest: the profile's


def test_the_zoo_command_takes_the_same_override(tmp_path, monkeypatch):
    data = synthetic_mnist(tmp_path / "data")
    _stop_at_train(monkeypatch)
    with pytest.raises(Asked) as asked:
        zoo.main(["--profile", "quick", "--cells", "cd:0", "--updates", "7", "--data-dir", str(data),
                  "--work-dir", str(tmp_path / "runs")])
    zcfg = asked.value.args[0]
    assert zcfg.updates == 7 and zcfg == zoo.ZooConfig(**{**zoo.PROFILES["quick"], "updates": 7})


def test_without_an_override_every_script_resolves_the_profiles_zoo():
    """The scripts' profiles carry the zoo's training settings unchanged."""
    from reproduce import fig25_end_to_end, fig26_fid, fig27_inpainting
    for mod in (fig25_end_to_end, fig26_fid, fig27_inpainting):
        for name, over in mod.PROFILES.items():
            cfg = mod.Config(**over)
            assert zoo.zoo_config(cfg) == zoo.zoo_config(profile=name), (mod.__name__, name)
