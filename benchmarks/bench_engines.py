"""Our torch engine vs ctranslate2 (the FT-equivalent engine) at the same batch, precision and
cores (issue 20 point 4; harness/studies/engines.py): opt-20m, FT semantics, batch 8, float32,
1 and 2 threads, 2 rounds alternating the engines, each run in a fresh process. Target:
ctranslate2 / ours <= 1.3 (TARGET_RATIO), a ratio of two runs adjacent in time."""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness.config import build_scenario, compose
from harness.studies.engines import TARGET_RATIO, Settings
from harness.studies.engines import run as run_study


def run() -> dict:
    spec = build_scenario(compose(["cluster=cpu-2w", "model=opt-20m"])).model
    with tempfile.TemporaryDirectory() as tmp:
        st = Settings(("opt-20m",), "T-cpu", 32, 8, (1, 2), 2, 30, 0, False, Path(tmp))
        _runs, _div, _steps, s = run_study(st, {"opt-20m": spec})
    return {"target_ratio": TARGET_RATIO, "max_ratio_ct2_over_ours": s["max_ratio"],
            "met": s["all_within_target"],
            "ratios": {f"threads_{r['threads']}": round(r["ratio_ct2_over_ours"], 3) for r in s["ratios"]},
            "ours_vs_hf_f32": s["tokens"][0]["ours_vs_hf_f32"],
            "step_over_bandwidth_floor": {f"threads_{x['threads']}": round(x["over_floor"], 2) for x in s["steps"]}}
