# %% [markdown]
# # Quick look at a small sweep
#
# Loads `runs/quick/results.parquet` (from `harness sweep experiment=quick`) and redraws the
# figures with `harness.figures`: nothing is recomputed, every number comes from the table.
# Set `HARNESS_RUNS_DIR` to read another runs folder. CI executes this notebook:
# `.venv/bin/jupytext --set-kernel python3 --execute --to notebook --output - notebooks/quick_look.py > /dev/null`

# %%
# %matplotlib inline

import pandas as pd

from harness.figures import (
    find_runs,
    headline_table,
    latency_throughput,
    load_results,
    speedup_cells,
    speedup_heatmap,
    throughput_bars,
    winners,
)

RUNS = find_runs()
df = load_results(RUNS / "quick" / "results.parquet")
df["experiment"] = "quick"
df = df[df["mode"] == "ours"]          # the sweep runs both readings (mode=ours|paper); one at a time here
print(f"{len(df)} rows, {df[['model', 'cluster', 'task', 'bound']].drop_duplicates().shape[0]} scenarios")
df[["model", "task", "bound", "policy", "status", "throughput_seq_s", "latency_s", "speedup_over_ft"]]

# %% [markdown]
# ## Throughput per policy and bound (paper Fig. 6/8 style)

# %%
throughput_bars(df)

# %% [markdown]
# ## ExeGPT speed-up over FT

# %%
speedup_cells(df)

# %%
speedup_heatmap(df)

# %% [markdown]
# ## Latency vs throughput

# %%
latency_throughput(df)

# %% [markdown]
# ## Which policy ExeGPT chose
# The paper-vs-ours groups need fig6/fig8; on the quick set only the `full`-style count exists,
# so count the choices directly.

# %%
chosen = df[df["policy"] == "exegpt"]
pd.crosstab(chosen["model"] + " " + chosen["task"], chosen["chosen_policy"].fillna(chosen["status"]))

# %%
claims = headline_table(df)           # empty speed-up claims: the quick set is neither fig6 nor fig8
assert {"claim", "paper", "ours", "holds"} <= set(claims.columns)
winners(df)
