"""The result store: `runs/jobs/<config hash>.json`, one file per job, shared by every
experiment (a scenario in both `fig6` and `full` is computed once), written atomically (temp
file + rename), so a killed sweep loses at most the jobs in flight and a rerun skips every hash
already present. `aggregate` joins one experiment's jobs into its tidy
`runs/<experiment>/results.parquet` (rows sorted, so the same jobs give an identical table)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.atomic import write_frame, write_text
from harness.errors import UserError

SORT_KEYS = ("model", "cluster", "task", "bound", "mode", "policy")


@dataclass(frozen=True, slots=True)
class ResultStore:
    root: Path                       # runs/<experiment>

    @property
    def jobs_dir(self) -> Path:
        """runs/jobs: shared by the experiments under the same runs directory."""
        return self.root.parent / "jobs"

    @property
    def parquet(self) -> Path:
        return self.root / "results.parquet"

    def job_path(self, cfg_hash: str) -> Path:
        return self.jobs_dir / f"{cfg_hash}.json"

    def has(self, cfg_hash: str) -> bool:
        return self.job_path(cfg_hash).exists()

    def write_job(self, cfg_hash: str, rows: list[dict]) -> Path:
        path = self.job_path(cfg_hash)
        write_text(path, json.dumps(rows, sort_keys=True, allow_nan=True))
        return path

    def done(self) -> set[str]:
        return {p.stem for p in self.jobs_dir.glob("*.json")} if self.jobs_dir.exists() else set()

    def aggregate(self, hashes: set[str] | None = None) -> pd.DataFrame:
        """The job rows of `hashes` (default: every stored job) as one tidy table, written to
        results.parquet (atomically). A sweep passes its own hashes, so jobs left from an
        older config (kept on disk, skipped by nothing) never mix into its table."""
        rows = []
        for p in sorted(self.jobs_dir.glob("*.json")):
            if hashes is None or p.stem in hashes:
                rows.extend(json.loads(p.read_text()))
        df = pd.DataFrame(rows)
        if not df.empty:
            df["experiment"] = self.root.name          # the table's experiment, whoever computed the job
        if df.empty:
            raise UserError(f"results: no job results under {self.jobs_dir}")
        keys = [k for k in SORT_KEYS if k in df.columns]
        df = df.sort_values(keys, kind="stable").reset_index(drop=True)
        write_frame(df, self.parquet)
        return df
