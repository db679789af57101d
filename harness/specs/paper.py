"""The paper's evaluation setup (ExeGPT §7) and the numbers it reports (§5, §8), each once,
with the section it comes from. Studies and reports read them from here."""

from __future__ import annotations

from dataclasses import dataclass

# ExeGPT §7 table ("GPUs" column). GPT-3 175B also ran on 32 x A40; GPT-3 101B is listed with
# 16 x A100 (another table says 32).
PAPER_CLUSTER: dict[str, str] = {
    "t5-11b": "a40x8",
    "opt-13b": "a40x4",
    "gpt3-39b": "a40x16",
    "gpt3-101b": "a100x16",
    "gpt3-175b": "a100x16",
    "gpt3-341b": "a40x48",
}
# Every cluster §7 names per model: GPT-3 175B ran on "16 x A100 and 32 x A40". The first is
# PAPER_CLUSTER (what `use_paper_cluster=true` picks); 101B's "another table says 32" gives no
# GPU type, so it is not listed.
PAPER_CLUSTERS: dict[str, tuple[str, ...]] = {
    **{m: (c,) for m, c in PAPER_CLUSTER.items()},
    "gpt3-175b": ("a100x16", "a40x32"),
}
PAPER_SYSTEMS: tuple[tuple[str, str], ...] = tuple((m, c) for m, cs in PAPER_CLUSTERS.items() for c in cs)

SMALL_MID_MODELS = ("t5-11b", "opt-13b", "gpt3-39b", "gpt3-101b")   # paired with S, T, C1
LARGE_MODELS = ("gpt3-101b", "gpt3-175b", "gpt3-341b")              # paired with G, C1, C2
SMALL_MID_TASKS = ("S", "T", "C1")                                   # §7: "small/mid models with S, T, C1"
LARGE_TASKS = ("G", "C1", "C2")                                      # §7: "large ones with G, C1, C2"
PAPER_TASKS = ("S", "T", "G", "C1", "C2")                            # §7 task table
BOUND_LABELS = ("p10", "p30", "p70", "inf")                          # bottom 10/30/70 % of FT, no bound


def paper_scenarios(all_clusters: bool = True) -> tuple[tuple[str, str, str], ...]:
    """(model, cluster, task) of Fig. 6 ∪ Fig. 8 (§7 pairing): 12 + 9 - 1 = 20 model x task
    pairs on PAPER_CLUSTER; `all_clusters` adds GPT-3 175B's second cluster (23 in all)."""
    clusters = PAPER_CLUSTERS if all_clusters else {m: (c,) for m, c in PAPER_CLUSTER.items()}
    out = [(m, c, t) for m in SMALL_MID_MODELS for c in clusters[m] for t in SMALL_MID_TASKS]
    out += [(m, c, t) for m in LARGE_MODELS for c in clusters[m] for t in LARGE_TASKS]
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True, slots=True)
class PaperNumber:
    """One number the paper reports, where, and its words."""

    value: float
    unit: str          # "x", "%", "s", "share" (0..1)
    section: str
    text: str


# ---- §8 headline results ----------------------------------------------------------------
SPEEDUP_AVERAGE_20 = PaperNumber(2.9, "x", "§8", "2.9x average over 20 scenarios")
# "up to 6x lower latency (GPT-3 39B task S: 7.8 s vs FT 47 s at equal throughput)"
EQUAL_THROUGHPUT_SCENARIO = ("gpt3-39b", "a40x16", "S")
EQUAL_THROUGHPUT_EXEGPT_S = PaperNumber(7.8, "s", "§8", "ExeGPT latency at FT's throughput, GPT-3 39B S")
EQUAL_THROUGHPUT_FT_S = PaperNumber(47.0, "s", "§8", "FT latency at its throughput, GPT-3 39B S")
EQUAL_THROUGHPUT_RATIO = PaperNumber(6.0, "x", "§8", "up to 6x lower latency at equal throughput")
# "WAA uses 18% (OPT) / 29% (GPT-3) more weight memory than FT, less KV-cache memory"
WAA_WEIGHT_OVERHEAD_PCT: dict[str, PaperNumber] = {
    "opt": PaperNumber(18.0, "%", "§8 / Fig. 9", "WAA weight memory over FT's, OPT"),
    "gpt3": PaperNumber(29.0, "%", "§8 / Fig. 9", "WAA weight memory over FT's, GPT-3"),
}
# Fig. 9 (§8): per-GPU memory of OPT-13B and GPT-3 101B, tasks T and G, no bound.
FIG9_MODELS = ("opt-13b", "gpt3-101b")
FIG9_TASKS = ("T", "G")

# ---- §5 Table 5: monotonicity ------------------------------------------------------------
MONOTONE_TOLERANCE_REL = 0.05                                        # "with 5% tolerance" (§5)
MONOTONE_SHARES: dict[str, PaperNumber] = {
    "throughput": PaperNumber(0.97, "share", "§5 Table 5", "97% of points monotone in throughput"),
    "latency": PaperNumber(0.96, "share", "§5 Table 5", "96% of points monotone in latency"),
}
MONOTONE_WORST = PaperNumber(0.105, "share", "§5 Table 5", "worst: B_m on task T, ~10.5% non-monotone latency")
TABLE5_MODEL = "gpt3-39b"                                            # the paper measured GPT-3 39B only
