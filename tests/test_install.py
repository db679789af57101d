"""The wheel runs anywhere (issue 19): built from the tracked tree, installed into a fresh
virtualenv, run in an empty directory with no checkout, no `../shared` and no repository on
the path; and an external package (examples/harness-example-policy: a policy by entry point,
its YAML, a model and an experiment by a Hydra SearchPathPlugin) installed beside it is swept.

The fresh venv gets exegpt-harness and the example from their wheels (`--no-deps`); their
dependencies come from this venv's site-packages through a `.pth` line (a plain path: the
editable install's own `.pth` hook there is not run, so `harness` can only come from the
wheel; the first test checks it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pandas as pd
import pytest

from harness.data.manifest import load_manifest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "harness-example-policy"


def _run(cmd, cwd, env=None, timeout=600) -> str:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\n{r.stdout[-1500:]}\n{r.stderr[-3000:]}"
    return r.stdout


def _tracked_copy(src: Path, dst: Path) -> Path:
    """The files a clean clone would have (tracked, plus new files git does not ignore)."""
    listed = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], src).split("\0")
    for rel in filter(None, listed):
        if (src / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            (dst / rel).write_bytes((src / rel).read_bytes())
    return dst


def _wheel(src: Path, out: Path) -> Path:
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
          str(src)], src)
    return max(out.glob("*.whl"), key=lambda p: p.stat().st_mtime)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """(venv bin dir, environment, empty work dir) with both wheels installed."""
    root = tmp_path_factory.mktemp("install")
    src = _tracked_copy(REPO, root / "src")
    wheels = root / "wheels"
    harness_whl = _wheel(src, wheels)
    example_whl = _wheel(src / "examples" / "harness-example-policy", wheels)
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=False)
    site = next(env_dir.glob("lib/python*/site-packages"))
    _run([sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install", "-q",
          "--no-deps", "--no-index", str(harness_whl), str(example_whl)], root)
    (site / "_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = root / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "PYTHON"))}
    env.update(XDG_DATA_HOME=str(root / "xdg"), PATH=f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    return env_dir / "bin", env, work, harness_whl


def test_the_wheel_carries_the_configs_the_fitted_constants_and_the_manifest(fresh) -> None:
    import zipfile
    names = set(zipfile.ZipFile(fresh[3]).namelist())
    assert {"harness/conf/config.yaml", "harness/conf/experiment/quick.yaml", "harness/conf/model/opt-13b.yaml",
            "harness/cost_model/fitted/analytic-v1.json", "harness/data/manifest.json",
            "harness/cost_model/measured/h100_layer_probe.csv"} <= names   # the project's own H100 probe
    # none of the upstream data (harness data fetch gets those)
    upstream = {f.rel_path.rpartition("/")[2] for d in load_manifest() for f in d.files}
    assert not [n for n in names if n.rpartition("/")[2] in upstream]


def test_what_the_default_config_needs_is_a_core_dependency(fresh) -> None:
    """The fresh venv borrows this venv's packages, so a dependency missing from the wheel's
    metadata would go unseen there: the default launcher's plugin must be a core one (a plain
    `pip install exegpt-harness` failed on `hydra/launcher/joblib` before)."""
    import zipfile
    whl = zipfile.ZipFile(fresh[3])
    meta = whl.read(next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    core = {line.split(":", 1)[1].split(";")[0].strip().split(">")[0].split("=")[0].split("[")[0].strip()
            for line in meta.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line}
    config = (REPO / "harness" / "conf" / "config.yaml").read_text()
    launcher = config.split("override hydra/launcher:")[1].split()[0]
    assert f"hydra-{launcher}-launcher" in core
    assert {"hydra-core", "omegaconf", "pandas", "pyarrow", "platformdirs", "tabulate"} <= core


def test_harness_runs_from_the_wheel_in_an_empty_directory(fresh) -> None:
    bin_dir, env, work, _ = fresh
    where = _run([bin_dir / "python", "-c", "import harness; print(harness.__file__)"], work, env)
    assert str(bin_dir.parent) in where and str(REPO) not in where
    shown = json.loads(_run([bin_dir / "harness", "show"], work, env))
    assert shown["paths"]["shared"] == str(Path(env["XDG_DATA_HOME"]) / "exegpt-harness")  # platformdirs
    found = json.loads(_run([bin_dir / "harness", "search", "bound=p30", "search.resolution=coarse"], work, env))
    assert found["status"] == "ok" and found["speedup_over_ft"] > 1
    _run([bin_dir / "harness", "sweep", "experiment=quick"], work, env)
    df = pd.read_parquet(work / "runs" / "quick" / "results.parquet")
    assert len(df[df.policy == "exegpt"]) == 16 and (df[df.policy == "exegpt"].status == "ok").all()
    _run([bin_dir / "harness", "figures"], work, env)
    assert (work / "runs" / "REPORT.md").is_file()
    status = _run([bin_dir / "harness", "data", "status"], work, env)
    assert "29 missing" in status and "get it: harness data fetch vidur-profiles" in status


def test_an_external_package_adds_a_policy_a_model_and_an_experiment(fresh) -> None:
    bin_dir, env, work, _ = fresh
    shown = json.loads(_run([bin_dir / "harness", "show", "model=opt-6.7b"], work, env))
    assert 6.6 < shown["model"]["params_b"] < 6.9                 # OPT-6.7B (Zhang et al. 2022)
    _run([bin_dir / "harness", "sweep", "experiment=example"], work, env)
    df = pd.read_parquet(work / "runs" / "example" / "results.parquet")
    mine = df[df.policy == "refill-threshold"]
    assert len(mine) == 4 and (mine.status == "ok").all() and (mine.throughput_seq_s > 0).all()
    assert set(df.model) == {"opt-6.7b"}


def test_data_fetched_into_the_user_data_dir_serve_calibrate_and_fig10(fresh) -> None:
    """From a `file://` mirror of ../shared into the platformdirs directory (the default
    paths.shared of an installed harness), then the two commands that read the data."""
    from conftest import requires_shared
    shared = requires_shared("profiles/vidur", "traces", "reference/ft-published-calibration.csv")
    bin_dir, env, work, _ = fresh
    _run([bin_dir / "harness", "data", "fetch", "--mirror", shared.as_uri()], work, env)
    assert "missing" not in _run([bin_dir / "harness", "data", "status"], work, env)
    report = _run([bin_dir / "harness", "calibrate"], work, env)
    # the FT table's first row (ft-published-calibration.csv: GPT 20B, TP 1, batch 1, 225 ms)
    assert "GPT 20B    1     1   20    8        225.0" in report
    _run([bin_dir / "harness", "traces"], work, env)
    assert list((work / "runs" / "fig10").glob("*.csv")) or list((work / "runs" / "fig10").glob("*.parquet"))
