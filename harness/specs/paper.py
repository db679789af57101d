"""The paper's evaluation setup (ExeGPT §7): which cluster runs which model, which tasks."""

from __future__ import annotations

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
SMALL_MID_MODELS = ("t5-11b", "opt-13b", "gpt3-39b", "gpt3-101b")   # paired with S, T, C1
LARGE_MODELS = ("gpt3-101b", "gpt3-175b", "gpt3-341b")              # paired with G, C1, C2
BOUND_LABELS = ("p10", "p30", "p70", "inf")                          # bottom 10/30/70 % of FT, no bound
