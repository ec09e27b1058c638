"""The layer above the kernels: the cell cache, the presets, one encoder, one mean-field, and an
import graph without circles."""
import ast
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import dbm
from dbm import presets
from dbm.result_cache import CellCache, file_hash
from dbm.errors import CheckpointError, ConfigError
from dbm.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- cell cache
def counting(rows=1, arrays=None):
    calls = []

    def compute():
        calls.append(1)
        df = pd.DataFrame({"metric": ["m"] * rows, "value": [float(len(calls))] * rows})
        return (df, arrays) if arrays else df
    return compute, calls


def test_cell_is_computed_once_and_keyed_by_every_input(tmp_path):
    cache = CellCache(tmp_path)
    compute, calls = counting()
    a = cache.cell("fig", {"width": 10, "model": "abc"}, compute)
    b = CellCache(tmp_path).cell("fig", {"model": "abc", "width": 10}, compute)     # key order does not matter
    assert len(calls) == 1 and a.rows.equals(b.rows) and a.meta["key"] == b.meta["key"]
    CellCache(tmp_path).cell("fig", {"width": 10, "model": "abd"}, compute)        # another upstream model
    CellCache(tmp_path, version="2").cell("fig", {"width": 10, "model": "abc"}, compute)   # another code version
    assert len(calls) == 3
    meta = json.loads((tmp_path / "fig" / f"{a.meta['key']}.json").read_text())
    assert meta["inputs"] == {"width": 10, "model": "abc"} and "git_sha" in meta


def test_force_recomputes_owned_cells_once_per_invocation(tmp_path):
    compute, calls = counting()
    CellCache(tmp_path).cell("fig", {"x": 1}, compute)
    forced = CellCache(tmp_path, force=True)
    forced.cell("fig", {"x": 1}, compute)
    forced.cell("fig", {"x": 1}, compute)                      # the same invocation: computed once
    forced.cell("fig", {"x": 1}, compute, owned=False)
    assert len(calls) == 2
    CellCache(tmp_path, force=True).cell("fig", {"x": 1}, compute, owned=False)   # another script's cell: reused
    assert len(calls) == 2


def test_cell_arrays_round_trip_and_plot_only_reload(tmp_path):
    arrays = {"grid": torch.arange(6.0).reshape(2, 3), "samples": torch.ones(4, 2)}
    compute, _ = counting(arrays=arrays)
    cell = CellCache(tmp_path).cell("toy", {"t": "gmm"}, compute)
    again = CellCache(tmp_path).load("toy", cell.meta["key"])
    assert set(again.arrays) == set(arrays) and all(torch.equal(again.arrays[k], v) for k, v in arrays.items())
    with pytest.raises(CheckpointError, match="not found"):
        CellCache(tmp_path).load("toy", "0" * 16)


