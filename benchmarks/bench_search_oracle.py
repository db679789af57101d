"""Branch-and-bound vs the exhaustive fine-grid oracle on Fig. 6 ∪ Fig. 8 (80 scenarios, §5, §7),
in both readings (harness.scheduler.oracle_study). Variants:
- `ours`: mode=ours as searched by default (one forest per policy sharing the incumbent, lazy
  lower corners, N_D probed);
- `ours-independent`: mode=ours, one independent run per box (the search before those three);
- `ours-no-probe`: the forest without the N_D probe (what trusting N_D's monotonicity costs);
- `ours-bm-tp-axes`: mode=ours evaluated, B_m and T_P #GPUs as box axes (monotone_axes=paper,
  independent runs): what enumerating them costs, and what assuming them monotone misses;
- `paper`: mode=paper (Algorithm 1 as written: corners, slack, T_P #GPUs and B_m as axes);
- `paper-enumerated`: mode=paper with B_m and T_P #GPUs enumerated (monotone_axes=measured);
- `paper-bisect-gap`: mode=paper with ours' split and prune rules.
Per variant: pruning ratio (grid points / B&B evaluations, median/min/max), scenarios below
the oracle and beyond eps_T, the worst gap, wall times, and every scenario's row. The table
is also written to runs/search/oracle.csv. Target (issue): median ratio >= 100 with every
scenario within eps_T. Single process, about 10 minutes on the 2-core machine.
"""

from __future__ import annotations

import time
from pathlib import Path

from harness.scheduler.oracle_study import Variant, study, summary
from harness.scheduler.search import SearchOptions
from harness.specs.mode import make_mode

ROOT = Path(__file__).resolve().parents[1]
CSV_PATH = ROOT / "runs" / "search" / "oracle.csv"
EPS_T = 0.01                         # search.eps_throughput_rel's default
TARGET_RATIO = 100.0
INDEPENDENT = SearchOptions(False, False, False)
VARIANTS = (Variant("ours", make_mode("ours")),
            Variant("ours-independent", make_mode("ours"), INDEPENDENT),
            Variant("ours-no-probe", make_mode("ours"), SearchOptions(True, False, True)),
            Variant("ours-bm-tp-axes", make_mode("ours", monotone_axes="paper"), INDEPENDENT),
            Variant("paper", make_mode("paper")),
            Variant("paper-enumerated", make_mode("paper", monotone_axes="measured"), INDEPENDENT),
            Variant("paper-bisect-gap", make_mode("paper", bnb_split="bisect", eps_throughput="gap")))


def run() -> dict:
    t0 = time.perf_counter()
    df = study(VARIANTS, eps=EPS_T, progress=lambda line: print(f"  {line}", flush=True))
    CSV_PATH.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(CSV_PATH, index=False)
    out = {"eps_throughput_rel": EPS_T, "resolution": "fine", "csv": str(CSV_PATH.relative_to(ROOT)),
           "study_s": time.perf_counter() - t0, "target_pruning_ratio_median": TARGET_RATIO}
    for name, s in summary(df).items():
        s["meets_target"] = s["pruning_ratio_median"] >= TARGET_RATIO and s["beyond_eps"] == 0
        rows = df[df["variant"] == name].drop(columns=["variant", "mode"])
        out[name] = {**s, "rows": rows.to_dict(orient="records")}
    return out


if __name__ == "__main__":
    import json
    res = run()
    print(json.dumps({k: ({kk: vv for kk, vv in v.items() if kk != "rows"} if isinstance(v, dict) else v)
                      for k, v in res.items()}, indent=2))
