"""XProfiler (ExeGPT §2): real timing of one encoder / decoder layer and of communication,
written as a profile table that the `profiled` cost model interpolates."""