def test_failed_or_damaged_cells_are_never_read_as_finished(tmp_path):
    cache = CellCache(tmp_path)

    def boom():
        raise RuntimeError("killed mid-cell")
    with pytest.raises(RuntimeError):
        cache.cell("fig", {"x": 2}, boom)
    assert not list((tmp_path / "fig").glob("*.json")) if (tmp_path / "fig").exists() else True
    compute, calls = counting()
    cell = cache.cell("fig", {"x": 2}, compute)
    (tmp_path / "fig" / f"{cell.meta['key']}.csv").write_text("not,a\ncsv")
    (tmp_path / "fig" / f"{cell.meta['key']}.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="damaged"):
        CellCache(tmp_path).cell("fig", {"x": 2}, compute)


def test_run_dir_is_cleared_when_forced(tmp_path):
    path = CellCache(tmp_path).run_dir("zoo", {"seed": 0})
    path.mkdir()
    (path / "metrics.csv").write_text("step,metric,value\n")
    assert CellCache(tmp_path).run_dir("zoo", {"seed": 0}) == path and (path / "metrics.csv").exists()
    assert CellCache(tmp_path, force=True).run_dir("zoo", {"seed": 0}, owned=False) == path
    assert (path / "metrics.csv").exists()
    CellCache(tmp_path, force=True).run_dir("zoo", {"seed": 0})
    assert not (path / "metrics.csv").exists()


def test_file_hash_changes_with_content(tmp_path):
    p = tmp_path / "model.safetensors"
    p.write_bytes(b"a")
    h = file_hash(p)
    p.write_bytes(b"b")
    assert file_hash(p) != h and len(h) == 16


# ---------------------------------------------------------------------------- presets
@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_every_preset_builds_and_trains_by_name(name):
    est = presets.build(name)
    assert isinstance(est, dbm.Estimator) and est.name == presets.PRESETS[name].estimator
    pre = 1 if presets.PRESETS[name].pretrain else 0
    cfg = TrainConfig(estimator=name, pretrain_updates=pre)
    assert type(cfg.build_estimator()) is type(est)


def test_preset_options_and_caps():
    assert presets.resolve("cd-10") == ("cd", {"k": 10})
    assert presets.resolve("ucd-gibbs-lmi", max_steps=5)[1]["max_steps"] == 5
    assert presets.caps("ucd-gibbs", mh_max_steps=7, gibbs_max_steps=9) == {"max_steps": 9}
    assert presets.caps("cd-1", mh_max_steps=7, max_sweeps=3) == {}
    assert presets.caps("ucd-gibbs-cap1000", gibbs_max_steps=9, max_sweeps=3) == {"max_sweeps": 3}   # its own cap
    assert presets.build("ucd-gibbs-cap1000").max_steps == 1000
    assert presets.build("ucd-mh-lmi-mixed").gibbs_sweeps == 1
    with pytest.raises(ConfigError, match="pretrain"):
        TrainConfig(estimator="pcd-pretrained")
    cfg = TrainConfig(estimator="ucd-mh-lmi", estimator_options='{"marginalize": true}')   # JSON text accepted
    assert cfg.estimator_options == {"marginalize": True} and cfg.build_estimator().marginalize


# ---------------------------------------------------------------------------- one of each
@pytest.mark.parametrize("encoding", ["binary", "8bit"])
def test_model_view_is_decode_of_encode(encoding, gen):
    imgs = torch.randint(0, 256, (5, 4, 6), generator=gen, dtype=torch.uint8)
    want = dbm.decode(dbm.encode(imgs, encoding), encoding, (1, 4, 6))
    assert torch.equal(dbm.encoding.model_view(imgs, encoding), want)


def test_signed_padded_round_trip(gen):
    imgs = torch.randint(0, 256, (3, 28, 28), generator=gen, dtype=torch.uint8)
    x = dbm.encoding.to_signed_padded(imgs)
    assert x.shape == (3, 1, 32, 32) and float(x[..., :2, :].max()) == -1.0
    torch.testing.assert_close(dbm.encoding.from_signed_padded(x)[:, 0], imgs.float() / 255)


def test_one_mean_field():
    from dbm.metrics import ais
    assert ais.mean_field is dbm.mean_field


def _imports(path: Path, package: str) -> set[str]:
    """Modules of ``package`` that ``path`` imports at module level or inside functions."""
    mod = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if mod.endswith(".__init__"):
        mod = mod[: -len(".__init__")]
    here = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            names = [name] + [f"{name}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out |= {n for n in names if n.startswith(package)}
    return out


def _import_graph(package: str) -> dict:
    files = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
             for p in (ROOT / package).rglob("*.py")}
    graph = {m: {d for d in _imports(p, package) if d in files and d != m} for m, p in files.items()}
    for m in graph:                                   # a package's __init__ may gather its modules
        if files[m].name == "__init__.py":
            graph[m] = set()
    return graph


def _circle(graph: dict) -> list | None:
    """A circle of the import graph (every import counts, lazy ones inside functions too), or None."""
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return stack + [m, d]
            if not state.get(d):
                found = visit(d, stack + [m])
                if found:
                    return found
        state[m] = 2
        return None
    for m in sorted(graph):
        if not state.get(m):
            found = visit(m, [])
            if found:
                return found
    return None


@pytest.mark.parametrize("package", ["dbm", "reproduce"])
def test_import_graph_has_no_circle(package):
    graph = _import_graph(package)
    circle = _circle(graph)
    assert circle is None, "import circle: " + " -> ".join(circle)
    if package == "dbm":
        assert "dbm.samplers" not in graph["dbm.model"] and "dbm.sufficient_stats" not in graph["dbm.model"]


def test_a_circle_is_found():
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b"}, "b": set()}) is None


def test_git_sha_names_uncommitted_changes_by_their_diff(tmp_path):
    import re
    import subprocess
    from dbm.provenance import environment, git_sha
    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True, text=True)  # noqa: E731
    git("init", "-q")
    (tmp_path / "f.py").write_text("a = 1\n")
    git("add", "f.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    sha = git("rev-parse", "HEAD").stdout.strip()
    assert git_sha(tmp_path) == sha
    (tmp_path / "f.py").write_text("a = 2\n")
    dirty = git_sha(tmp_path)
    assert re.fullmatch(sha + r"-dirty-[0-9a-f]{12}", dirty) and git_sha(tmp_path) == dirty
    (tmp_path / "f.py").write_text("a = 3\n")
    assert git_sha(tmp_path) != dirty
    env = environment("cpu")
    assert {"torchvision", "pytorch-fid", "scipy", "clean_tree"} <= set(env) and env["torchvision"]


def _documented_layers() -> dict:
    """{path as written in docs/architecture.md ("dbm/model.py", "dbm/ebm/"): its layer number}."""
    import re
    layers, layer = {}, 0
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        m = re.match(r"^## (\d+)\.", line)
        if m:
            layer = int(m.group(1))
        elif line.startswith("| `") and layer:
            for name in re.findall(r"`([^`]+)`", line.split("|")[1]):
                layers[name] = layer
    return layers


def _layer_of(module: str, layers: dict) -> int | None:
    path = module.replace(".", "/")
    parts = path.split("/")
    for i in range(len(parts), 0, -1):                # the module's file, else its package folder
        for cand in ("/".join(parts[:i]) + ".py", "/".join(parts[:i]) + "/"):
            if cand in layers:
                return layers[cand]
    return None


def test_library_imports_follow_the_documented_layers():
    layers = _documented_layers()
    files = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
             for p in (ROOT / "dbm").rglob("*.py")}
    unlisted = [m for m, p in files.items() if p.name != "__init__.py" and _layer_of(m, layers) is None]
    assert unlisted == [], f"modules missing from docs/architecture.md: {unlisted}"
    upward = []
    for m, p in files.items():
        if p.name == "__init__.py":                   # a package's __init__ may gather its modules
            continue
        lm = _layer_of(m, layers)
        for d in _imports(p, "dbm"):
            if d in files and d != m and files[d].name != "__init__.py":
                ld = _layer_of(d, layers)
                if ld is not None and ld > lm:
                    upward.append(f"{m} (layer {lm}) imports {d} (layer {ld})")
    assert upward == [], upward


def test_the_layer_check_can_fail():
    layers = {"dbm/model.py": 1, "dbm/train.py": 4}
    assert _layer_of("dbm.model", layers) == 1 and _layer_of("dbm.train", layers) == 4
    assert _layer_of("dbm.ebm.nets", {"dbm/ebm/": 4}) == 4 and _layer_of("dbm.nope", layers) is None
