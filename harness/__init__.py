"""exegpt-harness: reproducibility suite and research harness for ExeGPT (ASPLOS 2024).

The folder tree is the pipeline (see ../shared/design/architecture.md):
workload -> specs -> cost_model -> policies <-> simulator -> scheduler -> runner -> results -> figures.
"""

__version__ = "0.1.0"
