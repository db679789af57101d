"""Studies beyond one scenario: distribution shift (Fig. 11, `shift`), real traces (Fig. 10,
`traces`). Each has a function returning pandas DataFrames and `run(out_dir, ...)` writing
tables, figures and a `summary.md` with the paper's numbers beside ours."""
