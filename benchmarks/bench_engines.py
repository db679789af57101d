"""Our torch engine vs ctranslate2 (the FT-equivalent engine) at the same batch, precision and
cores (issue 20 point 4; harness/studies/engines.py), in the bounded form of
harness/conf/experiment/engines_tiny.yaml (opt-20m, FT semantics, batch 8, float32, 1 and 2
threads, 2 rounds alternating the engines, each run in a fresh process). Target: ctranslate2 /
ours <= 1.3 (TARGET_RATIO), a ratio of two runs adjacent in time."""

from __future__ import annotations

import tempfile

from omegaconf import OmegaConf

from harness.config import build_scenario, compose, load_option
from harness.studies.engines import TARGET_RATIO, Settings
from harness.studies.engines import run as run_study


def run() -> dict:
    study = OmegaConf.to_container(load_option("experiment", "engines_tiny").study, resolve=True)
    with tempfile.TemporaryDirectory() as tmp:
        st = Settings.from_study(study, 0, False, tmp)
        specs = {m: build_scenario(compose(["cluster=cpu-2w", f"model={m}"])).model for m in st.models}
        _runs, _div, _steps, s = run_study(st, specs)
    return {"target_ratio": TARGET_RATIO, "max_ratio_ct2_over_ours": s["max_ratio"],
            "met": s["all_within_target"],
            "ratios": {f"{r['model']}_threads_{r['threads']}": round(r["ratio_ct2_over_ours"], 3) for r in s["ratios"]},
            "ours_vs_hf_f32": {t["model"]: t["ours_vs_hf_f32"] for t in s["tokens"]},
            "step_over_bandwidth_floor": {f"{x['model']}_threads_{x['threads']}": round(x["over_floor"], 2)
                                          for x in s["steps"]}}
