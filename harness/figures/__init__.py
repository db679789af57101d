"""Figures, tables and the paper-vs-ours report, drawn from results tables only.

Pure `DataFrame -> Figure` functions (one module per figure family) and the writers that
turn runs/<experiment>/results.parquet into runs/<experiment>/figures/* and runs/REPORT.md.
"""

from harness.figures.curves import latency_throughput
from harness.figures.frame import find_runs, load_results, ns_count
from harness.figures.headline import headline_table, paper_scenarios, scenario_speedups, winners
from harness.figures.heatmap import speedup_cells, speedup_heatmap
from harness.figures.memory import memory_bars
from harness.figures.report import load_all, write_figures, write_report
from harness.figures.tables import monotonicity_heatmap, table5_markdown, table6_markdown
from harness.figures.throughput import throughput_bars

__all__ = ["find_runs", "latency_throughput", "load_results", "ns_count", "headline_table", "paper_scenarios",
           "scenario_speedups", "winners", "speedup_cells", "speedup_heatmap", "memory_bars",
           "load_all", "write_figures", "write_report", "monotonicity_heatmap", "table5_markdown",
           "table6_markdown", "throughput_bars"]
