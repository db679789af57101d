"""Fig. 9 as the paper ran it (§8): per-GPU memory of each policy's chosen schedule, split into
weights / KV cache / other (activations, buffers), for every GPU group of the schedule:
RRA and FT one group (`all` stages), WAA its `encode` and `decode` GPUs separately.

The schedules are the ones the sweep rows hold: FT tuned the paper's way under the bound
(§7, `best_ft`) and each policy's best under the bound (XScheduler, §5). They are re-planned
here and each policy reports its memory per GPU group itself (`Policy.memory_groups`: weights,
KV cache and one layer's activations per GPU of every stage; harness/policies/common.py
`stage_memory`). A stage of TP degree d is d GPUs, each holding the stage's per-GPU bytes.

`weight_overhead_claims` reads the paper's "WAA uses 18% (OPT) / 29% (GPT-3) more weight
memory than FT" (§8) under several definitions (`DEFINITIONS`), none tuned to the paper.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence

import pandas as pd

from harness.cost_model.memory import MemoryUse
from harness.policies import Context, get_policy
from harness.policies.base import Plan, Policy
from harness.policies.pipeline import Stage
from harness.scheduler.bounds import best_ft, derive_bounds
from harness.scheduler.search import DEFAULT_POLICIES, find_schedule
from harness.specs.paper import FIG9_MODELS, FIG9_TASKS, PAPER_CLUSTER, WAA_WEIGHT_OVERHEAD_PCT

MEMORY_POLICIES = ("ft", *DEFAULT_POLICIES)
NEAR_LOW, NEAR_HIGH = 0.8, 1.25          # "near the paper": the report's ±25% verdict band (headline.py)
FAMILIES = {"opt": ("opt-", "OPT"), "gpt3": ("gpt3-", "GPT-3")}     # §8 names the claim per family
COLUMNS = ["model", "cluster", "task", "mode", "bound_s", "policy", "chosen", "status", "reason", "group",
           "gpus", "stages", "weights_bytes_per_gpu", "kv_bytes_per_gpu", "other_bytes_per_gpu",
           "total_bytes_per_gpu", "max_weights_bytes_per_gpu", "max_total_bytes_per_gpu",
           "plan_memory_per_gpu_bytes", "gpu_memory_bytes", "throughput_seq_s", "latency_s", "knobs"]


def stage_groups(policy: Policy, ctx: Context, plan: Plan) -> dict[str, list[tuple[Stage, MemoryUse]]]:
    """Every stage of each GPU group of a feasible `plan`, with one GPU's memory
    (`Policy.memory_groups`: the policy's own accounting)."""
    return policy.memory_groups(ctx, plan)


def group_row(stages: list[tuple[Stage, MemoryUse]]) -> dict:
    """Per-GPU means over the group's GPUs (a stage of TP degree d counts d times) and maxima."""
    gpus = sum(st.tp_degree for st, _ in stages)

    def mean(f: Callable[[MemoryUse], float]) -> float:
        return sum(f(m) * st.tp_degree for st, m in stages) / gpus
    return {"gpus": gpus, "stages": len(stages), "weights_bytes_per_gpu": mean(lambda m: m.weights_bytes),
            "kv_bytes_per_gpu": mean(lambda m: m.kv_cache_bytes), "other_bytes_per_gpu": mean(lambda m: m.activation_bytes),
            "total_bytes_per_gpu": mean(lambda m: m.total_bytes),
            "max_weights_bytes_per_gpu": max(m.weights_bytes for _, m in stages),
            "max_total_bytes_per_gpu": max(m.total_bytes for _, m in stages)}


def chosen_schedules(ctx: Context, bound_s: float, resolution: str = "fine") -> dict[str, dict]:
    """Per policy: knobs, throughput, latency of its best schedule under the bound (FT: §7's
    tuning; the others: XScheduler, §5), or the reason it has none; `chosen` marks ExeGPT's."""
    bounds = derive_bounds(ctx)
    ft = best_ft(ctx, bound_s, bounds)
    out = {"ft": ({"knobs": {"batch_size": ft["batch_size"]}, "throughput_seq_s": ft["throughput_seq_s"],
                   "latency_s": ft["latency_s"]} if ft else {"reason": bounds.reason or "no FT batch under the bound"})}
    res = find_schedule(ctx, bound_s, DEFAULT_POLICIES, resolution)
    for pr in res.per_policy:
        out[pr.policy] = ({"knobs": dict(pr.best.knobs), "throughput_seq_s": pr.best.throughput_seq_s,
                           "latency_s": pr.best.latency_s} if pr.best else {"reason": pr.reason})
    for name, entry in out.items():
        entry["chosen"] = res.best is not None and res.best.policy == name
    return out


def memory_groups(ctx: Context, bound_s: float, resolution: str = "fine") -> pd.DataFrame:
    """One row per policy x GPU group of the schedule each policy chooses under `bound_s`
    (columns `COLUMNS`; a policy without a schedule is one row, status NS, group None)."""
    base = {"model": ctx.model.name, "cluster": ctx.cluster.name, "task": ctx.workload.name,
            "mode": ctx.mode.label(), "bound_s": bound_s, "gpu_memory_bytes": ctx.cluster.gpu.memory_bytes}
    rows = []
    for name, entry in chosen_schedules(ctx, bound_s, resolution).items():
        if "knobs" not in entry:
            rows.append({**base, "policy": name, "chosen": False, "status": "NS", "reason": entry["reason"]})
            continue
        policy = get_policy(name)
        plan = policy.plan(ctx, entry["knobs"])
        common = {**base, "policy": name, "chosen": entry["chosen"], "status": "ok", "reason": "",
                  "plan_memory_per_gpu_bytes": plan.memory_per_gpu_bytes,
                  "throughput_seq_s": entry["throughput_seq_s"], "latency_s": entry["latency_s"],
                  "knobs": json.dumps(entry["knobs"], sort_keys=True)}
        rows += [{**common, "group": g, **group_row(st)} for g, st in stage_groups(policy, ctx, plan).items()]
    return pd.DataFrame(rows, columns=COLUMNS)


# ---- §8: WAA's weight overhead over FT ----------------------------------------------------
def _wmean(rows: pd.DataFrame, col: str) -> float:
    """GPU-weighted mean of a per-GPU column over groups."""
    return float((rows[col] * rows["gpus"]).sum() / rows["gpus"].sum())


def _share(rows: pd.DataFrame) -> float:
    return float((rows["weights_bytes_per_gpu"] / rows["total_bytes_per_gpu"] * rows["gpus"]).sum()
                 / rows["gpus"].sum())


def _group(rows: pd.DataFrame, name: str) -> pd.DataFrame:
    return rows[rows["group"] == name]


# name -> (what it compares, f(WAA's group rows, FT's group rows) -> % or percentage points)
DEFINITIONS: dict[str, tuple[str, Callable[[pd.DataFrame, pd.DataFrame], float]]] = {
    "cluster mean per GPU": (
        "mean weight bytes per GPU over the whole cluster (= all weights / N, so a decoder-only "
        "model's two copies count twice; what the sweep tables' weight_bytes_per_gpu holds), WAA / FT - 1",
        lambda w, f: 100 * (_wmean(w, "weights_bytes_per_gpu") / _wmean(f, "weights_bytes_per_gpu") - 1)),
    "decode GPUs per GPU": (
        "mean weight bytes per decode GPU of WAA over FT's mean per GPU, - 1",
        lambda w, f: 100 * (_wmean(_group(w, "decode"), "weights_bytes_per_gpu")
                            / _wmean(f, "weights_bytes_per_gpu") - 1)),
    "encode GPUs per GPU": (
        "mean weight bytes per encode GPU of WAA over FT's mean per GPU, - 1",
        lambda w, f: 100 * (_wmean(_group(w, "encode"), "weights_bytes_per_gpu")
                            / _wmean(f, "weights_bytes_per_gpu") - 1)),
    "most loaded GPU": (
        "weight bytes of the GPU holding the most weights, WAA / FT - 1",
        lambda w, f: 100 * (w["max_weights_bytes_per_gpu"].max() / f["max_weights_bytes_per_gpu"].max() - 1)),
    "share of memory in use (points)": (
        "weights' share of each GPU's memory in use, GPU-mean, WAA minus FT in percentage points",
        lambda w, f: 100 * (_share(w) - _share(f))),
    "share of device memory (points)": (
        "mean weight bytes per GPU as a share of the device's memory, WAA minus FT in percentage points",
        lambda w, f: 100 * (_wmean(w, "weights_bytes_per_gpu") - _wmean(f, "weights_bytes_per_gpu"))
        / float(f["gpu_memory_bytes"].iloc[0])),
    "extra over FT's memory in use": (
        "WAA's extra mean weight bytes per GPU as a share of FT's mean memory in use per GPU",
        lambda w, f: 100 * (_wmean(w, "weights_bytes_per_gpu") - _wmean(f, "weights_bytes_per_gpu"))
        / _wmean(f, "total_bytes_per_gpu")),
}


def _waa_of(scenario: pd.DataFrame) -> pd.DataFrame:
    """The group rows of the WAA variant with the higher throughput (the paper's Fig. 9 shows one WAA)."""
    ok = scenario[scenario["policy"].isin(["waa-c", "waa-m"]) & (scenario["status"] == "ok")]
    if ok.empty:
        return ok
    best = ok.loc[ok["throughput_seq_s"].idxmax(), "policy"]
    return ok[ok["policy"] == best]


def overhead_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per scenario (model, cluster, task, mode) and definition: WAA's weight overhead over FT."""
    rows = []
    for key, sc in df.groupby(["model", "cluster", "task", "mode"], sort=False):
        waa, ft = _waa_of(sc), sc[(sc["policy"] == "ft") & (sc["status"] == "ok")]
        if waa.empty or ft.empty:
            continue
        for name, (_, f) in DEFINITIONS.items():
            value = f(waa, ft)
            rows.append({**dict(zip(["model", "cluster", "task", "mode"], key, strict=True)),
                         "waa": waa["policy"].iloc[0], "definition": name,
                         "value": value if math.isfinite(value) else math.nan})
    return pd.DataFrame(rows, columns=["model", "cluster", "task", "mode", "waa", "definition", "value"])


def weight_overhead_claims(df: pd.DataFrame) -> list[dict]:
    """§8 "WAA uses 18% (OPT) / 29% (GPT-3) more weight memory than FT", per family and
    definition: ours = mean over the family's scenarios in `df` (memory_groups rows of one mode)."""
    if df["mode"].nunique() > 1:
        raise ValueError("weight_overhead_claims: rows of several modes; filter to one mode first")
    per = overhead_table(df)
    out = []
    for fam, (prefix, label) in FAMILIES.items():
        paper = WAA_WEIGHT_OVERHEAD_PCT[fam].value
        sub = per[per["model"].str.startswith(prefix)]
        for name, (what, _) in DEFINITIONS.items():
            vals = sub[sub["definition"] == name]
            ours = float(vals["value"].mean()) if len(vals) and vals["value"].notna().any() else math.nan
            near = NEAR_LOW <= ours / paper <= NEAR_HIGH if math.isfinite(ours) else False
            each = ", ".join(f"{r.model}/{r.task} {r.value:+.1f} ({r.waa})" for r in vals.itertuples())
            out.append({"claim": f"WAA weight memory vs FT, {label} [{name}]", "paper": paper, "ours": ours,
                        "how": (f"{what}; WAA = the better of WAA-C/WAA-M per scenario; mean over "
                                f"{each or 'no scenario with FT and WAA feasible'}; "
                                f"{'near' if near else 'not near'} the paper (ours/paper in "
                                f"[{NEAR_LOW}, {NEAR_HIGH}])")})
    return out


def study(modes: Sequence[str] = ("ours", "paper"), resolution: str = "fine",
          overrides: tuple[str, ...] = ()) -> dict[str, pd.DataFrame]:
    """Fig. 9 as the paper ran it (FIG9_MODELS x FIG9_TASKS on their paper clusters, no bound),
    each mode: the tables memory_groups, weight_overhead (the claims, per mode) and
    weight_overhead_by_scenario (`harness memory` writes them and draws the bars). About 5 s."""
    from harness.studies.equal_throughput import context_for
    groups = pd.concat([memory_groups(context_for(mode, overrides)(m, PAPER_CLUSTER[m], t), math.inf, resolution)
                        for mode in modes for m in FIG9_MODELS for t in FIG9_TASKS], ignore_index=True)
    claims = pd.DataFrame([{"mode": m, **c} for m in groups["mode"].unique()
                           for c in weight_overhead_claims(groups[groups["mode"] == m])])
    return {"memory_groups": groups, "weight_overhead": claims, "weight_overhead_by_scenario": overhead_table(groups)}
