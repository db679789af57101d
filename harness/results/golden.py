"""Throughput regression against a committed golden file (`make regress`): the comparison.

A fixed, deterministic scenario set (analytic cost model, paper clusters; searched by
harness.studies.regress) at the bounds stored in the golden file; the run fails when any scenario's searched throughput
drops by more than `THROUGHPUT_DROP_REL`, a chosen schedule's latency is not under its bound,
or feasibility changes (ok <-> NS). Rises are reported, not failed: they need
`make regress-update` so the new level is held from then on. The same numbers are written in
github-action-benchmark's `customBiggerIsBetter` format so a history can be charted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.specs.paper import PAPER_CLUSTER

THROUGHPUT_DROP_REL = 0.01     # fail on a drop of more than 1%
@dataclass(frozen=True, slots=True)
class Outcome:
    key: str
    bound_s: float | None          # None: no bound (Inf)
    status: str                    # ok | NS
    policy: str
    throughput_seq_s: float
    latency_s: float | None

    def as_dict(self) -> dict:
        return {"bound_s": self.bound_s, "status": self.status, "policy": self.policy,
                "throughput_seq_s": round(self.throughput_seq_s, 6),
                "latency_s": None if self.latency_s is None else round(self.latency_s, 6)}


def scenario_key(model: str, task: str, bound: str, mode: str = "ours") -> str:
    """`model/cluster/task/bound`, with ` mode=paper` appended for the paper's reading."""
    return f"{model}/{PAPER_CLUSTER[model]}/{task}/{bound}" + ("" if mode == "ours" else f" mode={mode}")


def compare(golden: dict[str, dict], now: dict[str, Outcome]) -> tuple[list[dict], list[str]]:
    """(rows of the diff table, failure messages)."""
    rows, failures = [], []
    for key in sorted(set(golden) | set(now)):
        g, n = golden.get(key), now.get(key)
        if g is None or n is None:
            failures.append(f"{key}: {'new scenario, not in golden' if g is None else 'missing from this run'}")
            continue
        ratio = n.throughput_seq_s / g["throughput_seq_s"] if g["throughput_seq_s"] else None
        verdict = "ok"
        if g["status"] != n.status:
            verdict = f"FAIL feasibility {g['status']} -> {n.status}"
        elif n.status == "ok" and n.bound_s is not None and not n.latency_s < n.bound_s:
            verdict = f"FAIL latency {n.latency_s:.3f} s >= bound {n.bound_s:.3f} s"
        elif ratio is not None and ratio < 1 - THROUGHPUT_DROP_REL:
            verdict = f"FAIL throughput -{1 - ratio:.1%}"
        elif ratio is not None and ratio > 1 + THROUGHPUT_DROP_REL:
            verdict = f"improved +{ratio - 1:.1%} (run make regress-update)"
        if verdict.startswith("FAIL"):
            failures.append(f"{key}: {verdict[5:]}")
        rows.append({"scenario": key, "golden_policy": g["policy"], "policy": n.policy,
                     "golden_seq_s": g["throughput_seq_s"], "seq_s": n.throughput_seq_s,
                     "ratio": ratio, "latency_s": n.latency_s, "bound_s": n.bound_s, "verdict": verdict})
    return rows, failures


def benchmark_json(now: dict[str, Outcome]) -> list[dict]:
    """github-action-benchmark `customBiggerIsBetter` entries."""
    return [{"name": f"{k} searched throughput", "unit": "seq/s", "value": round(o.throughput_seq_s, 6),
             "extra": f"policy={o.policy or 'NS'} latency_s={o.latency_s} bound_s={o.bound_s}"}
            for k, o in sorted(now.items())]


def load_golden(path: Path) -> dict[str, dict]:
    return json.loads(path.read_text())["scenarios"]


def golden_document(now: dict[str, Outcome], commit: str) -> dict:
    return {"about": "Searched throughput/latency of the golden scenarios (analytic cost model). "
                     "Rewrite with `make regress-update`; checked by `make regress`.",
            "git_commit": commit, "throughput_drop_tolerance_rel": THROUGHPUT_DROP_REL,
            "scenarios": {k: o.as_dict() for k, o in sorted(now.items())}}
