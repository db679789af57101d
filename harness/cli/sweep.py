"""`harness sweep experiment=<name> [overrides]`: run an experiment's Hydra multirun with a
progress bar (jobs done / total, ETA), skip jobs already stored (same config hash), and
aggregate everything into `runs/<experiment>/results.parquet`.

The sweep itself is Hydra's (`python -m harness.app --multirun`), so the launcher is one
override: joblib (default, both cores), `hydra/launcher=ray` (local Ray), or
`hydra/launcher=submitit_slurm` on a Slurm cluster. Every job config is composed and
validated here first: a wrong value fails before any job starts.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf
from tqdm import tqdm

from harness.config import build_scenario, compose, group_options, load_option, searchpath_overrides
from harness.errors import UserError, unknown_name
from harness.results import ResultStore, config_hash


def _split(overrides: list[str]) -> tuple[str, dict[str, str], list[str]]:
    exp, kv, rest = None, {}, []
    for o in overrides:
        key, _, value = o.partition("=")
        if key == "experiment":
            exp = value
        elif "=" in o and not key.startswith(("hydra", "+", "~")):
            kv[key] = value
        else:
            rest.append(o)
    if exp is None:
        raise UserError(f"experiment: missing; valid: {', '.join(group_options('experiment'))}")
    if exp not in group_options("experiment"):
        raise unknown_name("experiment", exp, group_options("experiment"))
    return exp, kv, rest


def plan_jobs(overrides: list[str]) -> tuple[str, list[list[str]], list[str], dict[str, str]]:
    """(experiment, per-job override lists, pass-through overrides, swept params)."""
    exp, kv, rest = _split(overrides)
    spec = load_option("experiment", exp)
    params = {k: str(v) for k, v in (OmegaConf.select(spec, "hydra.sweeper.params") or {}).items()}
    params.update({k: v for k, v in kv.items() if k in params})      # narrow a swept key
    fixed = [f"{k}={v}" for k, v in kv.items() if k not in params]
    axes = [[f"{k}={v}" for v in vals.split(",")] for k, vals in params.items()]
    jobs = [[f"experiment={exp}", *fixed, *rest, *combo] for combo in itertools.product(*axes)] if axes \
        else [[f"experiment={exp}", *fixed, *rest]]
    return exp, jobs, [*fixed, *rest], params


def sweep(overrides: list[str]) -> None:
    """Run an experiment's sweep (resumable, progress bar) and write runs/<experiment>/results.parquet."""
    exp, jobs, passthrough, params = plan_jobs(overrides)
    hashes, runs_dir = [], None
    for job in jobs:                                   # validate every job before any runs
        cfg = compose([o for o in job if not o.startswith("hydra")])
        build_scenario(cfg)
        runs_dir = Path(str(cfg.runs_dir))
        hashes.append(config_hash(OmegaConf.to_container(cfg, resolve=True)))
    store = ResultStore(runs_dir / exp)
    todo = set(hashes) - store.done()
    print(f"{exp}: {len(jobs)} jobs, {len(jobs) - len(todo)} already stored -> {store.root}", file=sys.stderr)
    if todo:
        _run_multirun(exp, passthrough, params, store, set(hashes))
    df = store.aggregate(set(hashes))
    counts = df[df["policy"] == "exegpt"]["status"].value_counts().to_dict()
    print(f"{exp}: wrote {store.parquet} ({len(df)} rows; jobs {counts})", file=sys.stderr)
    missing = set(hashes) - store.done()
    if missing:
        raise UserError(f"sweep: {len(missing)} of {len(jobs)} jobs left no result (did harness/conf/ change during "
                        f"the sweep?); see {store.root}/hydra/sweep.log")


def _run_multirun(exp: str, passthrough: list[str], params: dict[str, str], store: ResultStore,
                  expected: set[str]) -> None:
    cmd = [sys.executable, "-m", "harness.app", "--multirun", f"experiment={exp}", *passthrough,
           *(f"{k}={v}" for k, v in params.items()), *searchpath_overrides()]
    log = store.root / "hydra" / "sweep.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out, tqdm(total=len(expected), initial=len(expected & store.done()),
                                      desc=exp, unit="job", file=sys.stderr) as bar:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            time.sleep(0.5)
            bar.update(len(expected & store.done()) - bar.n)
        bar.update(len(expected & store.done()) - bar.n)
    if proc.returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["(empty log)"]
        raise UserError(f"sweep: hydra multirun exited {proc.returncode}: {tail[0]} (log: {log})")
