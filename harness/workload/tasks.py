"""Workloads: the pair (P_E, P_D) of input and output length distributions (ExeGPT §6-§7)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import unknown_name
from harness.workload.distributions import LengthDistribution, fixed, truncated_normal


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    input: LengthDistribution     # P_E: input (prompt) lengths, tokens
    output: LengthDistribution    # P_D: output (generated) lengths, tokens
    source: str = ""

    @property
    def output_p99(self) -> int:
        """Output length the paper's latency bound is defined on (ExeGPT §5)."""
        return self.output.p99

    @property
    def output_max(self) -> int:
        """Output length FT is held to (no early termination; ExeGPT §5)."""
        return self.output.max


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One row of the paper's task table (ExeGPT §7); avg/std of the truncated distribution."""

    name: str
    description: str
    input_avg: float
    input_std: float
    input_max: int
    output_avg: float
    output_std: float
    output_max: int
    paper_output_p99: int

    def workload(self) -> Workload:
        return Workload(
            self.name,
            truncated_normal(self.input_avg, self.input_std, self.input_max),
            truncated_normal(self.output_avg, self.output_std, self.output_max),
            source=f"ExeGPT §7 task {self.name} ({self.description})",
        )


TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec("S", "summarization", 256, 252, 512, 32, 13, 80, 63),
    TaskSpec("T", "translation", 128, 81, 256, 128, 68, 320, 292),
    TaskSpec("G", "code generation", 64, 23, 128, 192, 93, 480, 417),
    TaskSpec("C1", "conversational QA, short", 256, 115, 512, 64, 30, 160, 137),
    TaskSpec("C2", "conversational QA, long", 512, 252, 1024, 256, 134, 640, 579),
)}


# Scaled-down tasks for the CPU mini-cluster (issue 7, docs/real-execution.md): the paper's
# S and T with their (avg, std, max) divided by a factor so a run of 48 requests takes
# seconds on one core per worker. S-cpu: input / 8, output / 4 (short outputs, long
# prompts: WAA's side); T-cpu: both / 8 (outputs as long as inputs: RRA's side).
# `paper_output_p99` holds the scaled p99 (paper p99 / factor, rounded), not a paper number.
CPU_TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec("S-cpu", "summarization scaled for CPU (input/8, output/4)", 32, 31.5, 64, 8, 3.25, 20, 16),
    TaskSpec("T-cpu", "translation scaled for CPU (input/8, output/8)", 16, 10.125, 32, 16, 8.5, 40, 37),
)}


def get_task(name: str) -> Workload:
    if name in CPU_TASKS:
        return CPU_TASKS[name].workload()
    if name not in TASKS:
        raise unknown_name("task", name, [*TASKS, *CPU_TASKS])
    return TASKS[name].workload()


def fixed_workload(input_len: int, output_len: int) -> Workload:
    """Every request has exactly `input_len` input and `output_len` output tokens."""
    return Workload(f"fixed-{input_len}-{output_len}", fixed(input_len), fixed(output_len),
                    source="fixed lengths")
