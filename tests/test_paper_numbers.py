"""The paper's numbers live once, with their section, in harness/specs/paper.py: every
PaperNumber cites a section; the claims tables pass no number literal as the paper's value;
a handful of values checked against the paper's words (hand-copied below, with the sentence
of the project's reference text they come from)."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from harness.specs import paper
from harness.specs.paper import PaperNumber

ROOT = Path(__file__).resolve().parents[1]
CLAIM_MODULES = ("harness/figures/headline.py", "harness/figures/table_claims.py")


def _paper_numbers() -> list[tuple[str, PaperNumber]]:
    out = []
    for name, v in vars(paper).items():
        if isinstance(v, PaperNumber):
            out.append((name, v))
        elif isinstance(v, dict):
            out += [(f"{name}[{k!r}]", x) for k, x in v.items() if isinstance(x, PaperNumber)]
    return out


def test_every_paper_number_cites_its_section():
    numbers = _paper_numbers()
    assert len(numbers) >= 20
    for name, n in numbers:
        assert n.section.startswith(("§", "Fig.", "Table")), name
        assert n.text.strip() and n.unit in ("x", "%", "s", "share"), name
        assert isinstance(n.value, float) and math.isfinite(n.value), name


def _is_number_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) in (int, float)


@pytest.mark.parametrize("module", CLAIM_MODULES)
def test_claim_rows_take_the_paper_value_from_specs(module):
    """`_row(section, claim, paper, ours, ...)`: `paper` is never a number literal, and no
    float literal but the verdicts' references (0.0, 1.0) and our majority rule (0.5) is left
    (a paper number in a tuple the rows loop over would be one)."""
    tree = ast.parse((ROOT / module).read_text())
    rows = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "_row"]
    assert rows
    for call in rows:
        assert len(call.args) >= 3, ast.unparse(call)[:80]
        assert not _is_number_literal(call.args[2]), f"{module}:{call.lineno}: {ast.unparse(call.args[2])}"
    floats = [(n.lineno, n.value) for n in ast.walk(tree)
              if isinstance(n, ast.Constant) and type(n.value) is float and n.value not in (0.0, 0.5, 1.0)]
    assert floats == [], f"{module}: float literals {floats}"


def test_values_against_the_paper_text():
    # §8: "**2.9×** average over 20 scenarios"
    assert paper.SPEEDUP_AVERAGE_20.value == 2.9
    # §8: "Up to **15.2×** throughput (GPT-3 175B, task G, tightest bound)"
    assert paper.SPEEDUP_MAX.value == 15.2
    # §8: "up to **6×** lower latency (GPT-3 39B task S: 7.8 s vs FT 47 s at equal throughput)"
    assert (paper.EQUAL_THROUGHPUT_RATIO.value, paper.EQUAL_THROUGHPUT_EXEGPT_S.value,
            paper.EQUAL_THROUGHPUT_FT_S.value) == (6.0, 7.8, 47.0)
    # §8: "Small/mid models: average **2×**, best **5.4×** (GPT-3 39B, task S, L = 9.8 s, WAA)."
    assert (paper.SPEEDUP_SMALL_MID_AVERAGE.value, paper.SPEEDUP_SMALL_MID_BEST.value,
            paper.SPEEDUP_SMALL_MID_BEST_BOUND_S.value) == (2.0, 5.4, 9.8)
    # §8: "Large models (RRA only): average **3.2×**, range 1.1–15.2×; at L = Inf average 2.2×."
    assert (paper.SPEEDUP_LARGE_AVERAGE.value, paper.SPEEDUP_LARGE_MIN.value,
            paper.SPEEDUP_LARGE_INF_AVERAGE.value) == (3.2, 1.1, 2.2)
    # §8: "Real datasets: average **4.4×**, max **8.7×**"
    assert (paper.TRACE_GAIN_AVERAGE.value, paper.TRACE_GAIN_MAX.value) == (4.4, 8.7)
    # §8: "WAA uses 18% (OPT) / 29% (GPT-3) more weight memory than FT"
    assert {k: v.value for k, v in paper.WAA_WEIGHT_OVERHEAD_PCT.items()} == {"opt": 18.0, "gpt3": 29.0}
    # §8: "a 15% longer mean output needs a 13% (SLA-a) / 10% (SLA-b) tighter bound; std ×1.3
    # needs 5% (SLA-a) [...] RRA re-tuned via N_D only: throughput within 28%, latency within 12.6%."
    assert {k: v.value for k, v in paper.SHIFT_TIGHTENING.items()} == {
        "mean_1.15_sla_a": 0.13, "mean_1.15_sla_b": 0.10, "std_1.3_sla_a": 0.05,
        "rra_nd_throughput_within": 0.28, "rra_nd_latency_within": 0.126}
    # §8: "Redeploy cost: 0.9–3.5 s from DRAM, 2.1–15.1 s from SSD (39B–341B)."
    assert paper.REDEPLOY_S == {"gpt3-39b": (0.9, 2.1), "gpt3-341b": (3.5, 15.1)}
    # §5: "with 5% tolerance 97% of points monotone in throughput, 96% in latency; worst: B_m
    # on task T (~10.5% non-monotone latency)."
    assert (paper.MONOTONE_TOLERANCE_REL, paper.MONOTONE_SHARES["throughput"].value,
            paper.MONOTONE_SHARES["latency"].value, paper.MONOTONE_WORST.value) == (0.05, 0.97, 0.96, 0.105)
    # §7: "Known absolute values: OPT-13B task S: 3.1 s, 5.9 s, 11.5 s, Inf; GPT-3 39B task S: 9.8 s is one."
    assert paper.PAPER_BOUNDS_S["opt-13b", "a40x4", "S"][0] == {"p10": 3.1, "p30": 5.9, "p70": 11.5}
    assert paper.PAPER_BOUNDS_S["gpt3-39b", "a40x16", "S"][0] == {None: 9.8}
    # §7: "run FT over batch sizes (min..max in steps of 4); the bounds are the bottom 10%, 30%, 70%"
    assert (paper.FT_BATCH_STEP, paper.FT_BOUND_PERCENTILES) == (4, {"p10": 10, "p30": 30, "p70": 70})
    # §8 case study: "| 3.1 s | WAA | B_E=4, T_P=2 | 3.01 s | 22.41 seq/s |" ... "| Inf | RRA |
    # B_E=49, N_D=7, T_P=4 | 16.87 s | 26.15 seq/s |"
    t6 = [(r.bound_s, r.policy[:3], dict(r.knobs).get("encode_batch_size"), dict(r.knobs).get("decode_iters"),
           dict(r.knobs)["tp_degree"], r.latency_s, r.throughput_seq_s) for r in paper.PAPER_TABLE6]
    assert t6 == [(3.1, "waa", 4, None, 2, 3.01, 22.41), (5.9, "waa", 10, None, 2, 4.11, 23.76),
                  (11.5, "rra", 52, 13, 4, 10.23, 25.23), (math.inf, "rra", 49, 7, 4, 16.87, 26.15)]
    assert paper.TABLE6_SCENARIO == ("opt-13b", "a40x4", "S")   # "Case study, OPT-13B, task S, 4 × A40"


def test_specs_paper_imports_nothing_above_specs():
    tree = ast.parse((ROOT / "harness/specs/paper.py").read_text())
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    harness = {m for m in mods if m and m.startswith("harness")}
    assert harness <= {"harness.errors"} | {m for m in harness if m.startswith("harness.specs")}
