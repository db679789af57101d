"""The real-execution engine the profiler and the runner share (ExeGPT §2 XProfiler / XRunner):
our own torch layers with an explicit KV cache (`layers`, `stage`), seeded small models
(`weights`), the links between pipeline workers (`links`), the mini-cluster of worker
processes (`pool`, `faults`) and the clock they time with (`timing`).

It sits below the cost models: it imports only specs, workload and errors, so the profiler
(which times these functions) and the runner (which executes schedules with them) both
build on it without importing each other's modules."""
