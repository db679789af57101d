"""Figures, tables and the paper-vs-ours report, drawn from results tables only.

Pure `DataFrame -> Figure` functions (one module per figure family), the list of files that
runs/<experiment>/results.parquet turns into (`outputs`) and runs/REPORT.md's text
(`report_markdown`); `harness figures` (harness.cli.figures) writes them.
"""

from harness.figures.curves import latency_throughput
from harness.figures.frame import find_runs, load_results, ns_count
from harness.figures.headline import headline_table, paper_scenarios, scenario_speedups, winners
from harness.figures.heatmap import speedup_cells, speedup_heatmap
from harness.figures.memory import memory_bars
from harness.figures.report import load_all, outputs, report_markdown
from harness.figures.tables import monotonicity_heatmap, table5_markdown, table6_markdown
from harness.figures.throughput import throughput_bars

__all__ = ["find_runs", "latency_throughput", "load_results", "ns_count", "headline_table", "paper_scenarios",
           "scenario_speedups", "winners", "speedup_cells", "speedup_heatmap", "memory_bars",
           "load_all", "outputs", "report_markdown", "monotonicity_heatmap", "table5_markdown",
           "table6_markdown", "throughput_bars"]
