# %% [markdown]
# # ExeGPT paper figures from our sweeps
#
# Redraws every paper figure from `runs/<experiment>/results.parquet` (fig6, fig8, full, fig9)
# and the Table 5/6 CSVs, then shows the paper-vs-ours table, exactly as `harness figures`
# writes them into `runs/REPORT.md`. Nothing is recomputed. Missing experiments are skipped:
# run `harness sweep experiment=<name>` first.

# %%
# %matplotlib inline

import pandas as pd

from harness.figures import (
    find_runs,
    headline_table,
    latency_throughput,
    load_all,
    memory_bars,
    monotonicity_heatmap,
    speedup_heatmap,
    throughput_bars,
    winners,
)
from harness.figures.tables import table6_markdown

RUNS = find_runs()
results = load_all(RUNS)
results.groupby("experiment").size()


def exp(name: str) -> pd.DataFrame:
    return results[results["experiment"] == name]


# %% [markdown]
# ## Fig. 6: small/mid models (T5-11B, OPT-13B, GPT-3 39B, GPT-3 101B × S, T, C1)

# %%
if len(exp("fig6")):
    display(throughput_bars(exp("fig6")))  # noqa: F821 - IPython builtin

# %% [markdown]
# ## Fig. 8: large models (GPT-3 101B, 175B, 341B × G, C1, C2)

# %%
if len(exp("fig8")):
    display(throughput_bars(exp("fig8")))  # noqa: F821
    display(latency_throughput(exp("fig8")))  # noqa: F821

# %% [markdown]
# ## Speed-up heat-map over all 120 scenarios (`full`)

# %%
if len(exp("full")):
    display(speedup_heatmap(exp("full")))  # noqa: F821

# %% [markdown]
# ## Fig. 9: per-GPU memory

# %%
if len(exp("fig9")):
    display(memory_bars(exp("fig9")))  # noqa: F821

# %% [markdown]
# ## Tables 5 and 6

# %%
mono_csv, case_csv = RUNS / "table5" / "monotonicity.csv", RUNS / "table6" / "case_study.csv"
mono = pd.read_csv(mono_csv) if mono_csv.exists() else None
case = pd.read_csv(case_csv) if case_csv.exists() else None
bounds = pd.read_csv(RUNS / "table6" / "bounds.csv") if (RUNS / "table6" / "bounds.csv").exists() else None
if mono is not None:
    display(monotonicity_heatmap(mono))  # noqa: F821
if case is not None:
    print(table6_markdown(case, bounds))

# %% [markdown]
# ## Paper vs ours

# %%
claims = headline_table(results, case, bounds, mono)
claims.drop(columns=["paper_value", "ours_value"])

# %%
winners(results)
