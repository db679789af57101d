"""exegpt-harness: reproducibility suite and research harness for ExeGPT (ASPLOS 2024).

The folder tree is the pipeline; packages import only those below them (the import-linter
contract in pyproject.toml, checked by `make lint`, .ci/run and tests/test_architecture.py):

    specs, workload -> engine -> cost_model -> policies -> simulator -> scheduler
      -> profiler -> runner -> results, config -> studies -> figures -> app -> cli

`engine` is the real-execution engine under both `profiler` and `runner`; `atomic` (every
file write) and `errors` sit below everything; only `cli` and `app` write under runs/.
"""

__version__ = "0.1.0"
